//go:build linux

package cluster_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/inspect"
)

// nodeState is what one stopped node holds on disk (see internal/inspect).
type nodeState struct {
	id uint64
	inspect.Node
}

// committed is the highest index this node knows committed: what it has
// applied, or what its hard state records, whichever is higher.
func (s nodeState) committed() uint64 { return max(s.Applied, s.HardState.Commit) }

// readNodeState reads a stopped node's data directory, keeping digests of
// large values and entries (see digestLarge).
func readNodeState(id uint64, dir string) (nodeState, error) {
	n, err := inspect.Read(dir, digestLarge)
	return nodeState{id: id, Node: n}, err
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
			n.id, st.Applied, st.HardState.Commit, st.HardState.Term, st.Snapshot, st.Snapshot+uint64(len(st.Entries)), len(st.Data))
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
		if s.Applied != ref.Applied {
			t.Errorf("node %d applied up to %d but node %d up to %d after a converged clean stop", s.id, s.Applied, ref.id, ref.Applied)
			continue
		}
		if diff := diffData(ref.Data, s.Data); diff != "" {
			t.Errorf("nodes %d and %d applied the same index %d but hold different data: %s", ref.id, s.id, s.Applied, diff)
		}
	}
	for i, a := range states {
		for _, b := range states[i+1:] {
			lo := max(a.Snapshot, b.Snapshot) + 1
			hi := min(a.committed(), b.committed(), a.Snapshot+uint64(len(a.Entries)), b.Snapshot+uint64(len(b.Entries)))
			compared, mismatches := 0, 0
			for idx := lo; idx <= hi; idx++ {
				ea, _ := a.Entry(idx)
				eb, _ := b.Entry(idx)
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
