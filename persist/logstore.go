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

var (
	// ErrCorrupt reports stored data that is not what this package wrote:
	// an undecodable record, an entry under the wrong key, a hole in the
	// log. The message names the key.
	ErrCorrupt = errors.New("persist: stored data is corrupt")
	// ErrCompacted reports a request for entries at or below the snapshot.
	ErrCompacted = errors.New("persist: entries compacted")
	// ErrUnavailable reports a request for entries beyond the last index.
	ErrUnavailable = errors.New("persist: entries unavailable")
	// ErrInvalid reports a request that would break the log: a gap, entries
	// out of order, a snapshot older than the stored one, a compaction past
	// the end of the log.
	ErrInvalid = errors.New("persist: invalid request")
	// ErrNotLoaded reports use of a LogStore before a successful Load.
	ErrNotLoaded = errors.New("persist: log store not loaded")
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
	return fmt.Errorf("%w: key %s: %s", ErrCorrupt, key, fmt.Sprintf(format, args...))
}

// maxKeptBuf bounds the encoding buffer a LogStore keeps between batches; a
// rare huge batch should not pin its buffer for the life of the node.
const maxKeptBuf = 4 << 20

// sweepChunk is how many compacted entry keys one deletion transaction
// removes; small enough to fit any transaction limit the options allow.
const sweepChunk = 4096

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
		cfg.logger = slog.Default()
	}
	return &LogStore{db: db, log: cfg.logger.With("component", "persist"), reserve: cfg.diskReserve}
}

func (s *LogStore) usable() error {
	if !s.loaded {
		return ErrNotLoaded
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
// Load fails with ErrCorrupt, naming the key, if a record does not decode,
// an entry is stored under another index's key, or the log has a hole.
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
			return fmt.Errorf("%w: key %s: %w", ErrCorrupt, key, derr)
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
				return fmt.Errorf("%w: key %s: %w", ErrCorrupt, entryKeyName(i), err)
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
//     snapshot older than the stored one is refused (ErrInvalid).
//   - Entries must be contiguous and start no later than LastIndex()+1.
//     Entries at or below the snapshot index are already covered and are
//     skipped. The rest replace stored entries at the same index and after
//     it: the stored log is cut before the first new entry.
//
// Badger bounds a transaction (about 2.4 MiB or 26,000 writes with OpenDB's
// options). A batch that does not fit is written in several transactions,
// ordered so that a crash leaves the old log, the old log cut back to what
// survives, or the new log, never a mix: first the cut (the new end, the
// snapshot if any, and the hard state with its commit index clamped to the
// end), then the entries written and stale ones deleted beyond that end,
// where Load does not look, then the new end and the hard state.
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
	b := s.newBatch(p)
	err = p.write(b)
	if errors.Is(err, badger.ErrTxnTooBig) {
		b.discard()
		b = s.newBatch(p)
		b.split = true
		err = p.writeSplit(b, s.hs, s.splitStepDone)
	}
	b.discard()
	s.buf = b.buf[:0]
	if cap(s.buf) > maxKeptBuf {
		s.buf = nil
	}
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
				ErrInvalid, snap.Index, snap.Term, s.snap.Index, s.snap.Term)
		}
		p.snap, p.install = cloneMeta(snap), true
		p.last, p.keep = snap.Index, snap.Index
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first == 0 {
			return nil, fmt.Errorf("%w: entry index 0", ErrInvalid)
		}
		for i, e := range entries {
			if e.Index != first+uint64(i) {
				return nil, fmt.Errorf("%w: entries not contiguous: index %d follows %d", ErrInvalid, e.Index, entries[i-1].Index)
			}
		}
		if k := p.snap.Index + 1; first < k {
			entries = entries[min(k-first, uint64(len(entries))):]
		}
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first > p.last+1 {
			return nil, fmt.Errorf("%w: entry %d would leave a gap after the last index %d", ErrInvalid, first, p.last)
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
			if err := b.del(b.entryKey(i)); err != nil {
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

// writeSplit writes a plan too big for one transaction in three steps, each
// leaving a state Load accepts (see Save). prev is the stored hard state.
func (p *plan) writeSplit(b *batch, prev raftlogic.HardState, stepDone func(int) error) error {
	if stepDone == nil {
		stepDone = func(int) error { return nil }
	}
	// Step 1: cut the log back to what survives. The hard state goes now
	// too, so that the snapshot's term never exceeds the stored term (a new
	// term or vote may be persisted early: nothing was sent on it yet), but
	// its commit index must not point past the cut.
	if p.install {
		if err := b.putSnapshotMeta(p.snap); err != nil {
			return err
		}
	}
	if err := b.putLast(p.keep); err != nil {
		return err
	}
	hs := p.hs
	hs.Commit = min(hs.Commit, p.keep)
	cutHS := hs != prev
	if cutHS {
		if err := b.putHardState(hs); err != nil {
			return err
		}
	}
	if err := b.commit(); err != nil {
		return err
	}
	if err := stepDone(1); err != nil {
		return err
	}
	// Step 2: everything beyond the cut, where Load does not look.
	if err := p.writeEntries(b); err != nil {
		return err
	}
	if err := b.commit(); err != nil {
		return err
	}
	if err := stepDone(2); err != nil {
		return err
	}
	// Step 3: the new end and the whole hard state make it the log.
	if err := b.putLast(p.last); err != nil {
		return err
	}
	if p.writeHS || cutHS {
		if err := b.putHardState(p.hs); err != nil {
			return err
		}
	}
	return b.commit()
}

// batch feeds one or (when split) several write transactions.
//
// Badger keeps the key and value slices given to Set until the transaction
// commits, so buf is only ever appended to while a batch lives: bytes handed
// to a transaction are never overwritten. When append must grow buf, the old
// array stays alive through those references. Save reuses buf for the next
// batch, after every transaction of this one has finished.
type batch struct {
	db    *badger.DB
	txn   *badger.Txn
	buf   []byte
	split bool
	n     int
}

func (s *LogStore) newBatch(p *plan) *batch {
	need := int(p.size())
	for _, d := range p.del {
		if d.lo <= d.hi {
			need += int(min(d.hi-d.lo+1, 1<<20)) * entryKeyLen
		}
	}
	buf := s.buf[:0]
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	return &batch{db: s.db, buf: buf}
}

func snapshotMetaMax(m raftlogic.SnapshotMeta) int {
	return recordMin + (3+len(m.ConfState.Voters))*binary.MaxVarintLen64
}

// since returns what was appended to buf from start on, capped so that no
// later append can write into it.
func (b *batch) since(start int) []byte { return b.buf[start:len(b.buf):len(b.buf)] }

func (b *batch) entryKey(i uint64) []byte {
	start := len(b.buf)
	b.buf = appendEntryKey(b.buf, i)
	return b.since(start)
}

func (b *batch) putEntry(e raftlogic.Entry) error {
	k := b.entryKey(e.Index)
	start := len(b.buf)
	b.buf = appendEntry(b.buf, e)
	return b.set(k, b.since(start))
}

func (b *batch) putSnapshotMeta(m raftlogic.SnapshotMeta) error {
	start := len(b.buf)
	b.buf = appendSnapshotMeta(b.buf, m)
	return b.set([]byte(keySnapshot), b.since(start))
}

func (b *batch) putLast(i uint64) error {
	start := len(b.buf)
	b.buf = appendIndexRecord(b.buf, i)
	return b.set([]byte(keyLast), b.since(start))
}

func (b *batch) putHardState(hs raftlogic.HardState) error {
	start := len(b.buf)
	b.buf = appendHardState(b.buf, hs)
	return b.set([]byte(keyHardState), b.since(start))
}

func (b *batch) set(k, v []byte) error {
	return b.do(func(txn *badger.Txn) error { return txn.Set(k, v) })
}

func (b *batch) del(k []byte) error {
	return b.do(func(txn *badger.Txn) error { return txn.Delete(k) })
}

// do runs one write; in a split batch, a full transaction is committed and
// the write retried in a fresh one.
func (b *batch) do(op func(*badger.Txn) error) error {
	for {
		if b.txn == nil {
			b.txn = b.db.NewTransaction(true)
		}
		err := op(b.txn)
		if err == nil {
			b.n++
			return nil
		}
		if !errors.Is(err, badger.ErrTxnTooBig) || !b.split || b.n == 0 {
			return err
		}
		if err := b.commit(); err != nil {
			return err
		}
	}
}

// commit commits the current transaction, if any.
func (b *batch) commit() error {
	if b.txn == nil {
		return nil
	}
	err := b.txn.Commit()
	b.txn, b.n = nil, 0
	return err
}

func (b *batch) discard() {
	if b.txn != nil {
		b.txn.Discard()
		b.txn, b.n = nil, 0
	}
}

// Compact discards the entries up to and including index, which the state
// machine has applied, as raftlogic.Node.Compact does with its in-memory log.
// It records the snapshot metadata itself: index, the term of that entry and
// the stored ConfState (to record a different ConfState, use
// SaveSnapshotMeta instead). An index at or below the stored snapshot is
// already compacted and a no-op; one past the last index is ErrInvalid.
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
		return fmt.Errorf("%w: compact to %d, past the last index %d", ErrInvalid, index, s.last)
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
// no-op. Its term must match the stored entry at its index (ErrInvalid).
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
		err = fmt.Errorf("%w: snapshot at %d, past the last index %d", ErrInvalid, meta.Index, s.last)
	case meta.Index == s.snap.Index && meta.Term != s.snap.Term:
		err = fmt.Errorf("%w: snapshot term %d at index %d, stored term %d", ErrInvalid, meta.Term, meta.Index, s.snap.Term)
	case meta.Index > s.snap.Index:
		var term uint64
		if term, err = s.term(meta.Index); err == nil && term != meta.Term {
			err = fmt.Errorf("%w: snapshot term %d at index %d, stored entry term %d", ErrInvalid, meta.Term, meta.Index, term)
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
		b := &batch{db: s.db, split: true}
		for _, k := range keys {
			if err = b.del(k); err != nil {
				break
			}
		}
		if err == nil {
			err = b.commit()
		}
		b.discard()
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

// Entries returns the stored entries [lo, hi). It reads the disk on every
// call and is meant for tests and debugging; raftlogic keeps its own copy of
// the log.
func (s *LogStore) Entries(lo, hi uint64) ([]raftlogic.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	switch {
	case lo > hi:
		return nil, fmt.Errorf("%w: range [%d, %d)", ErrInvalid, lo, hi)
	case lo <= s.snap.Index:
		return nil, fmt.Errorf("%w: index %d, the log starts at %d", ErrCompacted, lo, s.snap.Index+1)
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

// FirstIndex returns the index of the first entry of the log, one past the
// snapshot's (it may not exist yet: then LastIndex is one less).
func (s *LogStore) FirstIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap.Index + 1
}

// LastIndex returns the index of the last entry of the log, or the
// snapshot's index if the log after it is empty.
func (s *LogStore) LastIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func cloneMeta(m raftlogic.SnapshotMeta) raftlogic.SnapshotMeta {
	m.ConfState.Voters = slices.Clone(m.ConfState.Voters)
	return m
}
