//go:build linux

package cluster_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// nodeState is what one stopped node holds on disk.
type nodeState struct {
	id      uint64
	applied uint64 // kvstate's applied index (m/applied)
	hs      raftlogic.HardState
	snap    uint64 // the log starts after this index
	entries []raftlogic.Entry
	data    map[string]string // user data: the k/ keys without the prefix
}

// committed is the highest index this node knows committed: what it has
// applied, or what its hard state records, whichever is higher.
func (s nodeState) committed() uint64 { return max(s.applied, s.hs.Commit) }

func (s nodeState) entry(i uint64) (raftlogic.Entry, bool) {
	if i <= s.snap || i > s.snap+uint64(len(s.entries)) {
		return raftlogic.Entry{}, false
	}
	return s.entries[i-s.snap-1], true
}

// readNodeState opens a stopped node's Badger databases read-only and reads
// its Raft log (persist) and its state machine's records (the documented
// kvstate layout: k/<key> user values, m/applied 16 bytes big-endian index
// and term, m/restore only during a snapshot restore).
func readNodeState(id uint64, dir string) (nodeState, error) {
	st := nodeState{id: id, data: map[string]string{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	readOnly := persist.WithBadgerOptions(func(o badger.Options) badger.Options { return o.WithReadOnly(true) })
	logDB, err := persist.OpenDB(persist.LogDir(dir), persist.WithLogger(quiet), readOnly)
	if err != nil {
		return st, err
	}
	defer logDB.Close()
	init, err := persist.NewLogStore(logDB, persist.WithLogger(quiet)).Load()
	if err != nil {
		return st, err
	}
	db, err := persist.OpenDB(persist.StateDir(dir), persist.WithLogger(quiet), readOnly)
	if err != nil {
		return st, err
	}
	defer db.Close()
	st.hs, st.snap, st.entries = init.HardState, init.Snapshot.Index, init.Entries
	for i := range st.entries {
		st.entries[i].Data = []byte(digestLarge(st.entries[i].Data))
	}
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
			st.data[string(it.Item().Key()[2:])] = digestLarge(v)
		}
		return nil
	})
	return st, err
}

// largeData is the size above which readNodeState keeps a digest of a value
// or an entry instead of its bytes, so that the states of several nodes
// holding many-MiB values fit in the test's memory; equal digests mean equal
// bytes for the comparisons made here.
const largeData = 4 << 10

// digestLarge returns b as a string, or, when b is larger than largeData, a
// digest of it that names its length and SHA-256.
func digestLarge(b []byte) string {
	if len(b) <= largeData {
		return string(b)
	}
	return fmt.Sprintf("<%d bytes, sha256 %x>", len(b), sha256.Sum256(b))
}

// inspectNodes reads every node's stored state; the nodes must be stopped.
func (c *cluster) inspectNodes() []nodeState {
	c.t.Helper()
	var states []nodeState
	for _, n := range c.nodes {
		if n.running() {
			c.t.Fatalf("inspect: node %d is still running", n.id)
		}
		dir := fmt.Sprintf("%s/node%d", c.data, n.id)
		st, err := readNodeState(n.id, dir)
		if err != nil {
			c.t.Fatalf("inspect node %d (%s): %v", n.id, dir, err)
		}
		c.logf("node %d on disk: applied=%d commit=%d term=%d log=(%d,%d] keys=%d",
			n.id, st.applied, st.hs.Commit, st.hs.Term, st.snap, st.snap+uint64(len(st.entries)), len(st.data))
		states = append(states, st)
	}
	return states
}

// compareStates checks that the replicas agree:
//   - every node applied the same index (the cluster was stopped converged,
//     followers first) and holds the same user data;
//   - log matching on what is committed: for every pair of nodes, the
//     entries both still hold at indexes both know committed are identical,
//     so no node applied a different command at the same index.
func compareStates(t testing.TB, states []nodeState) {
	t.Helper()
	if len(states) == 0 {
		return
	}
	ref := states[0]
	for _, s := range states[1:] {
		if s.applied != ref.applied {
			t.Errorf("node %d applied up to %d but node %d up to %d after a converged clean stop", s.id, s.applied, ref.id, ref.applied)
			continue
		}
		if diff := diffData(ref.data, s.data); diff != "" {
			t.Errorf("nodes %d and %d applied the same index %d but hold different data: %s", ref.id, s.id, s.applied, diff)
		}
	}
	for i, a := range states {
		for _, b := range states[i+1:] {
			lo := max(a.snap, b.snap) + 1
			hi := min(a.committed(), b.committed(), a.snap+uint64(len(a.entries)), b.snap+uint64(len(b.entries)))
			compared, mismatches := 0, 0
			for idx := lo; idx <= hi; idx++ {
				ea, _ := a.entry(idx)
				eb, _ := b.entry(idx)
				compared++
				if ea.Term != eb.Term || ea.Type != eb.Type || !bytes.Equal(ea.Data, eb.Data) {
					mismatches++
					if mismatches <= 5 {
						t.Errorf("committed entry %d differs: node %d has term %d type %d %d bytes, node %d has term %d type %d %d bytes",
							idx, a.id, ea.Term, ea.Type, len(ea.Data), b.id, eb.Term, eb.Type, len(eb.Data))
					}
				}
			}
			t.Logf("log matching: nodes %d and %d agree on %d of %d committed entries they both hold (%d..%d)",
				a.id, b.id, compared-mismatches, compared, lo, hi)
		}
	}
}

// diffData describes how two data maps differ ("" when equal).
func diffData(a, b map[string]string) string {
	var diffs []string
	for k, va := range a {
		if vb, ok := b[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s only in the first (%q)", k, va))
		} else if va != vb {
			diffs = append(diffs, fmt.Sprintf("%s: %q vs %q", k, va, vb))
		}
	}
	for k, vb := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s only in the second (%q)", k, vb))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	slices.Sort(diffs)
	return fmt.Sprintf("%d keys differ: %s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "; "))
}
