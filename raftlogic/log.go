package raftlogic

import (
	"fmt"
	"slices"
)

// raftLog is a node's in-memory view of its log: the snapshot it starts after
// and the entries since. The driver keeps the durable copy; stabled says how
// far the two agree.
type raftLog struct {
	snap SnapshotMeta
	// ents[i].Index == snap.Index+1+i.
	ents []Entry
	// pendingSnap is a received snapshot not yet handed to the driver.
	pendingSnap *Snapshot

	committed uint64
	applied   uint64
	// stabled is the last index known durable; committed entries after it
	// are not applied yet, so the state machine never runs ahead of the
	// local log.
	stabled uint64
	// handed is the last index handed out in a Ready (and advanced); the
	// entries after it go in the next one. handed >= stabled; they are
	// equal unless Config.AsyncStorageWrites lets writes be in flight.
	handed uint64
	// inflight are the writes of entries handed out with
	// Config.AsyncStorageWrites and not yet reported durable, oldest
	// first. Every one of them starts after stabled.
	inflight []inflightWrite
	// confs are the conf change entries in ents, oldest first, with the
	// configuration each results in. The configuration in force is the
	// last one's, or the snapshot's when there is none (Raft thesis 4.1:
	// a configuration takes effect when its entry is appended), so a
	// truncation that removes a conf entry reverts to the one before.
	confs []confEntry
}

// confEntry is a conf change entry of the log and the configuration it
// results in (normalized).
type confEntry struct {
	index uint64
	cs    ConfState
}

// inflightWrite is one handed-out write of entries: it will overwrite the
// stored log from first on, and ends with entry (last, term).
type inflightWrite struct {
	first, last, term uint64
}

// stableTo records that the in-flight write ending with entry (index,
// term), and every one before it, is durable, and returns the new stabled
// index and whether it moved. The log up to index is then on disk if the
// log still holds that entry (by Log Matching, the disk and the log agree
// up to it), but only until a later write still in flight overwrites the
// disk from its first index: a suffix replaced and then replaced back by
// the original entries (an ABA) would make a report for the first write
// look current while the second is still to land. So stabled stops short
// of every write still in flight.
func (l *raftLog) stableTo(index, term uint64) bool {
	i := slices.IndexFunc(l.inflight, func(w inflightWrite) bool { return w.last == index && w.term == term })
	if i < 0 {
		return false // no such write in flight: a repeated or stray report
	}
	l.inflight = l.inflight[i+1:]
	if !l.matchTerm(index, term) {
		// A later truncation replaced the entry; the write that replaced
		// it reports for itself.
		return false
	}
	to := index
	for _, w := range l.inflight {
		to = min(to, w.first-1)
	}
	if to <= l.stabled {
		return false
	}
	l.stabled = to
	l.handed = max(l.handed, to)
	return true
}

func newRaftLog(st InitialState) *raftLog {
	l := &raftLog{snap: st.Snapshot, ents: append([]Entry(nil), st.Entries...)}
	l.snap.ConfState = normConf(l.snap.ConfState)
	l.trackConfs(l.ents)
	l.applied = st.Applied
	l.committed = max(st.HardState.Commit, st.Applied)
	l.stabled = l.lastIndex()
	l.handed = l.stabled
	return l
}

func (l *raftLog) firstIndex() uint64 { return l.snap.Index + 1 }

func (l *raftLog) lastIndex() uint64 { return l.snap.Index + uint64(len(l.ents)) }

func (l *raftLog) lastTerm() uint64 {
	t, _ := l.term(l.lastIndex())
	return t
}

// term returns the term of entry i. ok is false when i is compacted away or
// beyond the log.
func (l *raftLog) term(i uint64) (t uint64, ok bool) {
	if i == l.snap.Index {
		return l.snap.Term, true
	}
	if i < l.snap.Index || i > l.lastIndex() {
		return 0, false
	}
	return l.ents[i-l.snap.Index-1].Term, true
}

func (l *raftLog) matchTerm(i, t uint64) bool {
	lt, ok := l.term(i)
	return ok && lt == t
}

// slice returns entries [lo, hi) limited to maxCount entries and maxBytes of
// data (at least one entry is returned when lo < hi). lo must be > snap.Index.
func (l *raftLog) slice(lo, hi uint64, maxCount, maxBytes int) []Entry {
	if lo >= hi {
		return nil
	}
	ents := l.ents[lo-l.snap.Index-1 : hi-l.snap.Index-1]
	size := 0
	for i, e := range ents {
		size += len(e.Data)
		if i > 0 && (i >= maxCount || size > maxBytes) {
			ents = ents[:i]
			break
		}
	}
	// Full slice expression: a caller appending to the result must not
	// overwrite our backing array.
	return ents[:len(ents):len(ents)]
}

// isUpToDate reports whether a log ending at (index, term) is at least as
// up-to-date as ours (§5.4.1).
func (l *raftLog) isUpToDate(index, term uint64) bool {
	lt := l.lastTerm()
	return term > lt || (term == lt && index >= l.lastIndex())
}

// findConflictByTerm returns the largest index <= index whose term is at most
// term, with that term. A leader and follower use it to skip a whole run of
// entries of a conflicting term in one round trip.
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	index = min(index, l.lastIndex())
	for ; index > l.snap.Index; index-- {
		if t, _ := l.term(index); t <= term {
			return index, t
		}
	}
	return l.snap.Index, l.snap.Term
}

// maybeAppend applies an AppendEntries whose previous entry (prevIndex,
// prevTerm) matches ours: it truncates the first conflicting entry and what
// follows, appends the rest, and returns the index of the last new entry.
// It refuses to truncate committed entries, which only a faulty or forged
// leader could ask for.
func (l *raftLog) maybeAppend(prevIndex, prevTerm uint64, ents []Entry) (lastNew uint64, ok bool, err error) {
	if !l.matchTerm(prevIndex, prevTerm) {
		return 0, false, nil
	}
	// ents follow prevIndex without a gap: Step's checkMessage refuses any
	// MsgApp whose entries do not.
	lastNew = prevIndex + uint64(len(ents))
	for i, e := range ents {
		if l.matchTerm(e.Index, e.Term) {
			continue
		}
		if e.Index <= l.committed {
			return 0, false, fmt.Errorf("%w: entry %d conflicts with the committed log", ErrInvalidMessage, e.Index)
		}
		if e.Index <= l.lastIndex() {
			l.truncateFrom(e.Index)
		}
		l.ents = append(l.ents, ents[i:]...)
		l.trackConfs(ents[i:])
		break
	}
	return lastNew, true, nil
}

// truncateFrom drops entries at index i and after. The entries that
// replace them are handed out again, and are not durable until reported so.
func (l *raftLog) truncateFrom(i uint64) {
	l.ents = l.ents[: i-l.snap.Index-1 : i-l.snap.Index-1]
	l.stabled = min(l.stabled, i-1)
	l.handed = min(l.handed, i-1)
	for len(l.confs) > 0 && l.confs[len(l.confs)-1].index >= i {
		l.confs = l.confs[:len(l.confs)-1]
	}
}

func (l *raftLog) append(e Entry) {
	l.ents = append(l.ents, e)
	l.trackConfs([]Entry{e})
}

// trackConfs records the conf change entries among ents, just appended.
// Their data was checked when they entered the node (Step, NewNode) or
// was encoded by this node, so an entry that does not decode cannot occur;
// were it to, it would be skipped rather than crash the node.
func (l *raftLog) trackConfs(ents []Entry) {
	for _, e := range ents {
		if e.Type != EntryConfChange {
			continue
		}
		if _, cs, err := DecodeConfChange(e.Data); err == nil {
			l.confs = append(l.confs, confEntry{index: e.Index, cs: normConf(cs)})
		}
	}
}

// confState is the configuration in force: that of the last conf change
// entry in the log, committed or not, else the snapshot's.
func (l *raftLog) confState() ConfState {
	if k := len(l.confs); k > 0 {
		return l.confs[k-1].cs
	}
	return l.snap.ConfState
}

// confAt is the configuration as of index i (at least the snapshot's
// index): that of the last conf change entry at or before i.
func (l *raftLog) confAt(i uint64) ConfState {
	cs := l.snap.ConfState
	for _, c := range l.confs {
		if c.index > i {
			break
		}
		cs = c.cs
	}
	return cs
}

// lastConfIndex is the index of the last conf change entry in the log, or
// 0 when there is none after the snapshot.
func (l *raftLog) lastConfIndex() uint64 {
	if k := len(l.confs); k > 0 {
		return l.confs[k-1].index
	}
	return 0
}

func (l *raftLog) commitTo(i uint64) bool {
	if i > l.committed && i <= l.lastIndex() {
		l.committed = i
		return true
	}
	return false
}

// restore resets the log to a received snapshot.
func (l *raftLog) restore(s Snapshot) {
	l.snap = s.Meta
	l.snap.ConfState = normConf(s.Meta.ConfState)
	l.ents = nil
	l.confs = nil
	l.pendingSnap = &s
	l.committed = s.Meta.Index
	l.stabled = s.Meta.Index
	l.handed = s.Meta.Index
}

// unhanded returns the entries not yet handed out in a Ready.
func (l *raftLog) unhanded() []Entry {
	if l.handed >= l.lastIndex() {
		return nil
	}
	return l.ents[l.handed-l.snap.Index:]
}

// applicable returns committed, durable entries not yet applied. Nothing is
// applicable while a received snapshot waits to be installed.
func (l *raftLog) applicable(maxCount, maxBytes int) []Entry {
	if l.pendingSnap != nil {
		return nil
	}
	hi := min(l.committed, l.stabled)
	if hi <= l.applied {
		return nil
	}
	return l.slice(l.applied+1, hi+1, maxCount, maxBytes)
}

// compact drops entries up to and including i, which must be applied.
func (l *raftLog) compact(i uint64) error {
	if i <= l.snap.Index {
		return fmt.Errorf("%w: index %d, log starts after %d", ErrCompacted, i, l.snap.Index)
	}
	if i > l.applied {
		return fmt.Errorf("%w: index %d, applied %d", ErrUnapplied, i, l.applied)
	}
	t, _ := l.term(i)
	// The snapshot records the configuration as of i, not the one in
	// force: a later conf entry may still be truncated away.
	cs := l.confAt(i)
	if len(cs.Voters) == 0 {
		return fmt.Errorf("%w: index %d comes before the first conf change entry of a log received from its start", ErrConfUnknown, i)
	}
	l.ents = append([]Entry(nil), l.ents[i-l.snap.Index:]...)
	l.confs = slices.DeleteFunc(l.confs, func(c confEntry) bool { return c.index <= i })
	l.snap = SnapshotMeta{Index: i, Term: t, ConfState: cs}
	return nil
}
