// Package inspect reads what a stopped RaftKV node holds on disk, read-only:
// its Raft log and hard state (through persist, which also checks the log
// has no hole) and its state machine's records (in kvstate's documented
// layout). The process-level and power-loss tests use it to check that the
// replicas agree. It is the one place outside persist and kvstate that knows
// a node's on-disk layout.
//
// It must never write to a node's directory, and never be used on a running
// node (Badger would refuse the second open anyway).
package inspect

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

// Node is what one stopped node holds on disk.
type Node struct {
	// Applied is the state machine's applied index (kvstate's m/applied).
	Applied uint64
	// HardState is the log's hard state: term, vote and commit index.
	HardState raftlogic.HardState
	// Snapshot is the index the log starts after; Entries is the log.
	Snapshot uint64
	Entries  []raftlogic.Entry
	// Data maps each user key to its value, as the caller's value function
	// rendered it.
	Data map[string]string
}

// Entry returns log entry i if the node still holds it.
func (n Node) Entry(i uint64) (raftlogic.Entry, bool) {
	if i <= n.Snapshot || i > n.Snapshot+uint64(len(n.Entries)) {
		return raftlogic.Entry{}, false
	}
	return n.Entries[i-n.Snapshot-1], true
}

// Read opens the node whose data directory is dir, read-only, and returns
// what it holds. value renders each user value and each entry's data (a test
// holding many large values may keep a digest instead of the bytes); nil
// keeps the bytes. A snapshot restore left unfinished is an error: a stopped
// node never has one once it has reopened its state machine.
func Read(dir string, value func([]byte) string) (Node, error) {
	if value == nil {
		value = func(b []byte) string { return string(b) }
	}
	n := Node{Data: map[string]string{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	readOnly := persist.WithBadgerOptions(func(o badger.Options) badger.Options { return o.WithReadOnly(true) })
	logDB, err := persist.OpenDB(persist.LogDir(dir), persist.WithLogger(quiet), readOnly)
	if err != nil {
		return n, err
	}
	defer logDB.Close()
	init, err := persist.NewLogStore(logDB, persist.WithLogger(quiet)).Load()
	if err != nil {
		return n, fmt.Errorf("load the log: %w", err)
	}
	n.HardState, n.Snapshot, n.Entries = init.HardState, init.Snapshot.Index, init.Entries
	for i := range n.Entries {
		n.Entries[i].Data = []byte(value(n.Entries[i].Data))
	}
	stateDB, err := persist.OpenDB(persist.StateDir(dir), persist.WithLogger(quiet), readOnly)
	if err != nil {
		return n, err
	}
	defer stateDB.Close()
	err = stateDB.View(func(txn *badger.Txn) error {
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
			n.Applied = binary.BigEndian.Uint64(v)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("k/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			n.Data[string(it.Item().Key()[2:])] = value(v)
		}
		return nil
	})
	return n, err
}
