package raftkv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	paremote "github.com/asynkron/protoactor-go/remote"
	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/protobuf/proto"
)

// How the DB finds the leader: it sends to the node it believes leads; a
// node that does not lead answers with the leader it knows, and the DB
// follows that hint. While no leader is known it tries the nodes in turn,
// backing off so an election can finish.
//
// How long it waits for one node. A read changes nothing, so it may be sent
// again at any time: it waits readTryTimeout at one node, then tries the
// next. A write is different: every copy sent becomes a log entry (copies
// are recognised only when applied), so re-sending a write because it is
// slow would put it into the log many times exactly when the cluster is
// slowest, and keep it overloaded. A leader answers every write it accepted
// (when it is applied, overwritten, or the leader steps down or stops: see
// the actors package), so the DB waits for that answer:
//
//   - at a node of this process, for as long as the node runs (checked every
//     localCheckInterval): a stopped node answers nothing more;
//   - at a node of another process, until the connection to it is lost
//     (protoactor's EndpointTerminatedEvent: the process died, or messages
//     may have been lost across a reconnect), or a node of this process
//     learns of another leader (the one waited on was replaced: paused or
//     cut off, it cannot say so itself), and at most remoteWriteTimeout,
//     since a process can also stop answering without any sign. A slow but
//     live remote leader costs one extra entry per remoteWriteTimeout of
//     delay, not one per second.
//
// Every copy of a write carries the same session and sequence number, so
// the state machine applies it at most once. Pauses between attempts back
// off exponentially with jitter (backoff).
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
	// backoffBase and backoffMax bound the pauses between retries.
	backoffBase = 10 * time.Millisecond
	backoffMax  = 500 * time.Millisecond
)

// errNotDelivered: the request never reached a node (a node of this process
// that is not running), so it cannot have been proposed.
var errNotDelivered = errors.New("raftkv: node not running")

// errNodeStopped: a node of this process stopped, or a node of another
// process lost its connection or its leadership, while a request waited for
// its answer; a write may have been proposed.
var errNodeStopped = errors.New("raftkv: node stopped or disconnected before answering")

// answer is what every node response carries for routing.
type answer interface {
	GetErrorCode() raftpb.ErrorCode
	GetLeaderId() uint64
}

// call sends the request build makes until a node gives a final answer or
// the context ends. write says the request is a proposal. sent reports
// whether a copy may have been accepted by a leader without a final answer
// (so it may be applied, or still be): only then is the outcome of a write
// that failed unknown.
func (db *DB) call(ctx context.Context, write bool, build func(requestID uint64) proto.Message) (_ answer, sent bool, _ error) {
	ctx, cancel := bounded(ctx, db.timeout)
	defer cancel()
	var bo backoff
	for failed := 0; ; {
		if db.closed.Load() {
			return nil, sent, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, sent, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		target := db.target()
		res, err := db.request(ctx, db.pids[target], build(db.reqID.Add(1)), write)
		if err != nil {
			if write && !errors.Is(err, errNotDelivered) {
				sent = true
			}
			// Unreachable, stopped or too slow: forget it as leader and
			// move on to the node after it. A stopped local node fails at
			// once, so pause after every round of failures rather than spin.
			db.leader.CompareAndSwap(target, 0)
			db.rotateAfter(target)
			if failed++; failed%len(db.ids) == 0 {
				bo.pause(ctx, db.closing)
			}
			continue
		}
		switch res.GetErrorCode() {
		case raftpb.ErrorCode_ERROR_CODE_NOT_LEADER, raftpb.ErrorCode_ERROR_CODE_TRANSFERRING, raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN:
			if db.follow(target, res.GetLeaderId()) {
				continue
			}
			bo.pause(ctx, db.closing)
		case raftpb.ErrorCode_ERROR_CODE_TIMEOUT:
			// The leader stepped down, stopped or installed a snapshot
			// before the command applied: it may still be applied. Send it
			// again (same session and sequence) where the hint points.
			sent = sent || write
			db.follow(target, res.GetLeaderId())
			bo.pause(ctx, db.closing)
		case raftpb.ErrorCode_ERROR_CODE_DROPPED:
			// Overwritten after a leader change: that copy never applies.
			bo.pause(ctx, db.closing)
		default:
			db.leader.Store(target)
			return res, sent, nil
		}
	}
}

// follow points the DB at leader, a hint from target, and reports whether
// the hint named another node worth trying; otherwise target is forgotten
// as leader.
func (db *DB) follow(target, leader uint64) bool {
	if leader != 0 && leader != target && db.pids[leader] != nil && !db.suspect(leader) {
		db.leader.Store(leader)
		return true
	}
	db.leader.CompareAndSwap(target, 0)
	return false
}

// target is the believed leader, or the next node in turn, passing over
// nodes whose connection was just lost while another is left.
func (db *DB) target() uint64 {
	if l := db.leader.Load(); l != 0 {
		return l
	}
	var id uint64
	for range db.ids {
		id = db.ids[int(db.next.Add(1))%len(db.ids)]
		if !db.suspect(id) {
			break
		}
	}
	return id
}

// rotateAfter makes the node after id the next one tried while no leader
// is known, so a node that just failed is not tried again at once.
func (db *DB) rotateAfter(id uint64) {
	for i, x := range db.ids {
		if x == id {
			db.next.Store(uint64(i))
			return
		}
	}
}

// request sends one routed request and waits for its answer (see ask).
func (db *DB) request(ctx context.Context, pid *actor.PID, msg proto.Message, write bool) (answer, error) {
	res, err := db.ask(ctx, pid, msg, write)
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
func (db *DB) ask(ctx context.Context, pid *actor.PID, msg proto.Message, write bool) (any, error) {
	proc, local := db.localNode(pid)
	if local && proc == nil {
		return nil, errNotDelivered
	}
	var carries int
	switch m := msg.(type) {
	case *raftpb.ProposeRequest:
		carries = len(m.GetPayload())
	case *raftpb.GetRequest:
		carries = db.cfg.MaxValueSize
	}
	losses, news := db.endpointLosses(pid.Address), db.leaderNews.Load()
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
	fut := db.sys.Root.RequestFuture(pid, msg, wait)
	done := make(chan struct{})
	var res any
	var err error
	go func() {
		res, err = fut.Result()
		close(done)
	}()
	var check <-chan time.Time
	if write {
		t := time.NewTicker(checkInterval)
		defer t.Stop()
		check = t.C
	}
	for {
		select {
		case <-done:
			if local && errors.Is(err, actor.ErrDeadLetter) {
				// The node was gone before the request reached it.
				return nil, errNotDelivered
			}
			return res, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-db.closing:
			return nil, ErrClosed
		case <-check:
			if p, _ := db.localNode(pid); p != proc || db.endpointLosses(pid.Address) != losses {
				return nil, errNodeStopped
			}
			if !local && db.replaced(pid, news) {
				return nil, errNodeStopped
			}
		}
	}
}

// localNode returns the running actor of a node hosted by this process
// (nil when it is not running); local is false for nodes of other
// processes.
func (db *DB) localNode(pid *actor.PID) (proc actor.Process, local bool) {
	for _, id := range db.hosted {
		if db.pids[id].Equal(pid) {
			if p, ok := db.sys.ProcessRegistry.GetLocal(pid.Id); ok {
				return p, true
			}
			return nil, true
		}
	}
	return nil, false
}

// bounded gives a context without a deadline the request timeout d.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// replaced reports whether a node of this process learned, since news, of
// a leader other than the node at pid.
func (db *DB) replaced(pid *actor.PID, news uint64) bool {
	if db.leaderNews.Load() == news {
		return false
	}
	l := db.seenLeader.Load()
	return l != 0 && db.pids[l] != nil && !db.pids[l].Equal(pid)
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
func (db *DB) endpointLosses(address string) uint64 {
	if l, ok := db.lostEndpoints.Load(address); ok {
		return l.(*endpointLoss).count.Load()
	}
	return 0
}

// suspect reports whether the connection to node id is lost: its peers may
// still name it as leader until they elect another, and following them
// would wait out protoactor's reconnect cycle at a dead process.
func (db *DB) suspect(id uint64) bool {
	pid := db.pids[id]
	if pid == nil {
		return false
	}
	v, ok := db.lostEndpoints.Load(pid.Address)
	if !ok {
		return false
	}
	l := v.(*endpointLoss)
	return l.down.Load() && time.Since(time.Unix(0, l.last.Load())) < suspectFor
}

// watchEndpoints records lost and restored connections to other processes,
// from protoactor's endpoint events. It returns the unsubscribe func.
func (db *DB) watchEndpoints() func() {
	loss := func(addr string) *endpointLoss {
		l, _ := db.lostEndpoints.LoadOrStore(addr, new(endpointLoss))
		return l.(*endpointLoss)
	}
	sub := db.sys.EventStream.Subscribe(func(evt any) {
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
	return func() { db.sys.EventStream.Unsubscribe(sub) }
}

// backoff spaces out one call's retries: exponentially from backoffBase to
// backoffMax, each pause drawn from the upper half of its range, so callers
// that failed together do not all retry together.
type backoff struct{ n uint }

func (b *backoff) pause(ctx context.Context, closing <-chan struct{}) {
	d := min(backoffMax, backoffBase<<min(b.n, 16))
	b.n++
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-closing:
	}
}
