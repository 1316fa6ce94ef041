package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

func sized(from, to uint64, size int) []raftlogic.Entry {
	var ents []raftlogic.Entry
	for i := from; i <= to; i++ {
		ents = append(ents, raftlogic.Entry{Index: i, Term: 1, Data: make([]byte, size)})
	}
	return ents
}

func TestLogSizesFollowsTheLog(t *testing.T) {
	var l logSizes
	l.reset(10, sized(11, 14, 100))
	if want := 4 * entrySize(raftlogic.Entry{Data: make([]byte, 100)}); l.total != want {
		t.Fatalf("total %d, want %d", l.total, want)
	}
	// A new leader's entries replace 13 and 14.
	l.append(sized(13, 13, 1000))
	if len(l.sizes) != 3 || l.total != 2*entrySize(sized(1, 1, 100)[0])+entrySize(sized(1, 1, 1000)[0]) {
		t.Fatalf("after a cut: %d entries, %d bytes", len(l.sizes), l.total)
	}
	l.compact(12)
	if l.snap != 12 || len(l.sizes) != 1 || l.total != entrySize(sized(1, 1, 1000)[0]) {
		t.Fatalf("after compacting to 12: snap %d, %d entries, %d bytes", l.snap, len(l.sizes), l.total)
	}
	l.compact(5) // already compacted
	l.append(sized(3, 4, 10))
	if l.snap != 12 || len(l.sizes) != 1 {
		t.Fatalf("entries below the snapshot changed the sizes: snap %d, %d entries", l.snap, len(l.sizes))
	}
}

func TestCompactionPoint(t *testing.T) {
	n := &nodeActor{cfg: NodeConfig{SnapshotEntries: 100, CatchUpEntries: 50, SnapshotBytes: 1 << 20}}
	mib := 1 << 20
	cases := []struct {
		name       string
		applied    uint64
		ents       []raftlogic.Entry
		want       uint64
		wantCompct bool
	}{
		{"few small entries", 90, sized(1, 90, 10), 0, false},
		{"entry count reached: keep catch-up entries", 100, sized(1, 100, 10), 50, true},
		{"bytes reached by big entries: keep at most half the budget", 8, sized(1, 8, mib/4), 7, true},
		{"bytes reached by unapplied entries only", 0, sized(1, 8, mib/4), 0, false},
	}
	for _, c := range cases {
		n.sizes.reset(0, c.ents)
		n.durable = c.applied
		got, ok := n.compactionPoint()
		if ok != c.wantCompct || (ok && got != c.want) {
			t.Errorf("%s: compactionPoint = %d, %v; want %d, %v", c.name, got, ok, c.want, c.wantCompct)
		}
	}
}

// The log is compacted only behind what the state machine has committed:
// with a flush interval longer than the test, applied entries stay
// uncommitted (reads see them) and compaction waits; the commit lets it
// go on, and a clean stop commits the rest.
func TestCompactionWaitsForDurableState(t *testing.T) {
	sys := newSystem(t)
	dir := t.TempDir()
	cfg := nodeConfig(sys, dir)
	cfg.SnapshotEntries, cfg.CatchUpEntries = 20, 0
	cfg.hooks = &testHooks{stateFlushInterval: time.Hour}
	n := startNode(t, sys, cfg)
	if err := n.startErr(); err != nil {
		t.Fatal(err)
	}
	n.waitLeader()
	for i := range 60 {
		n.mustPropose(putCmd(fmt.Sprint("k", i), fmt.Sprint("v", i)))
	}
	st := settledStatus(t, n)
	if st.GetApplied() < 60 {
		t.Fatalf("applied %d after 60 puts", st.GetApplied())
	}
	if st.GetSnapshotIndex() != 0 {
		t.Fatalf("the log was compacted to %d while the state machine had committed nothing", st.GetSnapshotIndex())
	}
	n.mustGet("k59", "v59")

	// What the flush timer sends.
	sys.Root.Send(actor.NewPID(n.pid.Address, n.pid.Id+"/apply"), &flushState{})
	eventually(t, "the log to be compacted after the commit", func() bool { return n.status().GetSnapshotIndex() > 0 })
	if s := n.status().GetSnapshotIndex(); s > st.GetApplied() {
		t.Fatalf("compacted to %d, past the %d entries committed", s, st.GetApplied())
	}

	n.mustPropose(putCmd("last", "x"))
	last := settledStatus(t, n).GetApplied()
	if err := sys.Root.StopFuture(n.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	<-n.stopped
	sm, done := openState(t, persist.StateDir(dir))
	defer done()
	if d, _ := sm.Durable(); d != last {
		t.Fatalf("after a clean stop the state machine holds %d, applied was %d", d, last)
	}
	mustGet(t, sm, "last", "x")
}

// settledStatus returns n's status once its applied index has caught up
// with its commit index: a client hears of an apply before the node does,
// so the status right after an answered proposal may trail it.
func settledStatus(t *testing.T, n *testNode) *raftpb.StatusResponse {
	t.Helper()
	var st *raftpb.StatusResponse
	eventually(t, "the node to hear of every apply", func() bool {
		st = n.status()
		return st.GetApplied() == st.GetCommit()
	})
	return st
}
