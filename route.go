package raftkv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
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
//   - at a node of another process, at most remoteWriteTimeout, since a
//     process can die, or a message be lost across a reconnect, without any
//     sign. A slow but live remote leader costs one extra entry per
//     remoteWriteTimeout of delay, not one per second.
//
// Every copy of a write carries the same session and sequence number, so
// the state machine applies it at most once. Pauses between attempts back
// off exponentially with jitter (backoff).
//
// How long a write is retried. Retrying helps only while the write's session
// is alive: a copy that arrives after the session expired is refused (never
// executed; see kvstate), and the write then ends as ErrOutcomeUnknown. A
// session outlives its last command by kvstate.DefaultSessionTTL = 2^20
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
	// localCheckInterval is how often a write waiting at a node of this
	// process checks that the node still runs.
	localCheckInterval = 50 * time.Millisecond
	// maxWriteRetry bounds the time one write is retried (see above).
	maxWriteRetry = 20 * time.Second
	// backoffBase and backoffMax bound the pauses between retries.
	backoffBase = 10 * time.Millisecond
	backoffMax  = 500 * time.Millisecond
)

// errNotDelivered: the request never reached a node (a node of this process
// that is not running), so it cannot have been proposed.
var errNotDelivered = errors.New("raftkv: node not running")

// errNodeStopped: a node of this process stopped while a request waited
// for its answer; a write may have been proposed.
var errNodeStopped = errors.New("raftkv: node stopped before answering")

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
			// move on. A stopped local node fails at once, so pause after
			// every round of failures rather than spin.
			db.leader.CompareAndSwap(target, 0)
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
// the hint named another node; otherwise target is forgotten as leader.
func (db *DB) follow(target, leader uint64) bool {
	if leader != 0 && leader != target && db.pids[leader] != nil {
		db.leader.Store(leader)
		return true
	}
	db.leader.CompareAndSwap(target, 0)
	return false
}

// target is the believed leader, or the next node in turn.
func (db *DB) target() uint64 {
	if l := db.leader.Load(); l != 0 {
		return l
	}
	return db.ids[int(db.next.Add(1))%len(db.ids)]
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
// readTryTimeout for reads; for writes remoteWriteTimeout at a node of
// another process, and for as long as it runs at a node of this one.
func (db *DB) ask(ctx context.Context, pid *actor.PID, msg proto.Message, write bool) (any, error) {
	proc, local := db.localNode(pid)
	if local && proc == nil {
		return nil, errNotDelivered
	}
	wait := readTryTimeout
	switch {
	case write && local:
		wait = maxWriteRetry // in practice the context's end
	case write:
		wait = remoteWriteTimeout
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
	if local && write {
		t := time.NewTicker(localCheckInterval)
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
			if p, _ := db.localNode(pid); p != proc {
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
