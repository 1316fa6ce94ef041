package raftkv

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/persist"
)

// Overwriting large values (stored in Badger's value log) must not grow a
// node's disk without bound: the log compacts the old entries away, the
// state machine overwrites the old values, and the gc actor reclaims both.
// Badger's files are shrunk (2 MiB value-log files instead of 16) so that
// 80 overwrites of 1 MiB show what gigabytes would. Without collection each
// node would keep every copy twice (log and state machine): 160 MiB.
func TestOverwritingLargeValuesKeepsDiskBounded(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.SnapshotEntries = 10
	cfg.MaxValueSize = 1 << 20
	db := openTest(t, cfg, withStorageOptions(persist.WithBadgerOptions(func(o badger.Options) badger.Options {
		return o.WithValueLogFileSize(2 << 20)
	})))
	defer db.Close()
	ctx := ctxT(t)
	const keys, rounds = 2, 40
	v := make([]byte, cfg.MaxValueSize)
	for r := 0; r < rounds; r++ {
		for k := 0; k < keys; k++ {
			binary.BigEndian.PutUint64(v, uint64(r*keys+k))
			if err := db.Put(ctx, fmt.Sprint("big-", k), v); err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
	}
	waitApplied(t, db)
	// Live data per node: 2 values, plus up to snapshotEntries (10) log
	// entries of 1 MiB, each of which may sit alone in a 2 MiB value-log
	// file. Allowed on top: per database, four value-log files written
	// since the last forced flush, the one being written and one being
	// rewritten (6 × 2 MiB), and Badger's memtables and tables.
	const bound = 2*(2<<20) + 10*(2<<20) + 2*6*(2<<20) + 16<<20
	// Collection runs after compactions and at least every 10 s, so the
	// bound holds once the gc actors have had their turn.
	deadline := time.Now().Add(25 * time.Second)
	for {
		st, err := db.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		over := 0
		for _, n := range st {
			if n.DiskBytes == 0 || n.DiskBytes > bound {
				over++
			}
		}
		if over == 0 || time.Now().After(deadline) {
			for _, n := range st {
				t.Logf("node %d: %.1f MiB on disk after %d MiB of overwrites", n.ID, float64(n.DiskBytes)/(1<<20), keys*rounds)
				if n.DiskBytes == 0 || n.DiskBytes > bound {
					t.Errorf("node %d takes %d bytes on disk; bound %d", n.ID, n.DiskBytes, bound)
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The log is held in memory, so its bytes are bounded too, not only its
// length: with 1 MiB values and the default snapshotEntries (10,000), a log
// compacted by count alone would hold gigabytes.
func TestLogBytesAreBounded(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.SnapshotBytes = 4 << 20
	db := openTest(t, cfg)
	defer db.Close()
	ctx := ctxT(t)
	v := make([]byte, cfg.MaxValueSize)
	for i := 0; i < 30; i++ {
		v[0] = byte(i)
		if err := db.Put(ctx, key(i%3), v); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	waitApplied(t, db)
	st, err := db.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st {
		entries := n.LastIndex + 1 - n.FirstIndex
		t.Logf("node %d: log (%d, %d], %d entries", n.ID, n.FirstIndex-1, n.LastIndex, entries)
		// Up to 4 MiB of 1 MiB entries before a compaction, then at most
		// half of it kept; one more may arrive while the apply reports.
		if entries > 5 {
			t.Errorf("node %d holds %d entries of 1 MiB; snapshotBytes is 4 MiB", n.ID, entries)
		}
	}
}
