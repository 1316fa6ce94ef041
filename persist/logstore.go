package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/raftkv/raftkv/raftlogic"
)

// ErrUnavailable reports a request to Entries for entries beyond the last
// index: the log does not hold them (yet).
var ErrUnavailable = errors.New("persist: entries unavailable")

// Errors only this package's callers see in messages; tests compare them.
var (
	// errCorrupt reports stored data that is not what this package wrote:
	// an undecodable record, an entry under the wrong key, a hole in the
	// log. The message names the key.
	errCorrupt = errors.New("persist: stored data is corrupt")
	// errCompacted reports a request for entries at or below the snapshot.
	errCompacted = errors.New("persist: entries compacted")
	// errInvalid reports a request that would break the log: a gap, entries
	// out of order, a snapshot older than the stored one, a compaction past
	// the end of the log.
	errInvalid = errors.New("persist: invalid request")
	// errNotLoaded reports use of a LogStore before a successful Load.
	errNotLoaded = errors.New("persist: log store not loaded")
)

// Keys. Everything this package stores starts with prefix; the state machine
// sharing the database uses other prefixes. See the package comment.
const (
	prefix       = "r/"
	keyHardState = prefix + "hs"
	keySnapshot  = prefix + "snap"
	keyLast      = prefix + "last"
	entryPrefix  = prefix + "e/"
	entryKeyLen  = len(entryPrefix) + 8
)

func appendEntryKey(dst []byte, i uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, entryPrefix...), i)
}

func parseEntryKey(k []byte) (uint64, bool) {
	if len(k) != entryKeyLen || string(k[:len(entryPrefix)]) != entryPrefix {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(entryPrefix):]), true
}

// entryKeyName is how error messages name an entry key: readable, and
// unambiguous next to the other keys.
func entryKeyName(i uint64) string { return fmt.Sprintf("%s%d", entryPrefix, i) }

func corrupt(key string, format string, args ...any) error {
	return fmt.Errorf("%w: key %s: %s", errCorrupt, key, fmt.Sprintf(format, args...))
}

// LogStore is the durable Raft state of one node: hard state, snapshot
// metadata and the log after the snapshot. Call Load once before anything
// else. Its methods may be called from several goroutines (the Raft loop
// saving, the apply loop compacting); they serialise on an internal mutex.
//
// If a write fails, the store refuses further use until Load succeeds again,
// because what reached the disk is then unknown. A Raft node cannot go on
// after failing to persist anyway.
type LogStore struct {
	db      *badger.DB
	log     *slog.Logger
	reserve int64

	mu     sync.Mutex
	loaded bool
	failed error
	hs     raftlogic.HardState
	snap   raftlogic.SnapshotMeta
	// last is the last index of the log; the log is (snap.Index, last].
	last uint64
	// tail is the highest entry key that may exist on disk. Above last
	// there are only leftovers of a split batch a crash interrupted; the
	// next Save deletes them.
	tail uint64
	// buf is reused to encode each batch; see batch.
	buf []byte
	// splitStepDone, when set (by tests), runs after each step of a split
	// batch; an error stops the batch there, as a crash would.
	splitStepDone func(step int) error

	// sweepMu keeps physical deletion of compacted entries, which runs
	// without mu, to one goroutine at a time.
	sweepMu sync.Mutex
}

// NewLogStore returns a LogStore keeping its records in db under the "r/"
// prefix. It reads nothing: call Load. Of the options, WithLogger and
// WithDiskReserve apply.
func NewLogStore(db *badger.DB, opts ...Option) *LogStore {
	cfg := dbConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	return &LogStore{db: db, log: cfg.logger.With("component", "persist"), reserve: cfg.diskReserve}
}

func (s *LogStore) usable() error {
	if !s.loaded {
		return errNotLoaded
	}
	if s.failed != nil {
		return fmt.Errorf("persist: an earlier write failed, Load again: %w", s.failed)
	}
	return nil
}

// Load reads and checks the stored state. On a database that holds nothing
// it returns the zero InitialState: no snapshot and an empty ConfState, which
// the caller fills in to bootstrap (see SaveSnapshotMeta).
//
// Applied is set to Snapshot.Index. The state machine knows how far it has
// really applied and the caller must override Applied with that.
//
// Load fails with an error naming the key ("stored data is corrupt") if a
// record does not decode, an entry is stored under another index's key, or
// the log has a hole.
// Entries above the last index, left by a crash in the middle of a split
// batch (see Save), are not part of the log: Load ignores them and the next
// Save deletes them.
func (s *LogStore) Load() (raftlogic.InitialState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = false
	var (
		st   raftlogic.InitialState
		tail uint64
	)
	err := s.db.View(func(txn *badger.Txn) error {
		hs, _, err := getRecord(txn, keyHardState, decodeHardState)
		if err != nil {
			return err
		}
		snap, _, err := getRecord(txn, keySnapshot, decodeSnapshotMeta)
		if err != nil {
			return err
		}
		last, haveLast, err := getRecord(txn, keyLast, decodeIndexRecord)
		if err != nil {
			return err
		}
		if !haveLast {
			last = snap.Index
		}
		if last < snap.Index {
			return corrupt(keyLast, "last index %d is below the snapshot index %d", last, snap.Index)
		}
		tail, err = highestEntryIndex(txn)
		if err != nil {
			return err
		}
		if !haveLast && tail != 0 {
			// Every batch that writes entries writes keyLast first or
			// with them, so entries without it mean keyLast was lost.
			return corrupt(keyLast, "missing, but entries up to %d are stored", tail)
		}
		ents, err := readEntries(txn, snap.Index+1, last)
		if err != nil {
			return err
		}
		st = raftlogic.InitialState{HardState: hs, Snapshot: snap, Entries: ents, Applied: snap.Index}
		return nil
	})
	if err != nil {
		return raftlogic.InitialState{}, fmt.Errorf("persist: load: %w", err)
	}
	last := st.Snapshot.Index + uint64(len(st.Entries))
	if tail > last {
		s.log.Warn("ignoring entries left above the last index by an interrupted batch",
			"last", last, "highest", tail)
	}
	s.hs, s.snap, s.last, s.tail = st.HardState, cloneMeta(st.Snapshot), last, max(tail, last)
	s.loaded, s.failed = true, nil
	return st, nil
}

// getRecord reads and decodes key; a missing key is not an error.
func getRecord[T any](txn *badger.Txn, key string, decode func([]byte) (T, error)) (T, bool, error) {
	var v T
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("read %s: %w", key, err)
	}
	err = item.Value(func(b []byte) error {
		var derr error
		if v, derr = decode(b); derr != nil {
			return fmt.Errorf("%w: key %s: %w", errCorrupt, key, derr)
		}
		return nil
	})
	return v, err == nil, err
}

// highestEntryIndex returns the highest index stored under an entry key, 0
// if none.
func highestEntryIndex(txn *badger.Txn) (uint64, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(entryPrefix), Reverse: true})
	defer it.Close()
	it.Seek(appendEntryKey(nil, ^uint64(0)))
	if !it.Valid() {
		return 0, nil
	}
	k := it.Item().Key()
	i, ok := parseEntryKey(k)
	if !ok {
		return 0, corrupt(fmt.Sprintf("%q", k), "not an entry key")
	}
	return i, nil
}

// readEntries reads the entries [lo, hi] and checks that each is there,
// decodes, and carries its key's index.
func readEntries(txn *badger.Txn, lo, hi uint64) ([]raftlogic.Entry, error) {
	if lo > hi {
		return nil, nil
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(entryPrefix)
	opts.PrefetchSize = 64
	it := txn.NewIterator(opts)
	defer it.Close()

	ents := make([]raftlogic.Entry, 0, min(hi-lo+1, 1<<16))
	// Entry data is copied into shared slabs: one allocation per 64 KiB
	// rather than one per entry.
	var slab []byte
	next := lo
	for it.Seek(appendEntryKey(nil, lo)); it.Valid() && next <= hi; it.Next() {
		item := it.Item()
		i, ok := parseEntryKey(item.Key())
		if !ok {
			return nil, corrupt(fmt.Sprintf("%q", item.Key()), "not an entry key")
		}
		if i != next {
			return nil, corrupt(entryKeyName(next), "missing: the log jumps from %d to %d", next-1, i)
		}
		err := item.Value(func(b []byte) error {
			e, err := decodeEntry(b)
			if err != nil {
				return fmt.Errorf("%w: key %s: %w", errCorrupt, entryKeyName(i), err)
			}
			if e.Index != i {
				return corrupt(entryKeyName(i), "holds entry %d", e.Index)
			}
			if n := len(e.Data); n > 0 {
				if n > cap(slab)-len(slab) {
					size := n
					if hi-lo >= 64 {
						size = max(64<<10, n)
					}
					slab = make([]byte, 0, size)
				}
				start := len(slab)
				slab = append(slab, e.Data...)
				e.Data = slab[start:len(slab):len(slab)]
			}
			ents = append(ents, e)
			return nil
		})
		if err != nil {
			return nil, err
		}
		next++
	}
	if next <= hi {
		return nil, corrupt(entryKeyName(next), "missing: the log should run to %d", hi)
	}
	return ents, nil
}

// Entries returns the stored entries [lo, hi), or an error wrapping
// ErrUnavailable when the log ends before hi-1. It reads the disk on every
// call, so it is for rare recoveries, not the steady path, where raftlogic
// hands out entries from its own copy of the log: the apply actor uses it
// to fetch committed entries it lost when it restarted.
func (s *LogStore) Entries(lo, hi uint64) ([]raftlogic.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	switch {
	case lo > hi:
		return nil, fmt.Errorf("%w: range [%d, %d)", errInvalid, lo, hi)
	case lo <= s.snap.Index:
		return nil, fmt.Errorf("%w: index %d, the log starts at %d", errCompacted, lo, s.snap.Index+1)
	case hi > s.last+1:
		return nil, fmt.Errorf("%w: index %d, the log ends at %d", ErrUnavailable, hi-1, s.last)
	case lo == hi:
		return nil, nil
	}
	var ents []raftlogic.Entry
	err := s.db.View(func(txn *badger.Txn) (err error) {
		ents, err = readEntries(txn, lo, hi-1)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("persist: entries: %w", err)
	}
	return ents, nil
}

// PauseWrites runs f while no method of s writes to its database, and
// returns f's error. The value-log collector uses it (see NewCollector).
func (s *LogStore) PauseWrites(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	return f()
}

func cloneMeta(m raftlogic.SnapshotMeta) raftlogic.SnapshotMeta {
	m.ConfState.Voters = slices.Clone(m.ConfState.Voters)
	m.ConfState.VotersOutgoing = slices.Clone(m.ConfState.VotersOutgoing)
	m.ConfState.Learners = slices.Clone(m.ConfState.Learners)
	return m
}
