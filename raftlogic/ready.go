package raftlogic

// Ready is everything a node needs its driver to do. The driver persists
// it, sends its messages, applies and installs what it hands out, answers
// its reads, then calls Advance with it. "The Ready contract" in the
// package documentation gives the order and the departures from it that are
// safe, and how Config.AsyncStorageWrites changes it. The node never
// modifies the slices of a Ready it handed out, so a writer may hold them
// while the node runs on.
type Ready struct {
	// SoftState is non-nil when the role or known leader changed.
	SoftState *SoftState
	// ConfState is non-nil when the configuration in force changed since
	// the last Ready (or, for the first, since NewNode; Status.Conf gives
	// the one at start). It changes when a conf change entry is appended
	// or truncated, or a snapshot is received, before anything is
	// persisted or committed: the driver starts connections to new
	// members and stops those to removed ones from it. It is not to be
	// persisted: the log and snapshot hold it.
	ConfState *ConfState
	// HardState is the state to persist; zero when unchanged.
	HardState HardState
	// Entries are to be appended to stable storage, replacing any stored
	// from the first one's index on. Each is handed out once, unless a
	// truncation replaces it.
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

	// holdMessages makes SplitMessages hold every message until the write:
	// set while this node leads a term it may not have made durable yet.
	holdMessages bool
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
// once they are reported durable (Raft thesis 10.2.1). Every other message
// — votes and their answers, acknowledgements of appended entries — may
// promise something only the write makes true. With
// Config.AsyncStorageWrites, afterPersist waits for this Ready's write and
// every earlier one, even when this Ready writes nothing.
//
// One leader wins without waiting for its write: the only voter of its
// configuration (with learners to send to), whose own vote is its quorum.
// Until the first entry of its term is durable, its term is not, and a
// crash could make it lead the same term again with other entries; so
// until then every message of its Readies is in afterPersist. It sends no
// MsgSnap meanwhile, so a MsgSnap is always in beforePersist, and its image
// is the one the driver holds when it sends.
//
// The two slices may share rd.Messages' backing array: a Ready whose
// messages all fall on one side (a leader's appends and heartbeats, a
// follower's acknowledgements: nearly every Ready) returns rd.Messages
// itself rather than a copy, so a driver must not append to either.
func (rd Ready) SplitMessages() (beforePersist, afterPersist []Message) {
	if rd.holdMessages {
		return nil, rd.Messages
	}
	early := 0
	for _, m := range rd.Messages {
		if m.Type.mayGoEarly() {
			early++
		}
	}
	switch early {
	case len(rd.Messages):
		return rd.Messages, nil
	case 0:
		return nil, rd.Messages
	}
	beforePersist = make([]Message, 0, early)
	afterPersist = make([]Message, 0, len(rd.Messages)-early)
	for _, m := range rd.Messages {
		if m.Type.mayGoEarly() {
			beforePersist = append(beforePersist, m)
		} else {
			afterPersist = append(afterPersist, m)
		}
	}
	return beforePersist, afterPersist
}

// mayGoEarly reports whether a message of type t depends on nothing its
// Ready persists (see SplitMessages).
func (t MessageType) mayGoEarly() bool {
	switch t {
	case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
		return true
	}
	return false
}
