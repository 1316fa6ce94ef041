package raftlogic

import "fmt"

// Config tunes one node. Durations are counted in ticks: the driver calls
// Node.Tick at a fixed interval and chooses what a tick is worth.
type Config struct {
	// ID is this node's id; it must be non-zero. It need not be a member
	// of the configuration in InitialState: a learner, a removed node or a
	// node that has yet to join (empty configuration) runs, but never
	// campaigns (a node whose removal is not known committed yet may).
	ID uint64
	// ElectionTick is the minimum election timeout. Each term a follower
	// draws its timeout uniformly from [ElectionTick, 2*ElectionTick).
	ElectionTick int
	// HeartbeatTick is how often a leader sends heartbeats. It must be
	// smaller than ElectionTick.
	HeartbeatTick int
	// PreVote makes a node ask whether it could win before it raises its
	// term, so a node returning from a partition does not depose a healthy
	// leader (Raft thesis 9.6).
	PreVote bool
	// CheckQuorum makes a leader step down when it has not heard from a
	// quorum within an election timeout, and makes followers that heard from
	// a leader within the minimum election timeout ignore vote requests.
	CheckQuorum bool
	// MaxInflightMsgs bounds the MsgApp messages in flight to one follower
	// in the pipelined (replicate) state. Default 256.
	MaxInflightMsgs int
	// MaxEntriesPerMsg bounds the entries in one MsgApp. Default 512.
	MaxEntriesPerMsg int
	// MaxBytesPerMsg bounds the entry data in one MsgApp (at least one entry
	// is always sent). Default 1 MiB.
	MaxBytesPerMsg int
	// Seed feeds the node's random election timeouts; the same seed gives
	// the same run.
	Seed uint64
	// AsyncStorageWrites lets the driver write the log off its critical
	// path: it hands each Ready's write to a writer that works in the
	// background, calls Advance at once, and reports durability later with
	// Node.StableTo. The node keeps stepping messages and requests while
	// its disk syncs, and a leader's own write overlaps its followers'.
	//
	// It changes three things. Advance no longer means the Ready is
	// durable: it records that the Ready was handed out, so the next Ready
	// carries only entries not handed out before. A leader counts its own
	// log toward commit only when StableTo reports it durable. Committed
	// entries are handed out for apply only up to what StableTo reported.
	//
	// The driver's duties: complete the writes in the order it was handed
	// them; send a Ready's "after persist" messages (Ready.SplitMessages)
	// only once that Ready's write and every earlier one are durable, even
	// when the Ready writes nothing; call StableTo, in order, with the
	// last entry of each write of entries once it and every earlier write
	// are durable; and handle a Ready carrying a Snapshot synchronously
	// (see "The Ready contract" in the package documentation). False (the
	// default) is the plain contract: Advance means persisted.
	AsyncStorageWrites bool
	// MaxLearnerLag is how many entries a learner's log may be behind the
	// leader's last index and still be promoted to voter
	// (ProposeConfChange refuses otherwise with ErrLearnerBehind): a voter
	// far behind would hold up commitment while it caught up. Default
	// DefaultMaxLearnerLag (512), about one MsgApp at the default
	// MaxEntriesPerMsg.
	MaxLearnerLag int
}

// InitialState is what the node finds on stable storage at start. A new
// cluster starts every member with the zero HardState, no entries and a
// Snapshot at index 0 whose ConfState lists the members. A node that will
// join a running cluster starts with the zero InitialState: an empty
// ConfState and no log.
type InitialState struct {
	// HardState is the term, vote and commit index last persisted.
	HardState HardState
	// Snapshot is the metadata of the newest snapshot; the log starts after
	// Snapshot.Index. Its ConfState is the configuration as of its index;
	// the conf change entries in Entries change it from there.
	Snapshot SnapshotMeta
	// Entries are the stored log entries after Snapshot.Index, in order.
	Entries []Entry
	// Applied is the highest index the state machine has applied (at least
	// Snapshot.Index). Entries up to it are not handed out again.
	Applied uint64
}

const (
	defaultMaxInflight   = 256
	defaultMaxEntries    = 512
	defaultMaxBytesPerMs = 1 << 20
)

func (c *Config) validate(st InitialState) error {
	if c.ID == None {
		return fmt.Errorf("%w: ID must be non-zero", ErrInvalidConfig)
	}
	if c.HeartbeatTick <= 0 {
		return fmt.Errorf("%w: HeartbeatTick must be positive, got %d", ErrInvalidConfig, c.HeartbeatTick)
	}
	if c.ElectionTick <= c.HeartbeatTick {
		return fmt.Errorf("%w: ElectionTick (%d) must exceed HeartbeatTick (%d)", ErrInvalidConfig, c.ElectionTick, c.HeartbeatTick)
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = defaultMaxInflight
	}
	if c.MaxEntriesPerMsg == 0 {
		c.MaxEntriesPerMsg = defaultMaxEntries
	}
	if c.MaxBytesPerMsg == 0 {
		c.MaxBytesPerMsg = defaultMaxBytesPerMs
	}
	if c.MaxLearnerLag == 0 {
		c.MaxLearnerLag = DefaultMaxLearnerLag
	}
	if c.MaxInflightMsgs < 0 || c.MaxEntriesPerMsg < 0 || c.MaxBytesPerMsg < 0 || c.MaxLearnerLag < 0 {
		return fmt.Errorf("%w: message limits and MaxLearnerLag must not be negative", ErrInvalidConfig)
	}
	cs := st.Snapshot.ConfState
	if err := validateConfState(cs); err != nil {
		return fmt.Errorf("%w: snapshot configuration: %w", ErrInvalidConfig, err)
	}
	if st.Snapshot.Index > 0 && len(cs.Voters) == 0 {
		// Only a node that has never joined has no configuration, and it
		// has no snapshot either.
		return fmt.Errorf("%w: snapshot at index %d names no voters", ErrInvalidConfig, st.Snapshot.Index)
	}
	for _, e := range st.Entries {
		if e.Type != EntryConfChange {
			continue
		}
		if _, _, err := DecodeConfChange(e.Data); err != nil {
			return fmt.Errorf("%w: stored conf change entry %d: %w", ErrInvalidConfig, e.Index, err)
		}
	}
	return validateInitialLog(st)
}

func validateInitialLog(st InitialState) error {
	next := st.Snapshot.Index + 1
	prevTerm := st.Snapshot.Term
	for _, e := range st.Entries {
		if e.Index != next {
			return fmt.Errorf("%w: stored entry has index %d, want %d", ErrInvalidConfig, e.Index, next)
		}
		if e.Term < prevTerm {
			return fmt.Errorf("%w: stored entry %d has term %d below the previous term %d", ErrInvalidConfig, e.Index, e.Term, prevTerm)
		}
		next++
		prevTerm = e.Term
	}
	last := next - 1
	hs := st.HardState
	if prevTerm > hs.Term {
		return fmt.Errorf("%w: log term %d exceeds the stored term %d", ErrInvalidConfig, prevTerm, hs.Term)
	}
	if st.Applied < st.Snapshot.Index || st.Applied > last {
		return fmt.Errorf("%w: applied index %d is outside the log [%d, %d]", ErrInvalidConfig, st.Applied, st.Snapshot.Index, last)
	}
	if hs.Commit > last {
		return fmt.Errorf("%w: commit index %d is beyond the last stored entry %d", ErrInvalidConfig, hs.Commit, last)
	}
	return nil
}
