package persist

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// smallTxnDB opens a database whose transactions hold about 150 KiB, so a
// few hundred writes of 1 KiB fill several (values stay in the LSM tree).
func smallTxnDB(t *testing.T) *badger.DB {
	t.Helper()
	db, err := OpenDB(t.TempDir(), WithLogger(slog.New(slog.DiscardHandler)),
		WithBadgerOptions(func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countKeys(t *testing.T, db *badger.DB, prefix string) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A TxnWriter given more than one transaction holds commits whenever Badger
// says the transaction is full and carries on in a new one: every write
// arrives, in several commits, each reported.
func TestTxnWriterSplitsWhenFull(t *testing.T) {
	db := smallTxnDB(t)
	const n = 2000
	value := make([]byte, 1024)
	if n*len(value) < 4*int(db.MaxBatchSize()) {
		t.Fatalf("%d writes of %d bytes fit in fewer than 4 transactions of %d bytes", n, len(value), db.MaxBatchSize())
	}
	commits := 0
	w := NewTxnWriter(db, func() { commits++ })
	defer w.Discard()
	for i := range n {
		if err := w.Set(fmt.Appendf(nil, "t/%05d", i), value); err != nil {
			t.Fatalf("Set %d: %v", i, err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := countKeys(t, db, "t/"); got != n {
		t.Fatalf("%d keys written, want %d", got, n)
	}
	if commits < 4 {
		t.Fatalf("%d commits reported for %d bytes; want one per full transaction and the last", commits, n*len(value))
	}
	for i := range n {
		if err := w.Delete(fmt.Appendf(nil, "t/%05d", i)); err != nil {
			t.Fatalf("Delete %d: %v", i, err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := countKeys(t, db, "t/"); got != 0 {
		t.Fatalf("%d keys left after deleting all", got)
	}
}

// In Save's first try every write must share one transaction: a full one is
// reported, and Discard leaves nothing behind.
func TestTxnWriterWholeReportsAFullTransaction(t *testing.T) {
	db := smallTxnDB(t)
	w := NewTxnWriter(db, nil)
	w.whole = true
	value := make([]byte, 1024)
	var err error
	for i := 0; err == nil; i++ {
		if i > 10000 {
			t.Fatal("no ErrTxnTooBig after 10 MiB in one transaction")
		}
		err = w.Set(fmt.Appendf(nil, "t/%05d", i), value)
	}
	if !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("got %v, want ErrTxnTooBig", err)
	}
	w.Discard()
	if got := countKeys(t, db, "t/"); got != 0 {
		t.Fatalf("%d keys committed by a discarded whole transaction", got)
	}
}
