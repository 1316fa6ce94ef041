package persist

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/raftkv/raftkv/raftlogic"
)

// Save, the normal path: what a Ready changes is planned first, then written
// in one transaction (split.go has the path for a plan too big for one).

// Save persists what a Ready asks for, in this order of meaning: the
// snapshot metadata snap (if snap.Index > 0), then entries, then hs (unless
// empty, which means unchanged). It writes everything in one Badger
// transaction, durable when Save returns (the group commit: one sync for the
// whole Ready). Callers skip Save when raftlogic.Ready.MustSync says nothing
// needs to be durable (a change of the commit index alone).
//
// The rules:
//
//   - Installing a snapshot discards the whole stored log, before and after
//     its index, because raftlogic resets its log when it installs one. A
//     snapshot older than the stored one is refused.
//   - Entries must be contiguous and start no later than one past the last
//     index.
//     Entries at or below the snapshot index are already covered and are
//     skipped. The rest replace stored entries at the same index and after
//     it: the stored log is cut before the first new entry.
//
// Badger bounds a transaction (about 300 KiB or 3,200 writes with OpenDB's
// options). A batch that does not fit is written in several transactions,
// ordered so that a crash leaves the old log, the old log cut back to what
// survives, or the new log, never a mix (see writeSplit in split.go).
func (s *LogStore) Save(hs raftlogic.HardState, entries []raftlogic.Entry, snap raftlogic.SnapshotMeta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	p, err := s.plan(hs, entries, snap)
	if err != nil || p.empty() {
		return err
	}
	// Refused before anything is written, so the store stays usable: the
	// caller stops, and may start again once space is freed.
	if err := CheckSpace(s.db.Opts().Dir, s.reserve, p.size()); err != nil {
		return err
	}
	b := s.newBatch(p, false)
	err = p.write(b)
	b.w.Discard()
	if errors.Is(err, badger.ErrTxnTooBig) {
		b = s.newBatch(p, true)
		err = p.writeSplit(b, s.hs, s.splitStepDone)
		b.w.Discard()
	}
	s.keepBuf(b)
	if err != nil {
		err = fmt.Errorf("persist: save: %w", err)
		s.failed = err
		return err
	}
	if p.writeHS {
		s.hs = p.hs
	}
	s.snap, s.last, s.tail = p.snap, p.last, p.last
	return nil
}

// span is an inclusive range of entry indexes; lo > hi means empty.
type span struct{ lo, hi uint64 }

// plan is what one Save changes, worked out before anything is written.
type plan struct {
	hs      raftlogic.HardState
	writeHS bool
	snap    raftlogic.SnapshotMeta
	install bool
	ents    []raftlogic.Entry
	// last is the new last index.
	last uint64
	// keep is the highest index whose stored entry survives unchanged.
	keep uint64
	// del are the stored entries to delete: below the new snapshot, and
	// above the new last index.
	del [2]span
}

// size estimates the bytes the plan writes.
func (p *plan) size() int64 {
	n := int64(64 + 2*entryHeaderMax + snapshotMetaMax(p.snap))
	for _, e := range p.ents {
		n += int64(entryKeyLen + entryHeaderMax + len(e.Data))
	}
	return n
}

func (p *plan) empty() bool {
	return !p.writeHS && !p.install && len(p.ents) == 0 &&
		p.del[0].lo > p.del[0].hi && p.del[1].lo > p.del[1].hi
}

func (s *LogStore) plan(hs raftlogic.HardState, entries []raftlogic.Entry, snap raftlogic.SnapshotMeta) (*plan, error) {
	p := &plan{hs: s.hs, snap: s.snap, last: s.last, keep: s.last}
	if !hs.IsEmpty() && hs != s.hs {
		p.hs, p.writeHS = hs, true
	}
	if snap.Index > 0 {
		if snap.Index < s.snap.Index || (snap.Index == s.snap.Index && snap.Term != s.snap.Term) {
			return nil, fmt.Errorf("%w: snapshot (index %d, term %d) does not follow the stored one (index %d, term %d)",
				errInvalid, snap.Index, snap.Term, s.snap.Index, s.snap.Term)
		}
		p.snap, p.install = cloneMeta(snap), true
		p.last, p.keep = snap.Index, snap.Index
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first == 0 {
			return nil, fmt.Errorf("%w: entry index 0", errInvalid)
		}
		for i, e := range entries {
			if e.Index != first+uint64(i) {
				return nil, fmt.Errorf("%w: entries not contiguous: index %d follows %d", errInvalid, e.Index, entries[i-1].Index)
			}
		}
		if k := p.snap.Index + 1; first < k {
			entries = entries[min(k-first, uint64(len(entries))):]
		}
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first > p.last+1 {
			return nil, fmt.Errorf("%w: entry %d would leave a gap after the last index %d", errInvalid, first, p.last)
		}
		p.ents = entries
		p.keep = min(p.keep, first-1)
		p.last = entries[len(entries)-1].Index
	}
	// The stored entries are (s.snap.Index, s.tail]; those below the new
	// snapshot and above the new end go. Entries in between are either kept
	// or overwritten.
	lo := s.snap.Index + 1
	p.del[0] = span{lo, min(s.tail, p.snap.Index)}
	p.del[1] = span{max(lo, p.last+1), s.tail}
	return p, nil
}

// write puts the whole plan in b's one transaction.
func (p *plan) write(b *batch) error {
	if err := p.writeEntries(b); err != nil {
		return err
	}
	if p.install {
		if err := b.putSnapshotMeta(p.snap); err != nil {
			return err
		}
	}
	if p.install || len(p.ents) > 0 {
		if err := b.putLast(p.last); err != nil {
			return err
		}
	}
	if p.writeHS {
		if err := b.putHardState(p.hs); err != nil {
			return err
		}
	}
	return b.commit()
}

// writeEntries deletes stale entries and writes the new ones.
func (p *plan) writeEntries(b *batch) error {
	for _, d := range p.del {
		for i := d.lo; i <= d.hi && i >= d.lo; i++ {
			if err := b.delEntry(i); err != nil {
				return err
			}
		}
	}
	for _, e := range p.ents {
		if err := b.putEntry(e); err != nil {
			return err
		}
	}
	return nil
}
