package persist

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/raftkv/raftkv/raftlogic"
)

// node is one store on real disk that a test can close and reopen.
type node struct {
	t     *testing.T
	dir   string
	db    *badger.DB
	store *LogStore
}

func newNode(t *testing.T) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir()}
	n.open()
	t.Cleanup(n.close)
	return n
}

func (n *node) open() {
	n.t.Helper()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	db, err := OpenDB(n.dir, quiet)
	if err != nil {
		n.t.Fatalf("OpenDB: %v", err)
	}
	n.db, n.store = db, NewLogStore(db, quiet)
}

func (n *node) close() {
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			n.t.Errorf("close: %v", err)
		}
		n.db = nil
	}
}

// reopen closes the database and loads the store from disk again.
func (n *node) reopen() raftlogic.InitialState {
	n.t.Helper()
	n.close()
	n.open()
	return n.load()
}

func (n *node) load() raftlogic.InitialState {
	n.t.Helper()
	st, err := n.store.Load()
	if err != nil {
		n.t.Fatalf("Load: %v", err)
	}
	return st
}

func (n *node) save(hs raftlogic.HardState, ents []raftlogic.Entry, snap raftlogic.SnapshotMeta) {
	n.t.Helper()
	if err := n.store.Save(hs, ents, snap); err != nil {
		n.t.Fatalf("Save: %v", err)
	}
}

// keysPresent reports which entry keys in [lo, hi] exist on disk.
func (n *node) keysPresent(lo, hi uint64) []uint64 {
	n.t.Helper()
	var got []uint64
	err := n.db.View(func(txn *badger.Txn) error {
		for i := lo; i <= hi; i++ {
			_, err := txn.Get(appendEntryKey(nil, i))
			if err == nil {
				got = append(got, i)
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return got
}

func (n *node) rawSet(key, val []byte) {
	n.t.Helper()
	if err := n.db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) rawDelete(key []byte) {
	n.t.Helper()
	if err := n.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) }); err != nil {
		n.t.Fatal(err)
	}
}

// mkEntries returns entries [lo, hi] of the given term with recognisable
// data of size bytes (at least the label).
func mkEntries(lo, hi, term uint64, size int) []raftlogic.Entry {
	var ents []raftlogic.Entry
	for i := lo; i <= hi; i++ {
		d := []byte(fmt.Sprintf("i%d-t%d|", i, term))
		if len(d) < size {
			d = append(d, bytes.Repeat([]byte{'x'}, size-len(d))...)
		}
		ents = append(ents, raftlogic.Entry{Index: i, Term: term, Data: d})
	}
	return ents
}

func checkEntries(t *testing.T, got, want []raftlogic.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("entry %d: got {%d %d %d %q}, want {%d %d %d %q}",
				i, g.Index, g.Term, g.Type, g.Data, w.Index, w.Term, w.Type, w.Data)
		}
	}
}

func checkBounds(t *testing.T, s *LogStore, first, last uint64) {
	t.Helper()
	if f, l := s.firstIndex(), s.lastIndex(); f != first || l != last {
		t.Fatalf("bounds [%d, %d], want [%d, %d]", f, l, first, last)
	}
}

var voters = raftlogic.ConfState{Voters: []uint64{1, 2, 3}}

func TestRoundTripAcrossReopen(t *testing.T) {
	n := newNode(t)
	st := n.load()
	if st.HardState != (raftlogic.HardState{}) || st.Snapshot.Index != 0 || len(st.Entries) != 0 || len(st.Snapshot.ConfState.Voters) != 0 {
		t.Fatalf("fresh store loaded %+v", st)
	}
	if err := n.store.SaveSnapshotMeta(raftlogic.SnapshotMeta{ConfState: voters}); err != nil {
		t.Fatal(err)
	}
	want := mkEntries(1, 10, 1, 0)
	want[0].Data = nil // a leader's no-op
	want[3].Type = raftlogic.EntryConfChange
	n.save(raftlogic.HardState{Term: 1, Vote: 2}, want[:4], raftlogic.SnapshotMeta{})
	n.save(raftlogic.HardState{}, want[4:], raftlogic.SnapshotMeta{})
	// A commit-only change is written without a sync; Close must keep it.
	hs := raftlogic.HardState{Term: 1, Vote: 2, Commit: 7}
	n.save(hs, nil, raftlogic.SnapshotMeta{})
	checkBounds(t, n.store, 1, 10)

	st = n.reopen()
	if st.HardState != hs {
		t.Fatalf("hard state %+v, want %+v", st.HardState, hs)
	}
	if st.Snapshot.Index != 0 || fmt.Sprint(st.Snapshot.ConfState.Voters) != "[1 2 3]" {
		t.Fatalf("snapshot %+v", st.Snapshot)
	}
	if st.Applied != 0 {
		t.Fatalf("applied %d, want the snapshot index 0", st.Applied)
	}
	checkEntries(t, st.Entries, want)
	checkBounds(t, n.store, 1, 10)
	got, err := n.store.Entries(3, 6)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, got, want[2:5])
}

func TestSaveReplacesConflictingTail(t *testing.T) {
	n := newNode(t)
	n.load()
	n.save(raftlogic.HardState{Term: 1}, mkEntries(1, 10, 1, 16), raftlogic.SnapshotMeta{})

	// A new leader cuts the log at 6 and ends it earlier.
	n.save(raftlogic.HardState{Term: 2}, mkEntries(6, 7, 2, 16), raftlogic.SnapshotMeta{})
	checkBounds(t, n.store, 1, 7)
	if got := n.keysPresent(8, 12); len(got) != 0 {
		t.Fatalf("stale keys %v remain after the cut", got)
	}
	want := append(mkEntries(1, 5, 1, 16), mkEntries(6, 7, 2, 16)...)
	checkEntries(t, n.reopen().Entries, want)

	// Another cut that ends later than the stored log.
	n.save(raftlogic.HardState{Term: 3}, mkEntries(7, 12, 3, 16), raftlogic.SnapshotMeta{})
	want = append(want[:6], mkEntries(7, 12, 3, 16)...)
	st := n.reopen()
	checkEntries(t, st.Entries, want)
	if st.HardState.Term != 3 {
		t.Fatalf("term %d", st.HardState.Term)
	}
}

func TestSaveRefusesBrokenLogs(t *testing.T) {
	n := newNode(t)
	n.load()
	n.save(raftlogic.HardState{Term: 1}, mkEntries(1, 10, 1, 0), raftlogic.SnapshotMeta{})
	for name, ents := range map[string][]raftlogic.Entry{
		"gap":           mkEntries(12, 13, 1, 0),
		"not contigous": append(mkEntries(11, 11, 1, 0), mkEntries(13, 13, 1, 0)...),
		"index zero":    mkEntries(0, 1, 1, 0),
	} {
		if err := n.store.Save(raftlogic.HardState{}, ents, raftlogic.SnapshotMeta{}); !errors.Is(err, errInvalid) {
			t.Errorf("%s: got %v, want errInvalid", name, err)
		}
	}
	// Refused requests change nothing and do not poison the store.
	n.save(raftlogic.HardState{}, mkEntries(11, 11, 1, 0), raftlogic.SnapshotMeta{})
	checkEntries(t, n.reopen().Entries, mkEntries(1, 11, 1, 0))
}

func TestSnapshotInstallDiscardsLog(t *testing.T) {
	n := newNode(t)
	n.load()
	if err := n.store.SaveSnapshotMeta(raftlogic.SnapshotMeta{ConfState: voters}); err != nil {
		t.Fatal(err)
	}
	n.save(raftlogic.HardState{Term: 1}, mkEntries(1, 30, 1, 8), raftlogic.SnapshotMeta{})

	// The snapshot falls inside the stored log: everything goes, after its
	// index too, and entries it covers are skipped.
	snap := raftlogic.SnapshotMeta{Index: 20, Term: 3, ConfState: raftlogic.ConfState{Voters: []uint64{1, 2, 4}}}
	n.save(raftlogic.HardState{Term: 3, Commit: 20}, mkEntries(19, 22, 3, 8), snap)
	checkBounds(t, n.store, 21, 22)
	if got := n.keysPresent(1, 40); fmt.Sprint(got) != "[21 22]" {
		t.Fatalf("keys on disk %v, want [21 22]", got)
	}
	if _, err := n.store.Entries(20, 22); !errors.Is(err, errCompacted) {
		t.Fatalf("Entries below the snapshot: %v", err)
	}
	if _, err := n.store.Entries(21, 24); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Entries past the end: %v", err)
	}
	st := n.reopen()
	if st.Snapshot.Index != 20 || st.Snapshot.Term != 3 || fmt.Sprint(st.Snapshot.ConfState.Voters) != "[1 2 4]" {
		t.Fatalf("snapshot %+v", st.Snapshot)
	}
	if st.Applied != 20 {
		t.Fatalf("applied %d, want 20", st.Applied)
	}
	checkEntries(t, st.Entries, mkEntries(21, 22, 3, 8))

	// A snapshot beyond the whole log, with nothing after it.
	n.save(raftlogic.HardState{Term: 4, Commit: 50}, nil, raftlogic.SnapshotMeta{Index: 50, Term: 4, ConfState: voters})
	checkBounds(t, n.store, 51, 50)
	st = n.reopen()
	if st.Snapshot.Index != 50 || len(st.Entries) != 0 {
		t.Fatalf("loaded %+v", st)
	}
	// Appending right after it works; an older snapshot is refused.
	n.save(raftlogic.HardState{}, mkEntries(51, 51, 4, 0), raftlogic.SnapshotMeta{})
	err := n.store.Save(raftlogic.HardState{}, nil, raftlogic.SnapshotMeta{Index: 40, Term: 4})
	if !errors.Is(err, errInvalid) {
		t.Fatalf("older snapshot: %v", err)
	}
}

func TestCompact(t *testing.T) {
	n := newNode(t)
	n.load()
	if err := n.store.SaveSnapshotMeta(raftlogic.SnapshotMeta{ConfState: voters}); err != nil {
		t.Fatal(err)
	}
	all := append(mkEntries(1, 50, 1, 32), mkEntries(51, 100, 2, 32)...)
	n.save(raftlogic.HardState{Term: 2, Commit: 100}, all, raftlogic.SnapshotMeta{})

	if err := n.store.Compact(60); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, n.store, 61, 100)
	if got := n.keysPresent(1, 60); len(got) != 0 {
		t.Fatalf("compacted keys %v remain", got)
	}
	if _, err := n.store.Entries(60, 62); !errors.Is(err, errCompacted) {
		t.Fatalf("Entries(60, 62): %v", err)
	}
	if err := n.store.Compact(30); err != nil {
		t.Fatalf("compacting behind the snapshot: %v", err)
	}
	if err := n.store.Compact(101); !errors.Is(err, errInvalid) {
		t.Fatalf("compacting past the end: %v", err)
	}
	if err := n.store.SaveSnapshotMeta(raftlogic.SnapshotMeta{Index: 70, Term: 1}); !errors.Is(err, errInvalid) {
		t.Fatalf("snapshot meta with the wrong term: %v", err)
	}
	if err := n.store.SaveSnapshotMeta(raftlogic.SnapshotMeta{Index: 70, Term: 2, ConfState: voters}); err != nil {
		t.Fatal(err)
	}

	st := n.reopen()
	if st.Snapshot.Index != 70 || st.Snapshot.Term != 2 || fmt.Sprint(st.Snapshot.ConfState.Voters) != "[1 2 3]" {
		t.Fatalf("snapshot %+v", st.Snapshot)
	}
	checkEntries(t, st.Entries, all[70:])

	// Compacting everything leaves an empty log that still appends.
	if err := n.store.Compact(100); err != nil {
		t.Fatal(err)
	}
	n.save(raftlogic.HardState{}, mkEntries(101, 102, 2, 0), raftlogic.SnapshotMeta{})
	st = n.reopen()
	if st.Snapshot.Index != 100 || st.Snapshot.Term != 2 {
		t.Fatalf("snapshot %+v", st.Snapshot)
	}
	checkEntries(t, st.Entries, mkEntries(101, 102, 2, 0))
}

// TestCompactInterleavesWithSave runs the Raft loop and the apply loop
// against one store, as a node does; run it with -race.
func TestCompactInterleavesWithSave(t *testing.T) {
	n := newNode(t)
	n.load()
	const batches, per = 200, 10
	var mu sync.Mutex
	saved := uint64(0)
	var wg sync.WaitGroup
	wg.Go(func() {
		for b := range uint64(batches) {
			lo := b*per + 1
			if err := n.store.Save(raftlogic.HardState{Term: 1, Commit: lo + per - 1}, mkEntries(lo, lo+per-1, 1, 64), raftlogic.SnapshotMeta{}); err != nil {
				t.Errorf("Save: %v", err)
				return
			}
			mu.Lock()
			saved = lo + per - 1
			mu.Unlock()
		}
	})
	wg.Go(func() {
		for {
			mu.Lock()
			upto := saved
			mu.Unlock()
			if upto > 15 {
				if err := n.store.Compact(upto - 15); err != nil {
					t.Errorf("Compact: %v", err)
					return
				}
			}
			if upto == batches*per {
				return
			}
		}
	})
	wg.Wait()
	st := n.reopen()
	last := uint64(batches * per)
	if st.Snapshot.Index != last-15 {
		t.Fatalf("snapshot at %d, want %d", st.Snapshot.Index, last-15)
	}
	checkEntries(t, st.Entries, mkEntries(last-14, last, 1, 64))
	if got := n.keysPresent(1, last-15); len(got) != 0 {
		t.Fatalf("%d compacted keys remain", len(got))
	}
}

func TestLoadReportsCorruptRecords(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(n *node)
		wantKey string
	}{
		{"garbage entry", func(n *node) { n.rawSet(appendEntryKey(nil, 5), []byte("\x01garbage bytes")) }, "r/e/5"},
		{"truncated entry", func(n *node) {
			v := appendEntry(nil, raftlogic.Entry{Index: 5, Term: 1, Data: []byte("hello")})
			n.rawSet(appendEntryKey(nil, 5), v[:len(v)-2])
		}, "r/e/5"},
		{"entry under another key", func(n *node) {
			n.rawSet(appendEntryKey(nil, 5), appendEntry(nil, raftlogic.Entry{Index: 6, Term: 1}))
		}, "r/e/5"},
		{"empty entry", func(n *node) { n.rawSet(appendEntryKey(nil, 5), nil) }, "r/e/5"},
		{"hole", func(n *node) { n.rawDelete(appendEntryKey(nil, 5)) }, "r/e/5"},
		{"missing tail", func(n *node) { n.rawDelete(appendEntryKey(nil, 10)) }, "r/e/10"},
		{"hard state", func(n *node) { n.rawSet([]byte(keyHardState), []byte{1, 2, 3, 4, 5, 6}) }, keyHardState},
		{"snapshot meta", func(n *node) {
			// A voter count far beyond the bytes present must not allocate.
			b := []byte{recordV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}
			n.rawSet([]byte(keySnapshot), sealRecord(b, 0))
		}, keySnapshot},
		{"last below snapshot", func(n *node) {
			n.rawSet([]byte(keySnapshot), appendSnapshotMeta(nil, raftlogic.SnapshotMeta{Index: 20, Term: 1}))
		}, keyLast},
		{"last lost", func(n *node) { n.rawDelete([]byte(keyLast)) }, keyLast},
		{"bad entry key", func(n *node) { n.rawSet([]byte(entryPrefix+"abc"), []byte("x")) }, "abc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t)
			n.load()
			n.save(raftlogic.HardState{Term: 1, Commit: 3}, mkEntries(1, 10, 1, 8), raftlogic.SnapshotMeta{})
			c.damage(n)
			n.close()
			n.open()
			_, err := n.store.Load()
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("Load: %v, want errCorrupt", err)
			}
			if !strings.Contains(err.Error(), c.wantKey) {
				t.Fatalf("error %q does not name %s", err, c.wantKey)
			}
			if err := n.store.Save(raftlogic.HardState{Term: 2}, nil, raftlogic.SnapshotMeta{}); !errors.Is(err, errNotLoaded) {
				t.Fatalf("Save after a failed Load: %v", err)
			}
		})
	}
}

// TestLeftoversAboveLastAreIgnored stands in for a crash in the middle of a
// split batch: entries beyond r/last are not the log, and the next Save
// removes them.
func TestLeftoversAboveLastAreIgnored(t *testing.T) {
	n := newNode(t)
	n.load()
	n.save(raftlogic.HardState{Term: 1}, mkEntries(1, 10, 1, 0), raftlogic.SnapshotMeta{})
	for _, e := range mkEntries(11, 14, 2, 0) {
		n.rawSet(appendEntryKey(nil, e.Index), appendEntry(nil, e))
	}
	st := n.reopen()
	checkEntries(t, st.Entries, mkEntries(1, 10, 1, 0))
	checkBounds(t, n.store, 1, 10)
	n.save(raftlogic.HardState{Term: 3}, mkEntries(11, 11, 3, 0), raftlogic.SnapshotMeta{})
	if got := n.keysPresent(12, 20); len(got) != 0 {
		t.Fatalf("leftover keys %v remain", got)
	}
	checkEntries(t, n.reopen().Entries, append(mkEntries(1, 10, 1, 0), mkEntries(11, 11, 3, 0)...))
}

// TestBatchesLargerThanATransaction exercises the split write: batches past
// Badger's size and count limits for one transaction.
func TestBatchesLargerThanATransaction(t *testing.T) {
	n := newNode(t)
	n.load()
	if lim := n.db.MaxBatchSize(); lim > 4<<20 {
		t.Fatalf("transaction limit %d: the test no longer exceeds it", lim)
	}
	// 4 MiB of data in one Ready.
	big := mkEntries(1, 4096, 1, 1024)
	n.save(raftlogic.HardState{Term: 1, Commit: 4096}, big, raftlogic.SnapshotMeta{})
	checkEntries(t, n.reopen().Entries, big)

	// A large conflicting tail replaced by a larger one.
	n.save(raftlogic.HardState{Term: 2, Commit: 100}, mkEntries(101, 5000, 2, 1024), raftlogic.SnapshotMeta{})
	want := append(big[:100], mkEntries(101, 5000, 2, 1024)...)
	st := n.reopen()
	checkEntries(t, st.Entries, want)
	if st.HardState != (raftlogic.HardState{Term: 2, Commit: 100}) {
		t.Fatalf("hard state %+v", st.HardState)
	}

	// More small entries than a transaction may count, then a snapshot
	// that must delete them all.
	count := uint64(n.db.MaxBatchCount()) + 1000
	n.save(raftlogic.HardState{}, mkEntries(5001, 5000+count, 2, 0), raftlogic.SnapshotMeta{})
	checkBounds(t, n.store, 1, 5000+count)
	snap := raftlogic.SnapshotMeta{Index: 10, Term: 1, ConfState: voters}
	n.save(raftlogic.HardState{Term: 3, Commit: 10}, mkEntries(11, 12, 3, 0), snap)
	if got := n.keysPresent(1, 5000+count); fmt.Sprint(got) != "[11 12]" {
		t.Fatalf("%d keys on disk, want [11 12]", len(got))
	}
	st = n.reopen()
	checkEntries(t, st.Entries, mkEntries(11, 12, 3, 0))
	if st.Snapshot.Index != 10 || st.HardState.Term != 3 {
		t.Fatalf("loaded %+v / %+v", st.Snapshot, st.HardState)
	}

	// And a compaction of more keys than one transaction holds.
	n.save(raftlogic.HardState{}, mkEntries(13, 12+count, 3, 0), raftlogic.SnapshotMeta{})
	if err := n.store.Compact(12 + count - 1); err != nil {
		t.Fatal(err)
	}
	if got := n.keysPresent(1, 12+count); len(got) != 1 {
		t.Fatalf("%d keys remain after compaction, want 1", len(got))
	}
}

func TestUseBeforeLoad(t *testing.T) {
	n := newNode(t)
	if err := n.store.Save(raftlogic.HardState{Term: 1}, nil, raftlogic.SnapshotMeta{}); !errors.Is(err, errNotLoaded) {
		t.Fatalf("Save: %v", err)
	}
	if err := n.store.Compact(1); !errors.Is(err, errNotLoaded) {
		t.Fatalf("Compact: %v", err)
	}
	if _, err := n.store.Entries(1, 2); !errors.Is(err, errNotLoaded) {
		t.Fatalf("Entries: %v", err)
	}
}

// TestOtherPrefixesUntouched checks that the state machine's keys survive
// everything the store does.
func TestOtherPrefixesUntouched(t *testing.T) {
	n := newNode(t)
	n.rawSet([]byte("k/a"), []byte("1"))
	n.rawSet([]byte("m/applied"), []byte("2"))
	n.rawSet([]byte("r"), []byte("3"))
	n.load()
	n.save(raftlogic.HardState{Term: 1}, mkEntries(1, 10, 1, 0), raftlogic.SnapshotMeta{})
	if err := n.store.Compact(5); err != nil {
		t.Fatal(err)
	}
	n.save(raftlogic.HardState{Term: 2}, nil, raftlogic.SnapshotMeta{Index: 20, Term: 2})
	n.reopen()
	for k, v := range map[string]string{"k/a": "1", "m/applied": "2", "r": "3"} {
		err := n.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get([]byte(k))
			if err != nil {
				return err
			}
			got, err := item.ValueCopy(nil)
			if err == nil && string(got) != v {
				err = fmt.Errorf("value %q, want %q", got, v)
			}
			return err
		})
		if err != nil {
			t.Errorf("key %s: %v", k, err)
		}
	}
}

func TestOpenDBInMemory(t *testing.T) {
	db, err := OpenDB("", withInMemory(true), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := NewLogStore(db)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raftlogic.HardState{Term: 1}, mkEntries(1, 3, 1, 0), raftlogic.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDB(t.TempDir(), withInMemory(true)); err == nil {
		t.Fatal("an in-memory database accepted a directory")
	}
	if _, err := OpenDB(""); err == nil {
		t.Fatal("an on-disk database accepted an empty directory")
	}
}

// TestSplitBatchInterrupted stops a split batch after each of its first two
// steps, as a crash would, and checks that what is on disk loads as the old
// log cut back to what survives, and that the next Save cleans up.
func TestSplitBatchInterrupted(t *testing.T) {
	for _, step := range []int{1, 2} {
		for _, install := range []bool{false, true} {
			t.Run(fmt.Sprintf("step%d/install=%v", step, install), func(t *testing.T) {
				n := newNode(t)
				n.load()
				old := mkEntries(1, 3000, 1, 1024)
				n.save(raftlogic.HardState{Term: 1, Vote: 1, Commit: 1000}, old, raftlogic.SnapshotMeta{})

				crash := errors.New("crash")
				n.store.splitStepDone = func(s int) error {
					if s == step {
						return crash
					}
					return nil
				}
				hs := raftlogic.HardState{Term: 2, Vote: 2, Commit: 2500}
				snap := raftlogic.SnapshotMeta{}
				want := old[:1999]
				wantSnap, from := uint64(0), uint64(2000)
				if install {
					snap = raftlogic.SnapshotMeta{Index: 1500, Term: 1, ConfState: voters}
					hs.Commit = 1500
					want, wantSnap, from = nil, 1500, 1501
				}
				err := n.store.Save(hs, mkEntries(from, 6000, 2, 1024), snap)
				if !errors.Is(err, crash) {
					t.Fatalf("Save: %v, want the injected crash", err)
				}
				if err := n.store.Save(hs, nil, raftlogic.SnapshotMeta{}); err == nil {
					t.Fatal("a store whose write failed accepted another")
				}

				st := n.reopen()
				checkEntries(t, st.Entries, want)
				if st.Snapshot.Index != wantSnap {
					t.Fatalf("snapshot at %d, want %d", st.Snapshot.Index, wantSnap)
				}
				last := st.Snapshot.Index + uint64(len(st.Entries))
				if st.HardState.Term != 2 || st.HardState.Commit > last {
					t.Fatalf("hard state %+v with the log ending at %d", st.HardState, last)
				}
				// The node goes on: a small append cleans up the rest.
				n.save(raftlogic.HardState{}, mkEntries(last+1, last+1, 2, 0), raftlogic.SnapshotMeta{})
				if got := n.keysPresent(last+2, 6001); len(got) != 0 {
					t.Fatalf("%d leftover keys remain", len(got))
				}
				checkEntries(t, n.reopen().Entries, append(want, mkEntries(last+1, last+1, 2, 0)...))
			})
		}
	}
}
