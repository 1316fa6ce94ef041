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
// next endpoint. Writes carry a registered client session, so a write is
// applied at most once however often it is retried after a timeout or a
// failover; when the client cannot learn whether it was, the error matches
// ErrOutcomeUnknown. It is safe for concurrent use.
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

// clientTryTimeout bounds one read or status attempt at one endpoint.
const clientTryTimeout = 2 * time.Second

// clientWriteTryTimeout bounds one write attempt at one endpoint. A node
// answers a write once it knows the outcome, waiting up to
// remoteWriteTimeout for a leader in another process; the client waits
// longer than that, since giving up on a slow write sends it again through
// another node, one more log entry per attempt when commits are slow. So
// that a node that stopped answering altogether (paused, cut off) does not
// cost that long, a waiting write probes its node every clientProbeEvery
// (each probe bounded by clientProbeTimeout) and moves on when the node is
// silent.
const (
	clientWriteTryTimeout = remoteWriteTimeout + 2*time.Second
	clientProbeEvery      = time.Second
	clientProbeTimeout    = 500 * time.Millisecond
)

// errEndpointSilent: the node did not answer a probe while a write waited.
var errEndpointSilent = errors.New("raftkv: endpoint did not answer a probe")

// Dial connects to a cluster through any of its nodes' client endpoints
// ("host:port"). It returns once one endpoint answers, or an error when
// none does before ctx ends.
func Dial(ctx context.Context, endpoints ...string) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: Dial needs at least one endpoint", ErrInvalidOption)
	}
	c := &Client{endpoints: endpoints, timeout: DefaultRequestTimeout}
	c.sessions.register = c.registerSession
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
	err := c.do(ctx, clientTryTimeout, 0, func(ctx context.Context, kv raftpb.KVClient) (err error) {
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
	err := c.do(ctx, clientTryTimeout, 0, func(ctx context.Context, kv raftpb.KVClient) (err error) {
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
	ctx, cancel := bounded(ctx, c.timeout)
	defer cancel()
	return c.sessions.write(ctx, func(ctx context.Context, clientID, seq uint64) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, maxWriteRetry)
		defer cancel()
		req := &raftpb.WriteRequest{ClientId: clientID, Seq: seq, Op: op, Key: key, Value: value}
		// sent: an attempt ended without the cluster's answer, so that
		// copy may have been proposed (conservatively: it may also never
		// have left this process).
		sent := false
		err := c.do(ctx, clientWriteTryTimeout, len(key)+len(value), func(ctx context.Context, kv raftpb.KVClient) error {
			_, err := kv.Write(ctx, req)
			if err != nil && fromStatus(err) == nil {
				sent = true
			}
			return err
		})
		// The cluster's own answers are final; transport failures are not.
		final := err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrSessionExpired) ||
			errors.Is(err, ErrStaleRequest) || errors.Is(err, ErrEmptyKey) || errors.Is(err, ErrKeyTooLarge) ||
			errors.Is(err, ErrValueTooLarge) || errors.Is(err, errInvalidRequest)
		if sent && (!final || errors.Is(err, ErrSessionExpired)) {
			err = outcomeUnknown(err)
		}
		return final, err
	})
}

// registerSession asks the cluster for a new client session.
func (c *Client) registerSession(ctx context.Context) (uint64, error) {
	var resp *raftpb.RegisterSessionResponse
	err := c.do(ctx, clientWriteTryTimeout, 0, func(ctx context.Context, kv raftpb.KVClient) (err error) {
		resp, err = kv.RegisterSession(ctx, &raftpb.RegisterSessionRequest{})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("raftkv: registering a client session: %w", err)
	}
	if resp.GetClientId() == 0 {
		return 0, fmt.Errorf("raftkv: registering a client session: the cluster answered client id 0")
	}
	return resp.GetClientId(), nil
}

// do runs one call against the preferred endpoint, each attempt bounded by
// try (grown for the sends bytes the call carries), moving on to the next
// endpoint on a failure that another node may not have, until the context
// ends.
func (c *Client) do(ctx context.Context, try time.Duration, sends int, call func(context.Context, raftpb.KVClient) error) error {
	ctx, cancel := bounded(ctx, c.timeout)
	defer cancel()
	var bo backoff
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
		// A try gets time for the value it carries (limits.TryTimeout); a
		// reply's size is not known in advance, so each try that runs out
		// of time doubles the next one's (up to 8 times), letting a large
		// value's reply arrive on a slow machine while a dead node still
		// costs little.
		timedOut, err := c.attempt(ctx, c.kv[i], limits.TryTimeout(try, sends)<<min(slow, 3), call)
		if timedOut {
			slow++
		}
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
			bo.pause(ctx, nil)
		}
	}
}

// attempt runs call once at kv, for at most try. A long attempt (a write)
// probes the node every clientProbeEvery and is given up when the node is
// silent: a node that is alive answers the write itself once it knows the
// outcome.
func (c *Client) attempt(ctx context.Context, kv raftpb.KVClient, try time.Duration, call func(context.Context, raftpb.KVClient) error) (timedOut bool, err error) {
	tryCtx, cancel := context.WithTimeout(ctx, try)
	defer cancel()
	defer func() {
		timedOut = errors.Is(tryCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	}()
	if try <= clientTryTimeout {
		return false, call(tryCtx, kv)
	}
	done := make(chan error, 1)
	go func() { done <- call(tryCtx, kv) }()
	t := time.NewTicker(clientProbeEvery)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return false, err
		case <-t.C:
			if !alive(tryCtx, kv) {
				cancel()
				<-done
				return false, errEndpointSilent
			}
		}
	}
}

// alive probes a node with a read of the empty key: any node that runs
// refuses it at once (INVALID_ARGUMENT) without involving the cluster.
func alive(ctx context.Context, kv raftpb.KVClient) bool {
	ctx, cancel := context.WithTimeout(ctx, clientProbeTimeout)
	defer cancel()
	_, err := kv.Read(ctx, &raftpb.ReadRequest{})
	return err == nil || status.Code(err) == codes.InvalidArgument
}

// errInvalidRequest marks a request the server refused as malformed.
var errInvalidRequest = errors.New("raftkv: invalid request")

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
		return fmt.Errorf("%w: %s", errInvalidRequest, msg)
	case codes.Aborted:
		return fmt.Errorf("%w: %s", ErrStaleRequest, msg)
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", ErrSessionExpired, msg)
	case codes.ResourceExhausted:
		// gRPC's answer to a message over a receive or send limit: the
		// server's, for a write larger than its maxValueSize allows, or
		// this client's. Another node or a retry would refuse it again.
		return fmt.Errorf("%w: %s", ErrValueTooLarge, msg)
	case codes.Unknown:
		// The server's mark for an expired session after it had sent an
		// earlier copy (see toStatus); anything else unknown is the
		// transport's and worth a retry.
		if strings.HasPrefix(msg, ErrSessionExpired.Error()) {
			return outcomeUnknown(fmt.Errorf("%w: %s", ErrSessionExpired, msg))
		}
	}
	return nil
}
