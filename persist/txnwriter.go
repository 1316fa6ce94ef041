package persist

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// TxnWriter writes many operations to one Badger database in as few
// transactions as Badger accepts: when Badger refuses an operation because
// the transaction is full (badger.ErrTxnTooBig), the writer commits the
// transaction and retries the operation in a new one. Badger's bound
// depends on the options (about 300 KiB or 3,200 writes with OpenDB's), so
// the caller need not know it.
//
// The writes therefore become durable in several steps, and a crash between
// two of them leaves only a prefix of them on disk. Use a TxnWriter only
// where every such prefix is a state the reader accepts or recovers from:
// persist writes a split batch beyond the end of the log Load reads, and
// kvstate stages a snapshot image under a prefix nothing reads, then deletes
// and moves records in restore phases that Open resumes from a marker.
// Writes that must be all or nothing (kvstate's Apply: an entry's effects
// and the applied index that covers them) need one transaction each and
// cannot use it.
//
// Badger keeps the key and value slices until the transaction commits, so
// the caller must not change them before Commit. A TxnWriter is not safe for
// concurrent use. Call Commit at the end, and Discard in every case (it
// drops whatever was not committed).
type TxnWriter struct {
	db  *badger.DB
	txn *badger.Txn
	// n counts the operations in txn: a refusal of an empty transaction's
	// first operation means it never fits, and is returned.
	n int
	// whole keeps every write in one transaction: a full one is an error
	// (Save tries a whole Ready that way before it splits it).
	whole    bool
	onCommit func()
}

// NewTxnWriter returns a writer to db. onCommit, if not nil, is called
// after each transaction the writer commits (a caller reports progress
// with it).
func NewTxnWriter(db *badger.DB, onCommit func()) *TxnWriter {
	return &TxnWriter{db: db, onCommit: onCommit}
}

// Set writes value under key.
func (w *TxnWriter) Set(key, value []byte) error {
	return w.do(func(txn *badger.Txn) error { return txn.Set(key, value) })
}

// Delete deletes key.
func (w *TxnWriter) Delete(key []byte) error {
	return w.do(func(txn *badger.Txn) error { return txn.Delete(key) })
}

// do runs one operation, in a fresh transaction when the current one is
// full. Badger's options make every single operation fit an empty
// transaction (it refuses a value threshold above the transaction size), but
// should one ever not, it fails with badger.ErrTxnTooBig rather than commit
// empty transactions forever.
func (w *TxnWriter) do(op func(*badger.Txn) error) error {
	for {
		if w.txn == nil {
			w.txn = w.db.NewTransaction(true)
		}
		err := op(w.txn)
		if err == nil {
			w.n++
			return nil
		}
		if !errors.Is(err, badger.ErrTxnTooBig) || w.whole || w.n == 0 {
			return err
		}
		if err := w.Commit(); err != nil {
			return err
		}
	}
}

// Commit commits the current transaction, if any; the next write starts a
// new one. It is durable when it returns if the database syncs its writes
// (OpenDB's do).
func (w *TxnWriter) Commit() error {
	if w.txn == nil {
		return nil
	}
	err := w.txn.Commit()
	w.txn, w.n = nil, 0
	if err == nil && w.onCommit != nil {
		w.onCommit()
	}
	return err
}

// Discard drops the current transaction's writes, if any.
func (w *TxnWriter) Discard() {
	if w.txn != nil {
		w.txn.Discard()
		w.txn, w.n = nil, 0
	}
}
