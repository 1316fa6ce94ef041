package raftkv

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/clientpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// slowNode is a client API server whose writes take writeDelay (forever if
// zero) and whose probes (a read of the empty key) are answered at once,
// as a live node answers them, or never when silent.
type slowNode struct {
	clientpb.UnimplementedKVServer
	writeDelay time.Duration
	silent     bool
	// silentAfter, if set, makes the node silent after answering that
	// many probes.
	silentAfter int32
	probes      atomic.Int32
}

func (s *slowNode) Write(ctx context.Context, _ *clientpb.WriteRequest) (*clientpb.WriteResponse, error) {
	if s.writeDelay == 0 {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	select {
	case <-time.After(s.writeDelay):
		return &clientpb.WriteResponse{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (s *slowNode) Read(ctx context.Context, _ *clientpb.ReadRequest) (*clientpb.ReadResponse, error) {
	if s.silent || (s.silentAfter > 0 && s.probes.Add(1) > s.silentAfter) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return nil, status.Error(codes.InvalidArgument, "empty key")
}

func dialSlowNode(t *testing.T, node *slowNode) clientpb.KVClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	clientpb.RegisterKVServer(s, node)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return clientpb.NewKVClient(conn)
}

func writeOnce(ctx context.Context, kv clientpb.KVClient) error {
	_, err := kv.Write(ctx, &clientpb.WriteRequest{ClientId: 1, Seq: 1, Op: clientpb.Op_OP_PUT, Key: "k"})
	return err
}

// A write to a node that stops answering is given up after a probe goes
// unanswered, long before the attempt's own timeout.
func TestClientAttemptGivesUpOnASilentNode(t *testing.T) {
	kv := dialSlowNode(t, &slowNode{silent: true})
	c := &Client{}
	start := time.Now()
	_, err := c.attempt(context.Background(), kv, clientWriteTryTimeout, writeOnce)
	if !errors.Is(err, errEndpointSilent) {
		t.Fatalf("attempt at a silent node: %v, want errEndpointSilent", err)
	}
	if took := time.Since(start); took >= clientWriteTryTimeout {
		t.Fatalf("gave up after %v, not before the attempt's timeout %v", took, clientWriteTryTimeout)
	}
}

// A node that answers its probes keeps a slow write alive, probe after
// probe, until the write's own answer comes.
func TestClientAttemptWaitsForALiveNode(t *testing.T) {
	kv := dialSlowNode(t, &slowNode{writeDelay: 2*clientProbeEvery + clientProbeEvery/2})
	c := &Client{}
	if _, err := c.attempt(context.Background(), kv, clientWriteTryTimeout, writeOnce); err != nil {
		t.Fatalf("slow write at a live node: %v, want its answer", err)
	}
}

// A node that answers one probe and then falls silent is given up at the
// next probe: the probe after an answered one is armed again.
func TestClientAttemptProbesAgainAfterAnAnswer(t *testing.T) {
	node := &slowNode{silentAfter: 1}
	kv := dialSlowNode(t, node)
	c := &Client{}
	_, err := c.attempt(context.Background(), kv, clientWriteTryTimeout, writeOnce)
	if !errors.Is(err, errEndpointSilent) {
		t.Fatalf("attempt at a node silent after one probe: %v, want errEndpointSilent", err)
	}
	if n := node.probes.Load(); n != 2 {
		t.Fatalf("%d probes, want 2 (one answered, one not)", n)
	}
}
