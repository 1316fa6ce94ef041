//go:build linux

package powerloss_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// nodeState is what one stopped node holds on disk.
type nodeState struct {
	applied uint64            // the state machine's applied index
	data    map[string][]byte // user data
	snap    uint64            // the log starts after this index
	entries []raftlogic.Entry // the log after snap
}

// readNodeState reads a stopped node's stored state from its data
// directory dir, read-only: the Raft log (through persist, which also
// checks it has no hole) and the state machine's records in kvstate's
// documented layout (k/<key> user values; m/applied, 16 bytes big-endian:
// index then term; m/restore only while a snapshot restore is unfinished).
//
// This is the one place that knows the on-disk layout of a node: the log
// and the state machine in two Badger databases (persist.LogDir and
// persist.StateDir).
func readNodeState(dir string) (nodeState, error) {
	st := nodeState{data: map[string][]byte{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	readOnly := persist.WithBadgerOptions(func(o badger.Options) badger.Options { return o.WithReadOnly(true) })
	logDB, err := persist.OpenDB(persist.LogDir(dir), persist.WithLogger(quiet), readOnly)
	if err != nil {
		return st, err
	}
	defer logDB.Close()
	init, err := persist.NewLogStore(logDB, persist.WithLogger(quiet)).Load()
	if err != nil {
		return st, fmt.Errorf("load the log: %w", err)
	}
	db, err := persist.OpenDB(persist.StateDir(dir), persist.WithLogger(quiet), readOnly)
	if err != nil {
		return st, err
	}
	defer db.Close()
	st.snap, st.entries = init.Snapshot.Index, init.Entries
	err = db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte("m/restore")); err == nil {
			return errors.New("m/restore present: a snapshot restore was left unfinished")
		}
		item, err := txn.Get([]byte("m/applied"))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != 16 {
				return fmt.Errorf("m/applied has %d bytes", len(v))
			}
			st.applied = binary.BigEndian.Uint64(v)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("k/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			st.data[string(it.Item().Key()[2:])] = v
		}
		return nil
	})
	return st, err
}

// entry returns log entry i if the node still holds it.
func (s nodeState) entry(i uint64) (raftlogic.Entry, bool) {
	if i <= s.snap || i > s.snap+uint64(len(s.entries)) {
		return raftlogic.Entry{}, false
	}
	return s.entries[i-s.snap-1], true
}
