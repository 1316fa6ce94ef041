package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// applyActor applies committed entries to the state machine in order,
// answers the clients waiting for them, and serves reads once the state
// machine has caught up with their read index.
//
// Every proposal it is told to wait for gets exactly one answer: its
// result when its index is applied, DROPPED when another entry took the
// index, or TIMEOUT (outcome unknown) when the node stops leading, installs
// a snapshot over it, or this actor stops or restarts. Senders therefore
// wait for the answer instead of re-proposing on a timer, so a slow commit
// does not put one command in the log many times.
//
// The state machine does not commit each batch it applies (see
// kvstate.State.Apply): this actor commits on a timer (stateFlushInterval)
// and before it stops, and reports both how far it applied and how far
// that is committed (appliedUpTo).
type applyActor struct {
	sm       *kvstate.State
	logStore *persist.LogStore
	log      *slog.Logger
	hooks    *testHooks
	// stateDir and diskReserve: the state machine's writes are refused
	// like the log's when they would leave less than the reserve free.
	stateDir    string
	diskReserve int64

	applied uint64
	waiters map[uint64]awaitProposal
	// reads wait for applied to reach their index; kept sorted by index.
	reads []readAt
	// flushTimer, when not nil, is armed to send flushState: entries are
	// applied and not yet committed.
	flushTimer *time.Timer
}

// stateFlushInterval is how long applied entries may stay uncommitted in
// the state machine. Committing each batch cost a synced Badger commit per
// batch on the disk the Raft log syncs to (a log save took 600-760 µs in a
// 3-node cluster on one disk against 264 µs alone); committing less often
// gave 18-19% more puts/s. The price of a longer interval is replay after a
// crash (the entries are still in the log, which is compacted only behind
// the committed index) and a bigger pending transaction, which Apply bounds
// on its own. 20 ms is well below a human-visible delay and, at tens of
// thousands of puts/s, a few hundred entries to replay.
const stateFlushInterval = 20 * time.Millisecond

func (a *applyActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.started(ctx)
	case *actor.Stopping, *actor.Restarting:
		a.stopping(ctx)
	case *flushState:
		a.flushState(ctx)
	case *awaitProposal:
		if old, ok := a.waiters[msg.index]; ok {
			// Only possible if a waiter of an earlier term was never told
			// its leader stepped down; answer it rather than forget it.
			a.unknown(ctx, old, 0, "outcome unknown: its index was proposed again; retry")
		}
		a.waiters[msg.index] = *msg
	case *leadershipLost:
		a.abandonWaiters(ctx, msg.leader, "outcome unknown: the leader stepped down before the command was applied; retry at the new leader")
	case *applyEntries:
		a.applyEntries(ctx, msg.entries)
	case *readAt:
		a.addRead(ctx, *msg)
	case *installSnapshot:
		a.install(ctx, msg)
	}
}

// started takes the state machine's applied index: after a restart that
// followed a failed Apply, uncommitted entries were dropped and it is the
// durable index again.
func (a *applyActor) started(ctx actor.Context) {
	a.applied, _ = a.sm.Applied()
	a.waiters = map[uint64]awaitProposal{}
	// After a restart the node may be holding entries for the batch this
	// actor lost.
	ctx.Send(ctx.Parent(), &applyStarted{applied: a.applied})
}

// stopping answers the waiting clients and commits what was applied, so
// that a clean stop leaves nothing to replay. (A restart after a failed
// Apply finds nothing pending: kvstate dropped it.)
func (a *applyActor) stopping(ctx actor.Context) {
	// A restarted instance starts with no waiters, and a stopped one
	// answers nobody: tell the waiting clients now.
	a.abandonWaiters(ctx, 0, "outcome unknown: the node is stopping or its apply actor restarted; retry")
	if a.flushTimer != nil {
		a.flushTimer.Stop()
		a.flushTimer = nil
	}
	if err := a.sm.Flush(); err != nil {
		a.log.Error("commit applied entries on stop", "err", err)
	}
}

// flushState commits the entries applied since the last commit, and tells
// the node the log may be compacted behind them.
func (a *applyActor) flushState(ctx actor.Context) {
	a.flushTimer = nil
	if err := a.sm.Flush(); err != nil {
		// The uncommitted entries are dropped; the node stops rather
		// than carry on from state that went back.
		a.applied, _ = a.sm.Applied()
		ctx.Send(ctx.Parent(), &failStop{err: fmt.Errorf("apply: commit: %w", err)})
		return
	}
	a.report(ctx)
}

// report tells the node how far the state machine has applied and
// committed, and arms the flush timer while something is uncommitted.
func (a *applyActor) report(ctx actor.Context) {
	durable, _ := a.sm.Durable()
	if durable < a.applied && a.flushTimer == nil {
		every := stateFlushInterval
		if a.hooks != nil && a.hooks.stateFlushInterval > 0 {
			every = a.hooks.stateFlushInterval
		}
		// Sent through the root context: an actor's context must not be
		// used from another goroutine. A tick that reaches a later
		// incarnation of this actor only commits early.
		root, self := ctx.ActorSystem().Root, ctx.Self()
		a.flushTimer = time.AfterFunc(every, func() { root.Send(self, &flushState{}) })
	}
	ctx.Send(ctx.Parent(), &appliedUpTo{index: a.applied, durable: durable})
}

func (a *applyActor) applyEntries(ctx actor.Context, ents []raftlogic.Entry) {
	// A restart of this actor loses the batch it failed on; the entries are
	// still in the log, so fetch whatever is missing before this batch.
	if len(ents) > 0 && ents[0].Index > a.applied+1 {
		missing, err := a.logStore.Entries(a.applied+1, ents[0].Index)
		if err != nil {
			ctx.Send(ctx.Parent(), &failStop{err: fmt.Errorf("apply: fetch entries %d..%d: %w", a.applied+1, ents[0].Index-1, err)})
			return
		}
		ents = append(missing, ents...)
	}
	if a.hooks != nil && a.hooks.beforeApply != nil {
		a.hooks.beforeApply(ents)
	}
	if err := persist.CheckSpace(a.stateDir, a.diskReserve, entriesSize(ents)); err != nil {
		ctx.Send(ctx.Parent(), &failStop{err: fmt.Errorf("apply entries: %w", err)})
		return
	}
	// Entries already applied (before a restart) are skipped by kvstate.
	// Clients are answered as soon as the results are decided, before the
	// state machine commits them (the flush timer does): the answers
	// follow from the committed log alone, so a crash before the commit
	// changes none of them. Reads see the applied entries, committed or
	// not (serveReads below): a crash before the commit cannot take back
	// what a read saw, since the entries are committed in the log and
	// applied again from it.
	_, err := a.sm.Apply(ents, func(results []kvstate.Result) {
		for _, r := range results {
			a.answer(ctx, r)
		}
	})
	// A failed Apply drops what was uncommitted: follow the state machine.
	a.applied, _ = a.sm.Applied()
	if err != nil {
		ctx.Send(ctx.Parent(), &failStop{err: fmt.Errorf("apply entries: %w", err)})
		return
	}
	a.serveReads(ctx)
	a.report(ctx)
}

// entriesSize estimates the bytes applying ents writes.
func entriesSize(ents []raftlogic.Entry) int64 {
	var n int64
	for _, e := range ents {
		n += int64(len(e.Data)) + 64
	}
	return n
}

// answer tells the client waiting at r.Index what became of its command.
// A different term at that index means the command was overwritten by a
// new leader: it will never apply, so the client may safely retry.
func (a *applyActor) answer(ctx actor.Context, r kvstate.Result) {
	w, ok := a.waiters[r.Index]
	if !ok {
		return
	}
	delete(a.waiters, r.Index)
	resp := &raftpb.ProposeResponse{Index: r.Index, Term: r.Term}
	switch {
	case r.Term != w.term:
		resp.ErrorCode = raftpb.ErrorCode_ERROR_CODE_DROPPED
		resp.Message = "the command was overwritten after a leader change"
	case r.Err != nil:
		resp.ErrorCode, resp.Message = resultCode(r.Err), r.Err.Error()
	}
	ctx.Send(w.replyTo, resp)
}

// resultCode maps a state machine answer onto the wire, by the error
// table (internal/apiwire) that every other translation of it reads.
func resultCode(err error) raftpb.ErrorCode { return apiwire.WireCode(err) }

func (a *applyActor) addRead(ctx actor.Context, r readAt) {
	i := sort.Search(len(a.reads), func(i int) bool { return a.reads[i].index > r.index })
	a.reads = append(a.reads, readAt{})
	copy(a.reads[i+1:], a.reads[i:])
	a.reads[i] = r
	a.serveReads(ctx)
}

func (a *applyActor) serveReads(ctx actor.Context) {
	i := 0
	for ; i < len(a.reads) && a.reads[i].index <= a.applied; i++ {
		r := a.reads[i]
		resp := &raftpb.GetResponse{}
		v, err := a.sm.Get(r.key)
		switch {
		case err == nil:
			resp.Value = v
		case errors.Is(err, kvstate.ErrNotFound):
			resp.ErrorCode = raftpb.ErrorCode_ERROR_CODE_NOT_FOUND
		default:
			resp.ErrorCode, resp.Message = raftpb.ErrorCode_ERROR_CODE_INTERNAL, err.Error()
		}
		ctx.Send(r.replyTo, resp)
	}
	a.reads = a.reads[i:]
}

// install replaces the state machine with a snapshot image. Waiters for
// entries the image covers cannot learn their own outcome from it; they are
// told to retry, which the client session makes safe.
func (a *applyActor) install(ctx actor.Context, msg *installSnapshot) {
	index, term, err := a.restoreImage(ctx, msg)
	if err == nil {
		a.applied = index
		for i, w := range a.waiters {
			if i <= index {
				delete(a.waiters, i)
				a.unknown(ctx, w, 0, "outcome unknown: the node installed a snapshot; retry")
			}
		}
		a.serveReads(ctx)
	}
	ctx.Respond(&snapshotInstalled{gen: msg.gen, index: index, term: term, err: err})
}

// abandonWaiters answers every waiting proposal with TIMEOUT (outcome
// unknown), pointing at leader when it is known.
func (a *applyActor) abandonWaiters(ctx actor.Context, leader uint64, why string) {
	for i, w := range a.waiters {
		delete(a.waiters, i)
		a.unknown(ctx, w, leader, why)
	}
}

func (a *applyActor) unknown(ctx actor.Context, w awaitProposal, leader uint64, why string) {
	ctx.Send(w.replyTo, &raftpb.ProposeResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_TIMEOUT, LeaderId: leader, Message: why})
}
