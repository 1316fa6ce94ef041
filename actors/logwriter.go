package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// Writing the Raft log off the node's goroutine.
//
// raftlogic runs with AsyncStorageWrites: the node hands each Ready's hard
// state and entries to the log writer (a child actor) and goes on stepping
// input — acknowledgements, reads, new proposals — while the disk syncs. The
// writer saves one batch at a time, in order, then sends the messages that
// waited on that batch (votes, append acknowledgements) and tells the node,
// which reports the entries durable to raftlogic (StableTo). Only then does
// a leader count its own entries toward commit.
//
// While a batch is being written the node merges every later Ready's
// changes into the next batch, so one Badger commit — one sync — covers
// everything that arrived during the previous one (group commit that grows
// with load). The messages of a Ready that writes nothing still wait behind
// the batches before it: an acknowledgement must never promise entries the
// disk does not hold yet.

// logWrite is one batch for the log writer: what to save, and the messages
// to send once it is durable.
type logWrite struct {
	hs      raftlogic.HardState
	entries []raftlogic.Entry
	// snap is set (Index > 0) only for the write of an installed snapshot,
	// which travels alone.
	snap raftlogic.SnapshotMeta
	// late are the messages that depend on this batch and every earlier
	// one, grouped for their replication actors.
	late []raftlogic.Message
	// sendTo resolves the peers of late, as the node knew them when the
	// batch was made.
	sendTo peerLinks
}

// logWritten reports a batch durable (err == nil), with the last entry it
// held; index 0 means it held no entries. store names the writer's storage:
// a report that reaches a later incarnation of the node (the node restarted
// while it was in flight) is not about its writes, and is ignored.
type logWritten struct {
	store       *persist.LogStore
	index, term uint64
	snap        bool
	err         error
}

// empty reports whether w has nothing to save and nothing to send.
func (w *logWrite) empty() bool {
	return w.hs.IsEmpty() && len(w.entries) == 0 && w.snap.Index == 0 && len(w.late) == 0
}

// merge adds a later Ready's changes to w: its hard state replaces w's, its
// entries replace w's from their first index on (a follower's log cut by a
// new leader), and its messages follow w's.
func (w *logWrite) merge(hs raftlogic.HardState, entries []raftlogic.Entry, late []raftlogic.Message) {
	if !hs.IsEmpty() {
		w.hs = hs
	}
	if len(entries) > 0 {
		if len(w.entries) > 0 && entries[0].Index <= w.entries[len(w.entries)-1].Index {
			keep := 0
			if first := w.entries[0].Index; entries[0].Index > first {
				keep = int(entries[0].Index - first)
			}
			w.entries = w.entries[:keep:keep]
		}
		w.entries = append(w.entries, entries...)
	}
	w.late = append(w.late, late...)
}

// logWriter is the child that owns writes to the node's Raft log.
type logWriter struct {
	store     *persist.LogStore
	clusterID string
}

func (a *logWriter) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *logWrite:
		a.write(ctx, msg)
	}
}

// write saves w, then sends its messages and reports it to the node. After
// a failed save it sends nothing: the node stops (fail-stop), and the
// messages would promise what the disk may not hold.
func (a *logWriter) write(ctx actor.Context, w *logWrite) {
	done := &logWritten{store: a.store, snap: w.snap.Index > 0}
	if err := a.store.Save(w.hs, w.entries, w.snap); err != nil {
		done.err = fmt.Errorf("persist raft log: %w", err)
		ctx.Send(ctx.Parent(), done)
		return
	}
	if k := len(w.entries); k > 0 {
		done.index, done.term = w.entries[k-1].Index, w.entries[k-1].Term
	}
	w.sendTo.send(ctx, a.clusterID, w.late)
	ctx.Send(ctx.Parent(), done)
}
