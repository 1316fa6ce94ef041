package persist

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/raftkv/raftkv/raftlogic"
)

// Compaction: recording a newer snapshot hides the entries it covers at
// once; sweep deletes them afterwards, off the Save path.

// sweepChunk is how many compacted entry keys one deletion transaction
// removes; small enough to fit any transaction limit the options allow.
const sweepChunk = 4096

// Compact discards the entries up to and including index, which the state
// machine has applied, as raftlogic.Node.Compact does with its in-memory log.
// It records the snapshot metadata itself: index, the term of that entry and
// the stored ConfState (to record a different ConfState, use
// SaveSnapshotMeta instead: the node does, with the metadata
// raftlogic.Node.Compact returns, because membership may have changed
// since the stored snapshot). An index at or below the stored snapshot is
// already compacted and a no-op; one past the last index is refused.
//
// If deleting the entries fails, the compaction still stands (Load no longer
// returns them) and the next Compact deletes them.
//
// The caller must make sure the state machine's writes up to index are
// durable first (kvstate's commits are, when they return): once Compact
// returns, those entries are gone for good.
func (s *LogStore) Compact(index uint64) error {
	s.mu.Lock()
	if err := s.usable(); err != nil || index <= s.snap.Index {
		s.mu.Unlock()
		return err
	}
	if index > s.last {
		s.mu.Unlock()
		return fmt.Errorf("%w: compact to %d, past the last index %d", errInvalid, index, s.last)
	}
	term, err := s.term(index)
	if err == nil {
		err = s.putSnapshotMeta(raftlogic.SnapshotMeta{Index: index, Term: term, ConfState: s.snap.ConfState})
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.sweep(index)
}

// SaveSnapshotMeta records meta as the stored snapshot and discards the
// entries it covers, like Compact. meta.Index may be the stored snapshot's
// index (same term) to change only the ConfState: that is how a new node is
// bootstrapped, with SnapshotMeta{ConfState: members} at index 0. A meta
// older than the stored one lost a race with a newer snapshot and is a
// no-op. Its term must match the stored entry at its index.
// Like Compact, it is durable when it returns.
func (s *LogStore) SaveSnapshotMeta(meta raftlogic.SnapshotMeta) error {
	s.mu.Lock()
	if err := s.usable(); err != nil || meta.Index < s.snap.Index {
		s.mu.Unlock()
		return err
	}
	var err error
	switch {
	case meta.Index > s.last:
		err = fmt.Errorf("%w: snapshot at %d, past the last index %d", errInvalid, meta.Index, s.last)
	case meta.Index == s.snap.Index && meta.Term != s.snap.Term:
		err = fmt.Errorf("%w: snapshot term %d at index %d, stored term %d", errInvalid, meta.Term, meta.Index, s.snap.Term)
	case meta.Index > s.snap.Index:
		var term uint64
		if term, err = s.term(meta.Index); err == nil && term != meta.Term {
			err = fmt.Errorf("%w: snapshot term %d at index %d, stored entry term %d", errInvalid, meta.Term, meta.Index, term)
		}
	}
	if err == nil {
		err = s.putSnapshotMeta(meta)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.sweep(meta.Index)
}

// term reads the term of stored entry i. Callers hold mu.
func (s *LogStore) term(i uint64) (uint64, error) {
	var ents []raftlogic.Entry
	err := s.db.View(func(txn *badger.Txn) (err error) {
		ents, err = readEntries(txn, i, i)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("persist: read term of %d: %w", i, err)
	}
	return ents[0].Term, nil
}

// putSnapshotMeta writes meta alone, which makes the entries up to its
// index invisible to Load at once; sweep deletes them later. Callers hold mu.
func (s *LogStore) putSnapshotMeta(meta raftlogic.SnapshotMeta) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keySnapshot), appendSnapshotMeta(nil, meta))
	})
	if err != nil {
		err = fmt.Errorf("persist: save snapshot meta: %w", err)
		s.failed = err
		return err
	}
	s.snap = cloneMeta(meta)
	return nil
}

// sweep deletes every entry key up to upto, a compacted index. It runs
// without mu so that a large compaction does not stall Save: the snapshot
// index never goes down, so nothing writes these keys again, and Save's own
// deletions can only overlap them harmlessly. Starting from the lowest key
// also removes what an earlier, interrupted sweep left.
func (s *LogStore) sweep(upto uint64) error {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	from := uint64(0)
	for {
		keys := make([][]byte, 0, sweepChunk)
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(entryPrefix)})
			defer it.Close()
			for it.Seek(appendEntryKey(nil, from)); it.Valid() && len(keys) < sweepChunk; it.Next() {
				k := it.Item().KeyCopy(nil)
				i, ok := parseEntryKey(k)
				if !ok {
					return corrupt(fmt.Sprintf("%q", k), "not an entry key")
				}
				if i > upto {
					break
				}
				keys = append(keys, k)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("persist: compact: %w", err)
		}
		if len(keys) == 0 {
			return nil
		}
		w := NewTxnWriter(s.db, nil)
		for _, k := range keys {
			if err = w.Delete(k); err != nil {
				break
			}
		}
		if err == nil {
			err = w.Commit()
		}
		w.Discard()
		if err != nil {
			return fmt.Errorf("persist: compact: %w", err)
		}
		last, _ := parseEntryKey(keys[len(keys)-1])
		if len(keys) < sweepChunk || last >= upto {
			return nil
		}
		from = last + 1
	}
}
