package raftkv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/internal/limits"
	"google.golang.org/grpc/codes"
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
	// eps is the endpoints in use: those given to Dial, then the client
	// addresses of members the cluster reports (client_endpoints.go).
	eps   atomic.Pointer[endpointSet]
	epsMu sync.Mutex // serializes changes of eps, and Close
	// preferred is the endpoint that answered last.
	preferred atomic.Int64
	sessions  sessionPool
	timeout   time.Duration
	closeOnce sync.Once
	// closing is closed by Close, ending the calls in flight.
	closing  chan struct{}
	closeErr error
}

var _ KV = (*Client)(nil)

// clientTryTimeout bounds one read or status attempt at one endpoint: twice
// a node's own try (readTryTimeout), so that the node the client asks has
// time to try a second node itself when the first is silent.
const clientTryTimeout = 2 * readTryTimeout

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
// none does before ctx ends. The client then also uses the client
// addresses of the cluster's members as they come and go (see
// client_endpoints.go), until Close.
func Dial(ctx context.Context, endpoints ...string) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: Dial needs at least one endpoint", ErrInvalidOption)
	}
	c := &Client{timeout: DefaultRequestTimeout, closing: make(chan struct{})}
	c.sessions.register = c.registerSession
	c.eps.Store(&endpointSet{})
	if err := c.addEndpoints(endpoints); err != nil {
		c.Close()
		return nil, err
	}
	nodes, err := c.Status(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("raftkv: no endpoint of %v answered: %w", endpoints, err)
	}
	c.preferLeader(nodes)
	go c.syncEndpoints()
	return c, nil
}

// preferLeader points the client at the leader's endpoint when it is one of
// the client's, sparing every call the follower's forwarding hop.
func (c *Client) preferLeader(nodes []NodeStatus) {
	var leader uint64
	for _, n := range nodes {
		if n.Leader != 0 {
			leader = n.Leader
		}
	}
	for _, n := range nodes {
		if n.ID != leader {
			continue
		}
		if i := slices.Index(c.eps.Load().addrs, n.ClientAddress); i >= 0 {
			c.preferred.Store(int64(i))
		}
	}
}

// Close releases the connections; calls in flight end with ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.epsMu.Lock()
		defer c.epsMu.Unlock()
		close(c.closing)
		var errs []error
		for _, conn := range c.eps.Load().conns {
			errs = append(errs, conn.Close())
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Put inserts or overwrites key.
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	return c.write(ctx, clientpb.Op_OP_PUT, key, value)
}

// Update overwrites key only if it exists; otherwise ErrNotFound.
func (c *Client) Update(ctx context.Context, key string, value []byte) error {
	return c.write(ctx, clientpb.Op_OP_UPDATE, key, value)
}

// Remove deletes key; ErrNotFound when it is absent.
func (c *Client) Remove(ctx context.Context, key string) error {
	return c.write(ctx, clientpb.Op_OP_REMOVE, key, nil)
}

// Get returns key's value (linearizable), or ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validate(key, nil, 0); err != nil {
		return nil, err
	}
	var resp *clientpb.ReadResponse
	_, err := c.do(ctx, clientTryTimeout, 0, func(ctx context.Context, kv clientpb.KVClient) (err error) {
		resp, err = kv.Read(ctx, &clientpb.ReadRequest{Key: key})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetValue(), nil
}

// Status reports every node of the cluster, as one node sees it.
func (c *Client) Status(ctx context.Context) ([]NodeStatus, error) {
	var resp *clientpb.ClusterStatusResponse
	_, err := c.do(ctx, clientTryTimeout, 0, func(ctx context.Context, kv clientpb.KVClient) (err error) {
		resp, err = kv.Status(ctx, &clientpb.ClusterStatusRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	nodes := make([]NodeStatus, 0, len(resp.GetNodes()))
	for _, n := range resp.GetNodes() {
		nodes = append(nodes, apiwire.NodeFromClient(n))
	}
	return nodes, nil
}

// TransferLeadership asks the cluster's leader to hand leadership to node
// to (0: the leader picks the node holding most of its log), and returns
// once the old leader has seen to lead, in a later term. It reports the
// same errors as DB.TransferLeadership, with the same guarantees. An
// attempt whose answer is lost is sent again through another endpoint; if
// the cluster then answers that to already leads, the earlier attempt did
// it and the call returns nil; with to 0 the re-sent attempt may move
// leadership a second time.
func (c *Client) TransferLeadership(ctx context.Context, to uint64) error {
	ctx, cancel := bounded(ctx, c.timeout)
	defer cancel()
	sent := false
	_, err := c.do(ctx, clientWriteTryTimeout, 0, func(ctx context.Context, kv clientpb.KVClient) error {
		_, err := kv.TransferLeadership(ctx, &clientpb.TransferLeadershipRequest{To: to})
		if _, final := apiwire.FromStatus(err); !final {
			sent = true
		}
		return err
	})
	if sent && to != 0 && errors.Is(err, ErrInvalidTransfer) && c.leads(ctx, to) {
		return nil
	}
	return err
}

// leads reports whether the cluster's nodes say that node id leads.
func (c *Client) leads(ctx context.Context, id uint64) bool {
	nodes, err := c.Status(ctx)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.ID == id {
			return n.Reachable && n.Role == "leader"
		}
	}
	return false
}

func (c *Client) write(ctx context.Context, op clientpb.Op, key string, value []byte) error {
	// Keys are checked here, and values against the most any cluster
	// accepts; the cluster enforces its own value limit.
	if err := validate(key, value, limits.MaxValueSize); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx, c.timeout)
	defer cancel()
	return c.sessions.write(ctx, func(ctx context.Context, clientID, seq uint64) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, maxWriteRetry)
		defer cancel()
		req := &clientpb.WriteRequest{ClientId: clientID, Seq: seq, Op: op, Key: key, Value: value}
		// sent: an attempt ended without the cluster's answer, so that
		// copy may have been proposed (conservatively: it may also never
		// have left this process).
		sent := false
		final, err := c.do(ctx, clientWriteTryTimeout, len(key)+len(value), func(ctx context.Context, kv clientpb.KVClient) error {
			_, err := kv.Write(ctx, req)
			if _, final := apiwire.FromStatus(err); !final {
				sent = true
			}
			return err
		})
		if sent && (!final || errors.Is(err, ErrSessionExpired)) {
			err = apiwire.OutcomeUnknown(err)
		}
		return final, err
	})
}

// registerSession asks the cluster for a new client session.
func (c *Client) registerSession(ctx context.Context) (uint64, error) {
	var resp *clientpb.RegisterSessionResponse
	_, err := c.do(ctx, clientWriteTryTimeout, 0, func(ctx context.Context, kv clientpb.KVClient) (err error) {
		resp, err = kv.RegisterSession(ctx, &clientpb.RegisterSessionRequest{})
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
// endpoint on a failure that another node may not have, until the call is
// answered or the context ends (the shared retry loop, retry.go). final
// reports whether the cluster answered; err is then the answer, as the
// API's error.
func (c *Client) do(ctx context.Context, try time.Duration, sends int, call func(context.Context, clientpb.KVClient) error) (final bool, err error) {
	slow := 0
	return retry(ctx, c.timeout, c.closing, func(ctx context.Context) (next, error) {
		set := c.eps.Load()
		p := c.preferred.Load()
		i := int(p) % len(set.kv)
		// A try gets time for the value it carries (limits.TryTimeout); a
		// reply's size is not known in advance, so each try that runs out
		// of time doubles the next one's (up to 8 times), letting a large
		// value's reply arrive on a slow machine while a dead node still
		// costs little.
		timedOut, err := c.attempt(ctx, set.kv[i], limits.TryTimeout(try, sends)<<min(slow, 3), call)
		if timedOut {
			slow++
		}
		if err, final := apiwire.FromStatus(err); final {
			return answered, err
		}
		// This node is down, cut off or without a leader: try the next,
		// pausing after each round of them.
		// Compare with what was loaded, not with i: preferred may be
		// beyond the set (a set that grew, a concurrent call), and
		// comparing with i would then never move it, so every call would
		// retry the same dead endpoint for good.
		c.preferred.CompareAndSwap(p, int64((i+1)%len(set.kv)))
		if (i+1)%len(set.kv) == 0 {
			return later, err
		}
		return again, err
	})
}

// attempt runs call once at kv, for at most try. A long attempt (a write)
// probes the node every clientProbeEvery and is given up when the node is
// silent: a node that is alive answers the write itself once it knows the
// outcome. The call runs on the caller's goroutine and the probes on a
// timer's, so a write answered within clientProbeEvery (nearly all) costs
// no extra goroutine and no hand-over between goroutines.
func (c *Client) attempt(ctx context.Context, kv clientpb.KVClient, try time.Duration, call func(context.Context, clientpb.KVClient) error) (timedOut bool, err error) {
	tryCtx, cancel := context.WithTimeout(ctx, try)
	defer cancel()
	defer func() {
		timedOut = errors.Is(tryCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	}()
	if try <= clientTryTimeout {
		return false, call(tryCtx, kv)
	}
	p := &prober{ctx: tryCtx, cancel: cancel, kv: kv}
	p.start()
	err = call(tryCtx, kv)
	if p.stop() && err != nil {
		return false, errEndpointSilent
	}
	return false, err
}

// prober probes a node every clientProbeEvery while a call to it waits, and
// cancels the call when the node does not answer.
type prober struct {
	ctx    context.Context
	cancel context.CancelFunc
	kv     clientpb.KVClient

	mu     sync.Mutex
	timer  *time.Timer
	done   bool // the call returned: probe no more
	silent bool // a probe went unanswered and cancelled the call
}

func (p *prober) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = time.AfterFunc(clientProbeEvery, p.probe)
}

func (p *prober) probe() {
	ok := alive(p.ctx, p.kv)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	if !ok {
		p.silent = true
		p.cancel()
		return
	}
	p.timer.Reset(clientProbeEvery)
}

// stop ends the probing and reports whether a probe cancelled the call.
func (p *prober) stop() (silent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	p.timer.Stop()
	return p.silent
}

// alive probes a node with a read of the empty key: any node that runs
// refuses it at once (INVALID_ARGUMENT) without involving the cluster.
func alive(ctx context.Context, kv clientpb.KVClient) bool {
	ctx, cancel := context.WithTimeout(ctx, clientProbeTimeout)
	defer cancel()
	_, err := kv.Read(ctx, &clientpb.ReadRequest{})
	return err == nil || status.Code(err) == codes.InvalidArgument
}
