package actors

import (
	"slices"
	"testing"

	"github.com/raftkv/raftkv/raftlogic"
)

func ents(term uint64, from, to uint64) []raftlogic.Entry {
	var out []raftlogic.Entry
	for i := from; i <= to; i++ {
		out = append(out, raftlogic.Entry{Index: i, Term: term})
	}
	return out
}

func entryIDs(es []raftlogic.Entry) [][2]uint64 {
	var out [][2]uint64
	for _, e := range es {
		out = append(out, [2]uint64{e.Index, e.Term})
	}
	return out
}

// A batch merges later Readies the way the log would take them one by one:
// a later Ready's entries replace the batch's from their first index on (a
// follower's log cut by a new leader), the newest hard state wins, and
// messages keep their order.
func TestLogWriteMergeKeepsTheLogsOrder(t *testing.T) {
	w := &logWrite{}
	w.merge(raftlogic.HardState{Term: 1, Vote: 1}, ents(1, 5, 7), []raftlogic.Message{{To: 2, Index: 1}})
	w.merge(raftlogic.HardState{}, ents(1, 8, 9), []raftlogic.Message{{To: 2, Index: 2}})
	if got, want := entryIDs(w.entries), entryIDs(ents(1, 5, 9)); !slices.Equal(got, want) {
		t.Fatalf("appended: %v, want %v", got, want)
	}
	w.merge(raftlogic.HardState{Term: 2}, ents(2, 7, 8), nil)
	want := entryIDs(append(ents(1, 5, 6), ents(2, 7, 8)...))
	if got := entryIDs(w.entries); !slices.Equal(got, want) {
		t.Fatalf("after a cut at 7: %v, want %v", got, want)
	}
	w.merge(raftlogic.HardState{}, ents(3, 4, 4), []raftlogic.Message{{To: 3, Index: 3}})
	if got, want := entryIDs(w.entries), entryIDs(ents(3, 4, 4)); !slices.Equal(got, want) {
		t.Fatalf("after a cut before the batch: %v, want %v", got, want)
	}
	if w.hs != (raftlogic.HardState{Term: 2}) {
		t.Fatalf("hard state %+v, want the newest non-empty one", w.hs)
	}
	var order []uint64
	for _, m := range w.late {
		order = append(order, m.Index)
	}
	if !slices.Equal(order, []uint64{1, 2, 3}) {
		t.Fatalf("messages in order %v, want [1 2 3]", order)
	}
}

// Regression: a node restarted by its supervisor keeps its mailbox, so a
// report its previous log writer sent can reach the new incarnation. Counting
// it as one of the new incarnation's writes made the node believe no write
// was in flight when one was, or wait forever for one that never was, and
// it stopped acknowledging anything.
func TestNodeIgnoresAnEarlierWritersReport(t *testing.T) {
	sys := newSystem(t)
	n := startLeader(t, sys)
	for range 3 {
		sys.Root.Send(n.pid, &logWritten{index: 1, term: 1})
	}
	n.mustPropose(putCmd("k", "v1"))
	n.mustGet("k", "v1")
	n.mustPropose(putCmd("k", "v2"))
	n.mustGet("k", "v2")
}
