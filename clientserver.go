package raftkv

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/kvstate"
	"google.golang.org/grpc"
)

// RegisterClientAPI serves the client API (the raftkv.v1.KV gRPC service,
// clientpb) of db on s. Every node serves it: requests take the same path
// as the DB's own (validated, counted in db's metrics, routed to the
// leader), so a client may call any node. Create s with
// ClientAPIServerOptions(db): without them gRPC's 4 MiB default refuses
// larger values the configuration accepts.
func RegisterClientAPI(s *grpc.Server, db *DB) {
	clientpb.RegisterKVServer(s, &kvService{gw: db.gw})
}

// ClientAPIServerOptions are the gRPC server options the client API of db
// needs: a receive limit that admits a write of the longest key and a value
// of the configuration's maxValueSize (gRPC refuses anything larger with
// RESOURCE_EXHAUSTED before reading it, which Client reports as
// ErrValueTooLarge), and a send limit that admits a read of the largest
// value any configuration allows (the store may hold one from before
// maxValueSize was lowered), and a pool of goroutines that serve requests
// (clientStreamWorkers). Pass them to grpc.NewServer, before any options of
// your own.
func ClientAPIServerOptions(db *DB) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(db.limits.ClientMaxRecvMsgSize),
		grpc.MaxSendMsgSize(db.limits.ClientMaxSendMsgSize),
		grpc.NumStreamWorkers(clientStreamWorkers),
	}
}

// clientStreamWorkers is how many goroutines the client API server keeps
// for requests; a request beyond them gets a goroutine of its own, as
// without the pool. gRPC's default, a new goroutine per request, grew each
// one's stack again by copying (part of the 9.7% of a leader's CPU in
// runtime.newstack under 64 clients); a pooled goroutine keeps its grown
// stack. Each request waits for a Raft commit, so the pool is sized for
// concurrent callers, not for cores: 64 covers the load the performance
// table measures, for about 64 stacks of a few KiB while idle.
const clientStreamWorkers = 64

// kvService serves the client API. Every request takes the gateway's path,
// the same as the DB's own: a network client's write is validated,
// observed by the metrics and proposed under its session exactly like a
// DB.Put. Errors leave as the error table's statuses (apiwire.ToStatus).
type kvService struct {
	clientpb.UnimplementedKVServer
	gw *gateway
}

func (k *kvService) Write(ctx context.Context, req *clientpb.WriteRequest) (*clientpb.WriteResponse, error) {
	cmd, err := writeCommand(req)
	if err == nil {
		err = k.gw.write(ctx, cmd)
	}
	if err != nil {
		return nil, apiwire.ToStatus(err)
	}
	return &clientpb.WriteResponse{}, nil
}

// writeCommand is the command a network client's write asks for, or why
// it cannot be run.
func writeCommand(req *clientpb.WriteRequest) (kvstate.Command, error) {
	cmd := kvstate.Command{ClientID: req.GetClientId(), Seq: req.GetSeq(), Key: req.GetKey(), Value: req.GetValue()}
	switch req.GetOp() {
	case clientpb.Op_OP_PUT:
		cmd.Op = kvstate.OpPut
	case clientpb.Op_OP_UPDATE:
		cmd.Op = kvstate.OpUpdate
	case clientpb.Op_OP_REMOVE:
		cmd.Op = kvstate.OpRemove
		cmd.Value = nil
	default:
		return cmd, fmt.Errorf("%w: unknown write op %d", apiwire.ErrInvalidRequest, req.GetOp())
	}
	switch {
	case cmd.ClientID == 0:
		// A write without a session would run once per copy, and the
		// router re-sends a copy whenever it cannot confirm one. (The
		// gateway would also run it under a session of its own pool,
		// one per call: a client's retry would then run again.)
		return cmd, fmt.Errorf("%w: a write needs a client session: call RegisterSession and send its client_id", apiwire.ErrInvalidRequest)
	case cmd.Seq == 0:
		return cmd, fmt.Errorf("%w: a write's seq starts at 1", apiwire.ErrInvalidRequest)
	}
	return cmd, nil
}

func (k *kvService) RegisterSession(ctx context.Context, _ *clientpb.RegisterSessionRequest) (*clientpb.RegisterSessionResponse, error) {
	id, err := k.gw.registerSession(ctx)
	if err != nil {
		return nil, apiwire.ToStatus(err)
	}
	return &clientpb.RegisterSessionResponse{ClientId: id}, nil
}

func (k *kvService) Read(ctx context.Context, req *clientpb.ReadRequest) (*clientpb.ReadResponse, error) {
	v, err := k.gw.get(ctx, req.GetKey())
	if err != nil {
		return nil, apiwire.ToStatus(err)
	}
	return &clientpb.ReadResponse{Value: v}, nil
}

func (k *kvService) Status(ctx context.Context, _ *clientpb.ClusterStatusRequest) (*clientpb.ClusterStatusResponse, error) {
	nodes, err := k.gw.status(ctx, k.gw.route.ids())
	if err != nil {
		return nil, apiwire.ToStatus(err)
	}
	resp := &clientpb.ClusterStatusResponse{}
	for _, n := range nodes {
		resp.Nodes = append(resp.Nodes, apiwire.NodeToClient(n))
	}
	return resp, nil
}

func (k *kvService) TransferLeadership(ctx context.Context, req *clientpb.TransferLeadershipRequest) (*clientpb.TransferLeadershipResponse, error) {
	if err := k.gw.transfer(ctx, req.GetTo()); err != nil {
		return nil, apiwire.ToStatus(err)
	}
	return &clientpb.TransferLeadershipResponse{}, nil
}

// clientAddr is where a node serves the client API, "" when it serves none.
func clientAddr(host string, port int) string {
	if port == 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
