package raftkv

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/protobuf/proto"
)

// How the DB finds the leader: it sends to the node it believes leads; a
// node that does not lead answers with the leader it knows, and the DB
// follows that hint. While no leader is known it tries the nodes in turn,
// backing off a little so an election can finish.

const (
	// tryTimeout bounds one attempt at one node, so a dead node costs at
	// most this before the next is tried.
	tryTimeout = time.Second
	// noLeaderBackoff is the pause between rounds while no leader is known.
	noLeaderBackoff = 20 * time.Millisecond
)

// answer is what every node response carries for routing.
type answer interface {
	GetErrorCode() raftpb.ErrorCode
	GetLeaderId() uint64
}

// call sends the request build makes until a node gives a final answer or
// the context ends.
func (db *DB) call(ctx context.Context, build func(requestID uint64) proto.Message) (answer, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, db.timeout)
		defer cancel()
	}
	for failed := 0; ; {
		if db.closed.Load() {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		target := db.target()
		res, err := db.request(ctx, db.pids[target], build(db.reqID.Add(1)))
		if err != nil {
			// Unreachable or too slow: forget it as leader and move on. A
			// stopped local node fails at once, so pause after every round
			// of failures rather than spin.
			db.leader.CompareAndSwap(target, 0)
			if failed++; failed%len(db.ids) == 0 {
				pause(ctx, noLeaderBackoff)
			}
			continue
		}
		switch res.GetErrorCode() {
		case raftpb.ErrorCode_ERROR_CODE_NOT_LEADER, raftpb.ErrorCode_ERROR_CODE_TRANSFERRING, raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN:
			if l := res.GetLeaderId(); l != 0 && l != target && db.pids[l] != nil {
				db.leader.Store(l)
				continue
			}
			db.leader.CompareAndSwap(target, 0)
			pause(ctx, noLeaderBackoff)
		case raftpb.ErrorCode_ERROR_CODE_DROPPED, raftpb.ErrorCode_ERROR_CODE_TIMEOUT:
			// Lost in a leader change, or outcome unknown: retry. The
			// request's session makes a repeat harmless.
			pause(ctx, noLeaderBackoff)
		default:
			db.leader.Store(target)
			return res, nil
		}
	}
}

// target is the believed leader, or the next node in turn.
func (db *DB) target() uint64 {
	if l := db.leader.Load(); l != 0 {
		return l
	}
	return db.ids[int(db.next.Add(1))%len(db.ids)]
}

// request sends one routed request and waits for its answer, the try
// timeout or the context, whichever comes first.
func (db *DB) request(ctx context.Context, pid *actor.PID, msg proto.Message) (answer, error) {
	res, err := db.ask(ctx, pid, msg)
	if err != nil {
		return nil, err
	}
	a, ok := res.(answer)
	if !ok {
		return nil, fmt.Errorf("raftkv: unexpected answer %T", res)
	}
	return a, nil
}

// ask sends one message to a node and waits for any answer, the try
// timeout or the context, whichever comes first. The try timeout allows for
// the value the message carries, or its answer may carry.
func (db *DB) ask(ctx context.Context, pid *actor.PID, msg proto.Message) (any, error) {
	var carries int
	switch m := msg.(type) {
	case *raftpb.ProposeRequest:
		carries = len(m.GetPayload())
	case *raftpb.GetRequest:
		carries = db.cfg.MaxValueSize
	}
	wait := limits.TryTimeout(tryTimeout, carries)
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
	select {
	case <-done:
		return res, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
