package raftkv

import (
	"context"
	"errors"
	"net"
	"strconv"

	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RegisterClientAPI serves the client API (the raftkv.v1.KV gRPC service)
// of db on s. Every node serves it: requests reach the leader through the
// DB's routing, so a client may call any node. Create s with
// ClientAPIServerOptions(db): without them gRPC's 4 MiB default refuses
// larger values the configuration accepts.
func RegisterClientAPI(s *grpc.Server, db *DB) {
	raftpb.RegisterKVServer(s, &kvService{db: db})
}

// ClientAPIServerOptions are the gRPC server options the client API of db
// needs: a receive limit that admits a write of the longest key and a value
// of the configuration's maxValueSize (gRPC refuses anything larger with
// RESOURCE_EXHAUSTED before reading it, which Client reports as
// ErrValueTooLarge), and a send limit that admits a read of the largest
// value any configuration allows (the store may hold one from before
// maxValueSize was lowered). Pass them to grpc.NewServer, before any
// options of your own.
func ClientAPIServerOptions(db *DB) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(db.limits.ClientMaxRecvMsgSize),
		grpc.MaxSendMsgSize(db.limits.ClientMaxSendMsgSize),
	}
}

type kvService struct {
	raftpb.UnimplementedKVServer
	db *DB
}

func (k *kvService) Write(ctx context.Context, req *raftpb.WriteRequest) (*raftpb.WriteResponse, error) {
	cmd := kvstate.Command{ClientID: req.GetClientId(), Seq: req.GetSeq(), Key: req.GetKey(), Value: req.GetValue()}
	switch req.GetOp() {
	case raftpb.Op_OP_PUT:
		cmd.Op = kvstate.OpPut
	case raftpb.Op_OP_UPDATE:
		cmd.Op = kvstate.OpUpdate
	case raftpb.Op_OP_REMOVE:
		cmd.Op = kvstate.OpRemove
		cmd.Value = nil
	default:
		return nil, status.Errorf(codes.InvalidArgument, "raftkv: unknown write op %d", req.GetOp())
	}
	// A write without a session would run once per copy, and the DB's
	// routing re-sends a copy whenever it cannot confirm one.
	if cmd.ClientID == 0 {
		return nil, status.Error(codes.InvalidArgument, "raftkv: a write needs a client session: call RegisterSession and send its client_id")
	}
	if cmd.Seq == 0 {
		return nil, status.Error(codes.InvalidArgument, "raftkv: a write's seq starts at 1")
	}
	if err := kvstate.ValidateKV(cmd.Key, cmd.Value, k.db.cfg.MaxValueSize); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	_, err := k.db.propose(ctx, cmd)
	if err != nil {
		return nil, toStatus(err)
	}
	return &raftpb.WriteResponse{}, nil
}

func (k *kvService) RegisterSession(ctx context.Context, _ *raftpb.RegisterSessionRequest) (*raftpb.RegisterSessionResponse, error) {
	id, err := k.db.registerSession(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &raftpb.RegisterSessionResponse{ClientId: id}, nil
}

func (k *kvService) Read(ctx context.Context, req *raftpb.ReadRequest) (*raftpb.ReadResponse, error) {
	v, err := k.db.Get(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return &raftpb.ReadResponse{Value: v}, nil
}

func (k *kvService) Status(ctx context.Context, _ *raftpb.ClusterStatusRequest) (*raftpb.ClusterStatusResponse, error) {
	nodes, err := k.db.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &raftpb.ClusterStatusResponse{}
	for _, n := range nodes {
		srv, _ := k.db.cfg.Server(n.ID)
		resp.Nodes = append(resp.Nodes, &raftpb.NodeStatus{
			Id: n.ID, Address: k.db.cfg.RemoteAddr(n.ID), Reachable: n.Reachable,
			ClientAddress: clientAddr(srv.Address, srv.ClientPort),
			Status: &raftpb.StatusResponse{
				Id: n.ID, Role: n.Role, Term: n.Term, Leader: n.Leader, Commit: n.Commit, Applied: n.Applied,
				FirstIndex: n.FirstIndex, LastIndex: n.LastIndex, SnapshotIndex: n.SnapshotIndex,
				DiskBytes: n.DiskBytes, DiskFreeBytes: n.DiskFreeBytes,
			},
		})
	}
	return resp, nil
}

// toStatus maps the API's errors onto gRPC status codes; the client maps
// them back (see fromStatus). An expired session after an earlier copy of
// the write was sent is UNKNOWN: retrying cannot tell whether that copy
// ran. Other unknown outcomes (no answer in time, shutting down) stay
// UNAVAILABLE: the client may retry with the same session to learn them.
func toStatus(err error) error {
	switch {
	case errors.Is(err, ErrSessionExpired) && errors.Is(err, ErrOutcomeUnknown):
		return status.Error(codes.Unknown, err.Error())
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrEmptyKey), errors.Is(err, ErrKeyTooLarge), errors.Is(err, ErrValueTooLarge):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrStaleRequest):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, ErrSessionExpired):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func clientAddr(host string, port int) string {
	if port == 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
