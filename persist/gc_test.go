package persist

import (
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
)

// smallVlog opens a database with 2 MiB value-log files, so that a test
// writing tens of MiB sees what a node writing GiBs would.
func smallVlog(t *testing.T) (*badger.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := OpenDB(dir, WithLogger(slog.New(slog.DiscardHandler)),
		WithBadgerOptions(func(o badger.Options) badger.Options { return o.WithValueLogFileSize(2 << 20) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

func noPause(f func() error) error { return f() }

// Overwriting one large value again and again (what a state machine does
// under such a workload) leaves every old copy in the value log unless
// something collects it. With Collect after every few writes the database
// stays within a few value-log files of its live data; without, it keeps
// everything (the control, which shows the bound can fail).
func TestCollectorBoundsOverwrittenValues(t *testing.T) {
	const writes, live = 60, 1 << 20
	run := func(collect bool) int64 {
		db, dir := smallVlog(t)
		c := NewCollector(db, noPause)
		c.minInterval = 0
		v := make([]byte, live)
		for i := 0; i < writes; i++ {
			binary.BigEndian.PutUint64(v, uint64(i))
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k/big"), v) }); err != nil {
				t.Fatal(err)
			}
			if collect && i%10 == 9 {
				if _, err := c.Collect(); err != nil {
					t.Fatalf("Collect: %v", err)
				}
			}
		}
		used, err := DiskUsage(dir)
		if err != nil {
			t.Fatal(err)
		}
		return used
	}
	// Live data, plus the value-log files written since the last forced
	// flush (up to four), the one being written and one being rewritten,
	// plus the LSM and memtables.
	const bound = 16 << 20
	without, with := run(false), run(true)
	t.Logf("%d overwrites of a %d-byte value: %d MiB on disk without collection, %d MiB with", writes, live, without>>20, with>>20)
	if without <= bound {
		t.Fatalf("control: without collection the database holds %d bytes, within the bound %d; the test cannot fail", without, bound)
	}
	if with > bound {
		t.Fatalf("with collection the database holds %d bytes for %d of live data; bound %d", with, live, bound)
	}
}

// The log's pattern: large entries appended, then compacted away. Their
// value-log space must come back too.
func TestCollectorBoundsCompactedLog(t *testing.T) {
	db, dir := smallVlog(t)
	s := NewLogStore(db, WithLogger(slog.New(slog.DiscardHandler)))
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	c := NewCollector(db, s.PauseWrites)
	c.minInterval = 0
	data := make([]byte, 1<<20)
	for i := uint64(1); i <= 60; i++ {
		e := raftlogic.Entry{Index: i, Term: 1, Data: data}
		if err := s.Save(raftlogic.HardState{Term: 1, Commit: i}, []raftlogic.Entry{e}, raftlogic.SnapshotMeta{}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := s.Compact(i - 2); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Collect(); err != nil {
				t.Fatalf("Collect: %v", err)
			}
		}
	}
	used, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("60 entries of 1 MiB, compacted to the last 2: %d MiB on disk", used>>20)
	if used > 16<<20 {
		t.Fatalf("the log holds 2 live entries of 1 MiB in %d bytes", used)
	}
	st, err := s.Load()
	if err != nil || len(st.Entries) != 2 || st.Entries[1].Index != 60 {
		t.Fatalf("log after collection: %d entries, %v", len(st.Entries), err)
	}
}

// Badger refuses a value larger than its value-log file; OpenDB sizes the
// files from WithLargestValue.
func TestOpenDBFitsTheLargestValue(t *testing.T) {
	big := make([]byte, valueLogFileSize+1)
	for _, tc := range []struct {
		largest int
		ok      bool
	}{{0, false}, {len(big), true}} {
		db, err := OpenDB(t.TempDir(), WithLogger(slog.New(slog.DiscardHandler)), WithLargestValue(tc.largest))
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), big) })
		db.Close()
		if (err == nil) != tc.ok {
			t.Errorf("WithLargestValue(%d): storing %d bytes: %v", tc.largest, len(big), err)
		}
	}
}

// Every single write a node makes must fit an empty Badger transaction:
// TxnWriter cannot split one write, and kvstate applies each entry's effects
// in one transaction. OpenDB's memtable size bounds the transaction, and
// values at or above its value threshold go to the value log (only a
// pointer stays in the transaction), so the largest write is the longest
// key with a value just below the threshold, plus a few small records
// beside it (an applied index, a session). That must fit with room to
// spare, and so must the largest value.
func TestOpenDBFitsTheLargestWriteInOneTransaction(t *testing.T) {
	const largestKey = 64000 + 16 // kvstate.MaxKeySize plus its key prefix
	db, err := OpenDB(t.TempDir(), WithLogger(slog.New(slog.DiscardHandler)), WithLargestValue(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := make([]byte, largestKey)
	for i, size := range []int{valueThreshold - 1, valueThreshold, 1 << 20} {
		key[0] = byte(i)
		err := db.Update(func(txn *badger.Txn) error {
			if err := txn.Set(key, make([]byte, size)); err != nil {
				return err
			}
			for j := range 16 { // the records an applied entry writes beside it, generously
				if err := txn.Set([]byte{'m', byte(i), byte(j)}, make([]byte, 256)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("a %d-byte key with a %d-byte value in one transaction (limit %d bytes): %v",
				len(key), size, db.MaxBatchSize(), err)
		}
	}
}
