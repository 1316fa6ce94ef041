package raftlogic

// Ready is everything a node needs its driver to do. The driver handles one
// Ready in this order, then calls Advance with it:
//
//  1. Persist Snapshot (if not empty), then Entries, then HardState (if not
//     empty), and sync. Entries replace any stored entries at the same index
//     and after it.
//  2. Send Messages. They may depend on step 1 (a vote, an acknowledgement of
//     entries), so they leave only after it is durable. One exception makes
//     the leader fast (Raft thesis 10.2.1): a leader may send its replication
//     messages before or while it persists its own Entries, because it counts
//     its own log toward commit only when Advance reports it durable;
//     SplitMessages says which messages may go early.
//  3. Install Snapshot into the state machine (if not empty), then apply
//     CommittedEntries in order. Every committed entry handed out is already
//     durable in the local log, so a driver may apply them before or while it
//     persists this Ready (a lower commit index on disk is harmless: a
//     restarted node takes the state machine's applied index as committed).
//  4. Answer ReadStates once the state machine has applied their Index.
type Ready struct {
	// SoftState is non-nil when the role or known leader changed.
	SoftState *SoftState
	// HardState is the state to persist; zero when unchanged.
	HardState HardState
	// Entries are to be appended to stable storage.
	Entries []Entry
	// Snapshot, when not empty, is to be persisted and installed; the log
	// before and at its index is discarded.
	Snapshot Snapshot
	// Messages are to be sent to peers.
	Messages []Message
	// CommittedEntries are to be applied to the state machine.
	CommittedEntries []Entry
	// ReadStates answer ReadIndex requests.
	ReadStates []ReadState
}

// MustSync reports whether handling rd needs a write and an fsync: a new
// term or vote, new entries, or a snapshot. A change of the commit index
// alone needs neither; a driver may skip persisting it (it is learned again
// from the leader, and the state machine's applied index covers restarts).
func (rd Ready) MustSync(prev HardState) bool {
	hs := rd.HardState
	if !hs.IsEmpty() && (hs.Term != prev.Term || hs.Vote != prev.Vote) {
		return true
	}
	return len(rd.Entries) > 0 || !rd.Snapshot.IsEmpty()
}

// SplitMessages separates the messages a driver may send before it has
// persisted this Ready from those that must wait. Only a leader sends
// MsgApp, MsgHeartbeat, MsgSnap and MsgTimeoutNow, and they depend on
// nothing this Ready persists: the leader's term and vote were made durable
// before it could win, and it counts its own entries toward commit only
// after Advance (Raft thesis 10.2.1). Every other message — votes and their
// answers, acknowledgements of appended entries — may promise something
// only the write makes true.
func (rd Ready) SplitMessages() (beforePersist, afterPersist []Message) {
	for _, m := range rd.Messages {
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
			beforePersist = append(beforePersist, m)
		default:
			afterPersist = append(afterPersist, m)
		}
	}
	return beforePersist, afterPersist
}
