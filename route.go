package raftkv

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	paremote "github.com/asynkron/protoactor-go/remote"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/protobuf/proto"
)

// The router takes a request of this process (the embedded DB's, or the
// client API's on behalf of a network client) to the node that leads, over
// protoactor (a local PID, or remote). How it finds the leader: it sends to
// the node it believes leads; a node that does not lead answers with the
// leader it knows, and the router follows that hint. While no leader is known it tries the nodes in turn,
// backing off so an election can finish.
//
// How long it waits for one node. A read changes nothing, so it may be sent
// again at any time: it waits readTryTimeout at one node, then tries the
// next. A write is different: every copy sent becomes a log entry (copies
// are recognised only when applied), so re-sending a write because it is
// slow would put it into the log many times exactly when the cluster is
// slowest, and keep it overloaded. A leader answers every write it accepted
// (when it is applied, overwritten, or the leader steps down or stops: see
// the actors package), so the router waits for that answer:
//
//   - at a node of this process, for as long as the node runs (checked every
//     localCheckInterval): a stopped node answers nothing more;
//   - at a node of another process, until the connection to it is lost
//     (protoactor's EndpointTerminatedEvent: the process died, or messages
//     may have been lost across a reconnect), or a node of this process
//     learns of another leader (the one waited on was replaced: paused or
//     cut off, it cannot say so itself; not for a leadership transfer,
//     whose leader is replaced by design and answers once it sees that),
//     and at most remoteWriteTimeout,
//     since a process can also stop answering without any sign. A slow but
//     live remote leader costs one extra entry per remoteWriteTimeout of
//     delay, not one per second.
//
// Every copy of a write carries the same session and sequence number, so
// the state machine applies it at most once. The attempts run in the retry
// loop the Client shares (retry.go): pauses back off exponentially with
// jitter, and what a node's answer code means (answer, follow the hint,
// send again) is the error table's (internal/apiwire).
//
// How long a write is retried. Retrying helps only while the write's session
// is alive: a copy that arrives after the session expired is refused (never
// executed; see kvstate), and the write then ends as ErrOutcomeUnknown. A
// session outlives its last command by kvstate's session TTL, 2^20
// entries, about 58 s at the fastest write rate measured here (18,100
// puts/s); a write is retried for at most maxWriteRetry = 20 s, a third of
// that, whatever the caller's deadline. Safety does not depend on these
// numbers (an expired session runs nothing); they keep "outcome unknown"
// rare.

const (
	// readTryTimeout bounds one read or status attempt at one node.
	readTryTimeout = time.Second
	// remoteWriteTimeout bounds the wait for a write's answer from a node
	// in another process.
	remoteWriteTimeout = 5 * time.Second
	// checkInterval is how often a waiting write checks that its node
	// still runs (this process) or is still connected (another process).
	checkInterval = 50 * time.Millisecond
	// maxWriteRetry bounds the time one write is retried (see above).
	maxWriteRetry = 20 * time.Second
)

// errNotDelivered: the request never reached a node (a node of this process
// that is not running), so it cannot have been proposed.
var errNotDelivered = errors.New("raftkv: node not running")

// errNodeStopped: a node of this process stopped, or a node of another
// process lost its connection or its leadership, while a request waited for
// its answer; a write may have been proposed.
var errNodeStopped = errors.New("raftkv: node stopped or disconnected before answering")

// router routes requests to the leader. It is shared by the DB's requests
// and the client API's (see gateway), and is safe for concurrent use.
type router struct {
	sys *actor.ActorSystem
	// table is where each node is reached; it grows as the hosted nodes
	// learn of members added at run time (learn).
	table     atomic.Pointer[routeTable]
	tableMu   sync.Mutex // serializes learn
	hosted    []uint64   // the nodes of this process
	clusterID string
	// maxValue is the configuration's maxValueSize: what a read's answer
	// may carry.
	maxValue int
	timeout  time.Duration
	// closing is closed when the DB closes, ending every wait in flight.
	closing <-chan struct{}

	// leader is the node believed to lead; 0 when unknown.
	leader atomic.Uint64
	// next rotates through the nodes while no leader is known.
	next atomic.Uint64
	// seenLeader is the newest leader a hosted node learned of (of term
	// seenTerm), and leaderNews counts such news (see noteLeader).
	seenLeader, leaderNews atomic.Uint64
	seenMu                 sync.Mutex
	seenTerm               uint64
	// lostEndpoints records lost connections per remote address
	// (*endpointLoss; see watchEndpoints).
	lostEndpoints sync.Map
	// attempts counts the requests sent to nodes, for tests.
	attempts atomic.Uint64
}

// routeTable is where the router reaches each node. It is never changed
// once published: learn publishes a new one.
type routeTable struct {
	pids map[uint64]*actor.PID
	// ids is every node, configured ones in configuration order, then
	// those learned, in the order learned.
	ids []uint64
	// addrs are each node's addresses, for status reports.
	addrs map[uint64]nodeAddrs
}

// nodeAddrs are where a node listens: its peer address and its client API
// address ("" when it serves none).
type nodeAddrs struct{ peer, client string }

func (r *router) pid(id uint64) *actor.PID { return r.table.Load().pids[id] }
func (r *router) ids() []uint64            { return r.table.Load().ids }

// learn records where node id is reached, if the router does not know it
// yet (a member added at run time); the configured nodes are known from
// the start.
func (r *router) learn(id uint64, pid *actor.PID, a nodeAddrs) {
	r.tableMu.Lock()
	defer r.tableMu.Unlock()
	old := r.table.Load()
	if old.pids[id] != nil {
		return
	}
	t := &routeTable{pids: maps.Clone(old.pids), ids: append(slices.Clone(old.ids), id), addrs: maps.Clone(old.addrs)}
	t.pids[id], t.addrs[id] = pid, a
	r.table.Store(t)
}

// noteLeader takes the news that leader leads term from a hosted node: the
// freshest knowledge of the leader in this process. Calls are routed there
// at once, and a write waiting at a node of another process that no longer
// leads stops waiting (see replaced). News of an older term than already
// heard (a lagging node) is ignored.
func (r *router) noteLeader(leader, term uint64) {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	if term < r.seenTerm {
		return
	}
	r.seenTerm = term
	r.seenLeader.Store(leader)
	r.leaderNews.Add(1)
	r.leader.Store(leader)
}

// answer is what every node response carries for routing.
type answer interface {
	GetErrorCode() raftpb.ErrorCode
	GetLeaderId() uint64
}

// call sends the request build makes until a node gives a final answer, the
// context ends or the DB closes. write says the request is a proposal. sent
// reports whether a copy may have been accepted by a leader without a final
// answer (so it may be applied, or still be): only then is the outcome of a
// write that failed unknown.
func (r *router) call(ctx context.Context, write bool, msg proto.Message) (_ answer, sent bool, _ error) {
	var res answer
	failed := 0
	_, err := retry(ctx, r.timeout, r.closing, func(ctx context.Context) (next, error) {
		target := r.target()
		r.attempts.Add(1)
		a, err := r.request(ctx, r.pid(target), msg, write)
		if err != nil {
			if write && !errors.Is(err, errNotDelivered) {
				sent = true
			}
			// Unreachable, stopped or too slow: forget it as leader and
			// move on to the node after it. A stopped local node fails at
			// once, so pause after every round of failures rather than spin.
			r.leader.CompareAndSwap(target, 0)
			r.rotateAfter(target)
			if failed++; failed%len(r.ids()) == 0 {
				return later, fmt.Errorf("node %d: %w", target, err)
			}
			return again, fmt.Errorf("node %d: %w", target, err)
		}
		switch apiwire.WireClass(a.GetErrorCode()) {
		case apiwire.Redirect:
			if a.GetErrorCode() == raftpb.ErrorCode_ERROR_CODE_TRANSFERRING {
				// The leader is handing over to the node it names, which
				// does not lead yet and would send the request straight
				// back: ask there after a pause, not in a tight loop for
				// as long as the transfer takes.
				r.follow(target, a.GetLeaderId())
				return later, notAnswered(target, a)
			}
			if r.follow(target, a.GetLeaderId()) {
				return again, nil
			}
			return later, notAnswered(target, a)
		case apiwire.ResendUnknown:
			// The leader stepped down, stopped or installed a snapshot
			// before the command applied: it may still be applied. Send it
			// again (same session and sequence) where the hint points.
			sent = sent || write
			r.follow(target, a.GetLeaderId())
			return later, notAnswered(target, a)
		case apiwire.Resend:
			// Overwritten after a leader change: that copy never applies.
			return later, notAnswered(target, a)
		}
		r.leader.Store(target)
		res = a
		return answered, nil
	})
	return res, sent, err
}

// notAnswered says why a node's answer was not the request's, for the
// error the request ends with if no other answer comes.
func notAnswered(target uint64, a answer) error {
	return fmt.Errorf("node %d answered %s", target, a.GetErrorCode())
}

// follow points the router at leader, a hint from target, and reports whether
// the hint named another node worth trying; otherwise target is forgotten
// as leader.
func (r *router) follow(target, leader uint64) bool {
	if leader != 0 && leader != target && r.pid(leader) != nil && !r.suspect(leader) {
		r.leader.Store(leader)
		return true
	}
	r.leader.CompareAndSwap(target, 0)
	return false
}

// target is the believed leader, or the next node in turn, passing over
// nodes whose connection was just lost while another is left.
func (r *router) target() uint64 {
	if l := r.leader.Load(); l != 0 {
		return l
	}
	var id uint64
	ids := r.ids()
	for range ids {
		id = ids[int(r.next.Add(1))%len(ids)]
		if !r.suspect(id) {
			break
		}
	}
	return id
}

// rotateAfter makes the node after id the next one tried while no leader
// is known, so a node that just failed is not tried again at once.
func (r *router) rotateAfter(id uint64) {
	for i, x := range r.ids() {
		if x == id {
			r.next.Store(uint64(i))
			return
		}
	}
}

// request sends one routed request and waits for its answer (see ask).
func (r *router) request(ctx context.Context, pid *actor.PID, msg proto.Message, write bool) (answer, error) {
	res, err := r.ask(ctx, pid, msg, write)
	if err != nil {
		return nil, err
	}
	a, ok := res.(answer)
	if !ok {
		return nil, fmt.Errorf("raftkv: unexpected answer %T", res)
	}
	return a, nil
}

// ask sends one message to a node and waits for any answer, the context,
// Close, or the end of the wait for one attempt (see the top of this file):
// readTryTimeout for reads; for writes, for as long as a node of this
// process runs, or a node of another process stays connected (at most
// remoteWriteTimeout). Waits on other processes allow for the value the
// message carries, or its answer may carry (limits.TryTimeout).
func (r *router) ask(ctx context.Context, pid *actor.PID, msg proto.Message, write bool) (any, error) {
	proc, local := r.localNode(pid)
	if local && proc == nil {
		return nil, errNotDelivered
	}
	var carries int
	switch m := msg.(type) {
	case *raftpb.ProposeRequest:
		carries = len(m.GetPayload())
	case *raftpb.GetRequest:
		carries = r.maxValue
	}
	losses, news := r.endpointLosses(pid.Address), r.leaderNews.Load()
	wait := limits.TryTimeout(readTryTimeout, carries)
	switch {
	case write && local:
		wait = maxWriteRetry // in practice the context's end
	case write:
		wait = limits.TryTimeout(remoteWriteTimeout, carries)
	}
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	if wait <= 0 {
		return nil, context.DeadlineExceeded
	}
	box := newReplyBox(r.sys)
	defer box.close()
	r.sys.Root.RequestWithCustomSender(pid, msg, box.pid)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	var check <-chan time.Time
	if write {
		t := time.NewTicker(checkInterval)
		defer t.Stop()
		check = t.C
	}
	for {
		select {
		case res := <-box.ch:
			if _, dead := res.(*actor.DeadLetterResponse); dead {
				if local {
					// The node was gone before the request reached it.
					return nil, errNotDelivered
				}
				return nil, actor.ErrDeadLetter
			}
			return res, nil
		case <-timeout.C:
			return nil, actor.ErrTimeout
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.closing:
			return nil, ErrClosed
		case <-check:
			if p, _ := r.localNode(pid); p != proc || r.endpointLosses(pid.Address) != losses {
				return nil, errNodeStopped
			}
			// A transfer's leader is replaced by design, and answers
			// itself once it sees that (or gives up, in a few election
			// timeouts): re-sending would start another transfer.
			if _, transfer := msg.(*raftpb.TransferRequest); !local && !transfer && r.replaced(pid, news) {
				return nil, errNodeStopped
			}
		}
	}
}

// localNode returns the running actor of a node hosted by this process
// (nil when it is not running); local is false for nodes of other
// processes.
func (r *router) localNode(pid *actor.PID) (proc actor.Process, local bool) {
	for _, id := range r.hosted {
		if r.pid(id).Equal(pid) {
			if p, ok := r.sys.ProcessRegistry.GetLocal(pid.Id); ok {
				return p, true
			}
			return nil, true
		}
	}
	return nil, false
}

// replaced reports whether a node of this process learned, since news, of
// a leader other than the node at pid.
func (r *router) replaced(pid *actor.PID, news uint64) bool {
	if r.leaderNews.Load() == news {
		return false
	}
	l := r.seenLeader.Load()
	lp := r.pid(l)
	return l != 0 && lp != nil && !lp.Equal(pid)
}

// endpointLoss records the lost connections to one remote address.
type endpointLoss struct {
	count atomic.Uint64
	down  atomic.Bool  // lost and not connected again since
	last  atomic.Int64 // when it was last lost, Unix nanoseconds
}

// suspectFor bounds how long a lost connection makes its node a suspect.
// While the node stays down, the node's peers in this process keep trying
// to reach it, and protoactor reports each failed attempt (every 2 s), so a
// dead node stays suspect; the bound only keeps a stale report from hiding
// a live node for long.
const suspectFor = 3 * time.Second

// endpointLosses counts the connections to address lost so far (see
// watchEndpoints); a request waiting on a node there is lost with them.
func (r *router) endpointLosses(address string) uint64 {
	if l, ok := r.lostEndpoints.Load(address); ok {
		return l.(*endpointLoss).count.Load()
	}
	return 0
}

// suspect reports whether the connection to node id is lost: its peers may
// still name it as leader until they elect another, and following them
// would wait out protoactor's reconnect cycle at a dead process.
func (r *router) suspect(id uint64) bool {
	pid := r.pid(id)
	if pid == nil {
		return false
	}
	v, ok := r.lostEndpoints.Load(pid.Address)
	if !ok {
		return false
	}
	l := v.(*endpointLoss)
	return l.down.Load() && time.Since(time.Unix(0, l.last.Load())) < suspectFor
}

// watchEndpoints records lost and restored connections to other processes,
// from protoactor's endpoint events. It returns the unsubscribe func.
func (r *router) watchEndpoints() func() {
	loss := func(addr string) *endpointLoss {
		l, _ := r.lostEndpoints.LoadOrStore(addr, new(endpointLoss))
		return l.(*endpointLoss)
	}
	sub := r.sys.EventStream.Subscribe(func(evt any) {
		// Runs on the publisher's goroutine: record, nothing more.
		switch e := evt.(type) {
		case *paremote.EndpointTerminatedEvent:
			l := loss(e.Address)
			l.last.Store(time.Now().UnixNano())
			l.down.Store(true)
			l.count.Add(1)
		case *paremote.EndpointConnectedEvent:
			loss(e.Address).down.Store(false)
		}
	})
	return func() { r.sys.EventStream.Unsubscribe(sub) }
}
