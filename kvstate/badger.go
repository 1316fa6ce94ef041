package kvstate

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/raftkv/raftkv/persist"
)

// Generic Badger helpers: walking a prefix, and deleting one in as many
// transactions as it takes (persist.TxnWriter).

// iterate calls fn for each key under prefix in txn, in key order.
func iterate(txn *badger.Txn, prefix string, values bool, fn func(*badger.Item) error) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = values
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(opts.Prefix); it.ValidForPrefix(opts.Prefix); it.Next() {
		if err := fn(it.Item()); err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix deletes every key under prefix except those keep accepts;
// progress (may be nil) is called after each batch deleted.
func deletePrefix(db *badger.DB, prefix string, keep func([]byte) bool, progress func()) error {
	w := persist.NewTxnWriter(db, progress)
	defer w.Discard()
	err := db.View(func(txn *badger.Txn) error {
		return iterate(txn, prefix, false, func(item *badger.Item) error {
			if keep != nil && keep(item.Key()) {
				return nil
			}
			return w.Delete(item.KeyCopy(nil))
		})
	})
	if err == nil {
		err = w.Commit()
	}
	if err != nil {
		return fmt.Errorf("kvstate: deleting %q records: %w", prefix, err)
	}
	return nil
}
