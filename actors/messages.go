package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
)

// Messages between a node and its children. They never leave the process,
// so they are plain Go values; everything that crosses nodes is a proto
// message from remote/raftpb.

// tick is one unit of Raft time, sent by the election actor.
type tick struct{}

// flushReady asks the node to handle raftlogic's Ready. The node sends it to
// itself once per burst of input: every message already queued is handled
// first, so one Ready — one write and one fsync — covers all of them (group
// commit).
type flushReady struct{}

// outbound carries messages for one peer to its replication actor.
type outbound struct {
	msgs []raftlogic.Message
}

// snapshotDone reports how streaming a snapshot to a peer ended.
type snapshotDone struct {
	peer uint64
	ok   bool
}

// applyEntries hands committed entries to the apply actor, in order.
type applyEntries struct {
	entries []raftlogic.Entry
}

// awaitProposal asks the apply actor to answer replyTo when the entry at
// index is applied. The node sends it before the entry can be committed, so
// it always arrives first.
type awaitProposal struct {
	index, term uint64
	replyTo     *actor.PID
}

// leadershipLost tells the apply actor that the node no longer leads. The
// proposals still waiting may or may not commit under the next leader, and
// this node may never hear which (it may be cut off), so they are answered
// at once with ERROR_CODE_TIMEOUT (outcome unknown), naming leader (0 if
// unknown): their senders re-send them there under the same session and
// sequence number, which applies each at most once.
type leadershipLost struct {
	leader uint64
}

// readAt asks the apply actor to read key once it has applied index.
type readAt struct {
	index   uint64
	key     string
	replyTo *actor.PID
}

// appliedUpTo tells the node how far the state machine has applied: index
// is what reads see (kvstate.State.Applied), for handing over the next
// batch; durable is what is committed (kvstate.State.Durable), for
// compacting the log behind it.
type appliedUpTo struct {
	index, durable uint64
}

// applyStarted tells the node that an apply actor started (after a restart
// by its supervisor, too) with nothing in hand: a batch sent to the
// instance before it is lost, and the node must not wait for it. applied
// is where the state machine stands: a restart after a failed Apply may
// have dropped uncommitted entries (back to the durable index).
type applyStarted struct {
	applied uint64
}

// flushState asks the apply actor to commit the state machine's pending
// transaction (its flush timer sends it).
type flushState struct{}

// failStop tells the node that a child hit an error it must not continue
// past (a storage failure): the node stops rather than serve damaged state.
type failStop struct {
	err error
}

// collectGarbage asks the gc actor to reclaim disk space; the node sends it
// after each log compaction.
type collectGarbage struct{}
