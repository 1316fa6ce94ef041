package raftkv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Client is a network client of a RaftKV cluster: it talks to the nodes'
// client API (the clientPort of each server). Any node answers, forwarding
// to the leader; when a node is down or cut off, the client moves to the
// next endpoint. Writes carry a client session, so a retry after a timeout
// or a failover is applied exactly once. It is safe for concurrent use.
type Client struct {
	endpoints []string
	conns     []*grpc.ClientConn
	kv        []raftpb.KVClient
	// preferred is the endpoint that answered last.
	preferred atomic.Int64
	sessions  sessionPool
	timeout   time.Duration
	closed    atomic.Bool
}

var _ KV = (*Client)(nil)

// clientTryTimeout bounds one attempt at one endpoint.
const clientTryTimeout = 2 * time.Second

// Dial connects to a cluster through any of its nodes' client endpoints
// ("host:port"). It returns once one endpoint answers, or an error when
// none does before ctx ends.
func Dial(ctx context.Context, endpoints ...string) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: Dial needs at least one endpoint", ErrInvalidOption)
	}
	c := &Client{endpoints: endpoints, timeout: DefaultRequestTimeout}
	for _, ep := range endpoints {
		conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()),
			// The client does not know the cluster's maxValueSize: it
			// carries what the largest configuration allows, and the
			// server refuses what its own does not.
			grpc.WithDefaultCallOptions(
				grpc.MaxCallSendMsgSize(limits.ClientCallMaxSendMsgSize),
				grpc.MaxCallRecvMsgSize(limits.ClientCallMaxRecvMsgSize)))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("raftkv: endpoint %q: %w", ep, err)
		}
		c.conns = append(c.conns, conn)
		c.kv = append(c.kv, raftpb.NewKVClient(conn))
	}
	nodes, err := c.Status(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("raftkv: no endpoint of %v answered: %w", endpoints, err)
	}
	c.preferLeader(nodes)
	return c, nil
}

// preferLeader points the client at the leader's endpoint when it is one of
// the client's, sparing every call the follower's forwarding hop.
func (c *Client) preferLeader(nodes []*raftpb.NodeStatus) {
	var leader uint64
	for _, n := range nodes {
		if l := n.GetStatus().GetLeader(); l != 0 {
			leader = l
		}
	}
	for _, n := range nodes {
		if n.GetId() != leader {
			continue
		}
		if i := slices.Index(c.endpoints, n.GetClientAddress()); i >= 0 {
			c.preferred.Store(int64(i))
		}
	}
}

// Close releases the connections.
func (c *Client) Close() error {
	c.closed.Store(true)
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// Put inserts or overwrites key.
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	return c.write(ctx, raftpb.Op_OP_PUT, key, value)
}

// Update overwrites key only if it exists; otherwise ErrNotFound.
func (c *Client) Update(ctx context.Context, key string, value []byte) error {
	return c.write(ctx, raftpb.Op_OP_UPDATE, key, value)
}

// Remove deletes key; ErrNotFound when it is absent.
func (c *Client) Remove(ctx context.Context, key string) error {
	return c.write(ctx, raftpb.Op_OP_REMOVE, key, nil)
}

// Get returns key's value (linearizable), or ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	if err := kvstate.ValidateKV(key, nil, 0); err != nil {
		return nil, err
	}
	var resp *raftpb.ReadResponse
	err := c.do(ctx, 0, func(ctx context.Context, kv raftpb.KVClient) (err error) {
		resp, err = kv.Read(ctx, &raftpb.ReadRequest{Key: key})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetValue(), nil
}

// Status reports every node of the cluster, as one node sees it.
func (c *Client) Status(ctx context.Context) ([]*raftpb.NodeStatus, error) {
	var resp *raftpb.ClusterStatusResponse
	err := c.do(ctx, 0, func(ctx context.Context, kv raftpb.KVClient) (err error) {
		resp, err = kv.Status(ctx, &raftpb.ClusterStatusRequest{})
		return err
	})
	return resp.GetNodes(), err
}

func (c *Client) write(ctx context.Context, op raftpb.Op, key string, value []byte) error {
	// Keys are checked here, and values against the most any cluster
	// accepts; the cluster enforces its own value limit.
	if err := kvstate.ValidateKV(key, value, limits.MaxValueSize); err != nil {
		return err
	}
	return c.sessions.write(func(clientID, seq uint64) (bool, error) {
		req := &raftpb.WriteRequest{ClientId: clientID, Seq: seq, Op: op, Key: key, Value: value}
		err := c.do(ctx, len(key)+len(value), func(ctx context.Context, kv raftpb.KVClient) error {
			_, err := kv.Write(ctx, req)
			return err
		})
		// The cluster's own answers are final; transport failures are not.
		final := err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrSessionExpired) ||
			errors.Is(err, ErrStaleRequest) || errors.Is(err, ErrValueTooLarge)
		return final, err
	})
}

// do runs one call against the preferred endpoint, moving on to the next on
// a failure that another node may not have, until the context ends. sends
// is the size of the value the call carries: its tries get time for it (see
// limits.TryTimeout). A reply's size is not known in advance, so each try
// that runs out of time doubles the next one's (up to 8 times), letting a
// large value's reply arrive on a slow machine while a dead node still
// costs little.
func (c *Client) do(ctx context.Context, sends int, call func(context.Context, raftpb.KVClient) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var last error
	slow := 0
	for {
		if c.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
			}
			return fmt.Errorf("%w: %w (last error: %v)", ErrUnavailable, err, last)
		}
		i := int(c.preferred.Load()) % len(c.kv)
		tryCtx, cancel := context.WithTimeout(ctx, limits.TryTimeout(clientTryTimeout, sends)<<min(slow, 3))
		err := call(tryCtx, c.kv[i])
		if errors.Is(tryCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			slow++
		}
		cancel()
		if err == nil {
			return nil
		}
		if final := fromStatus(err); final != nil {
			return final
		}
		last = err
		// This node is down, cut off or without a leader: try the next.
		c.preferred.CompareAndSwap(int64(i), int64(i+1))
		if (i+1)%len(c.kv) == 0 {
			pause(ctx, noLeaderBackoff)
		}
	}
}

// fromStatus maps a final gRPC answer to the API's error, or returns nil
// for a failure worth retrying elsewhere.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	msg := st.Message()
	switch st.Code() {
	case codes.NotFound:
		return ErrNotFound
	case codes.InvalidArgument:
		for _, e := range []error{ErrEmptyKey, ErrKeyTooLarge, ErrValueTooLarge} {
			if strings.HasPrefix(msg, e.Error()) {
				return fmt.Errorf("%w (%s)", e, msg)
			}
		}
		return fmt.Errorf("raftkv: invalid request: %s", msg)
	case codes.Aborted:
		return fmt.Errorf("%w: %s", ErrStaleRequest, msg)
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", ErrSessionExpired, msg)
	case codes.ResourceExhausted:
		// gRPC's answer to a message over a receive or send limit: the
		// server's, for a write larger than its maxValueSize allows, or
		// this client's. Another node or a retry would refuse it again.
		return fmt.Errorf("%w: %s", ErrValueTooLarge, msg)
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
