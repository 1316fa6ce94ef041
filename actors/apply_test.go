package actors

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// spawnApply runs an apply actor over s under a probe standing in for the
// node; the probe receives the node's messages (appliedUpTo, failStop) and
// the answers to clients, since tests name it as replyTo.
func spawnApply(t *testing.T, sys *actor.ActorSystem, s *store) (parent, apply *actor.PID, rec *recorder) {
	t.Helper()
	return spawnProbe(t, sys, "", probeOpts{
		child:     func() actor.Actor { return &applyActor{sm: s.sm, logStore: s.logStore, log: quietLogger()} },
		childName: "apply",
	})
}

// clients gives each request its own reply PID, as each call in
// production has its own future, so a test tells answers apart by where
// they arrive.
type clients struct {
	t   *testing.T
	sys *actor.ActorSystem
	pid map[uint64]*actor.PID
	rec map[uint64]*recorder
}

func newClients(t *testing.T, sys *actor.ActorSystem) *clients {
	return &clients{t: t, sys: sys, pid: map[uint64]*actor.PID{}, rec: map[uint64]*recorder{}}
}

// settle is a probe's answer to a flush marker (see unanswered).
type settle struct{}

// at is the reply PID of request id.
func (c *clients) at(id uint64) *actor.PID {
	if pid, ok := c.pid[id]; ok {
		return pid
	}
	answerSettle := func(ctx actor.Context) bool {
		if _, ok := ctx.Message().(*settle); ok {
			ctx.Respond(&settle{})
			return true
		}
		return false
	}
	pid, _, rec := spawnProbe(c.t, c.sys, "", probeOpts{handle: answerSettle})
	c.pid[id], c.rec[id] = pid, rec
	return pid
}

// proposeAnswer waits for the answer to proposal id.
func (c *clients) proposeAnswer(id uint64) *raftpb.ProposeResponse {
	c.t.Helper()
	return expect[*raftpb.ProposeResponse](c.t, c.rec[id], nil)
}

// getAnswer waits for the answer to read id.
func (c *clients) getAnswer(id uint64) *raftpb.GetResponse {
	c.t.Helper()
	return expect[*raftpb.GetResponse](c.t, c.rec[id], nil)
}

// unanswered returns what request id has received and not yet been taken,
// once everything sent to it before the call has arrived.
func (c *clients) unanswered(id uint64) []any {
	c.t.Helper()
	if _, err := c.sys.Root.RequestFuture(c.at(id), &settle{}, waitTimeout).Result(); err != nil {
		c.t.Fatalf("settle request %d: %v", id, err)
	}
	return c.rec[id].snapshot()
}

func appliedTo(index uint64) func(*appliedUpTo) bool {
	return func(a *appliedUpTo) bool { return a.index == index }
}

func TestApplyActorAppliesInOrderAndAnswersWaiters(t *testing.T) {
	sys := newSystem(t)
	s := openStore(t)
	_, apply, rec := spawnApply(t, sys, s)
	root := sys.Root
	cl := newClients(t, sys)

	wait := func(index, term, rid uint64) {
		root.Send(apply, &awaitProposal{index: index, term: term, replyTo: cl.at(rid)})
	}
	wait(2, 1, 12)  // applied as proposed
	wait(3, 1, 13)  // the entry at 3 has term 2: overwritten by a new leader
	wait(4, 2, 14)  // update of a missing key
	wait(5, 2, 15)  // remove of a missing key
	wait(7, 2, 17)  // a command that does not decode
	wait(99, 2, 99) // never applied here
	root.Send(apply, &applyEntries{entries: []raftlogic.Entry{
		cmdEntry(1, 1, putCmd("a", "1")),
		cmdEntry(2, 1, putCmd("a", "2")), // same key: order decides the value
	}})
	root.Send(apply, &applyEntries{entries: []raftlogic.Entry{
		cmdEntry(3, 2, putCmd("c", "3")),
		cmdEntry(4, 2, updateCmd("missing", "x")),
		cmdEntry(5, 2, removeCmd("missing")),
		cmdEntry(6, 2, putCmd("b", "6")),
		{Index: 7, Term: 2, Type: raftlogic.EntryNormal, Data: []byte{0xff, 0x01}},
	}})

	if r := cl.proposeAnswer(12); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK || r.GetIndex() != 2 || r.GetTerm() != 1 {
		t.Fatalf("answer at index 2: %v", r)
	}
	if r := cl.proposeAnswer(13); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_DROPPED || r.GetTerm() != 2 {
		t.Fatalf("answer for an overwritten entry: %v, want DROPPED at term 2", r)
	}
	for _, rid := range []uint64{14, 15} {
		if r := cl.proposeAnswer(rid); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_NOT_FOUND {
			t.Fatalf("answer %d for a missing key: %v, want NOT_FOUND", rid, r)
		}
	}
	if r := cl.proposeAnswer(17); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_BAD_REQUEST {
		t.Fatalf("answer for a malformed command: %v, want BAD_REQUEST", r)
	}
	// The node hears how far apply got, batch by batch, in order.
	if a := expect[*appliedUpTo](t, rec, nil); a.index != 2 {
		t.Fatalf("first appliedUpTo = %d, want 2", a.index)
	}
	if a := expect[*appliedUpTo](t, rec, nil); a.index != 7 {
		t.Fatalf("second appliedUpTo = %d, want 7", a.index)
	}
	if got := cl.unanswered(99); len(got) > 0 {
		t.Fatalf("a waiter for an entry never applied was answered: %v", got)
	}
	mustGet(t, s.sm, "a", "2")
	mustGet(t, s.sm, "b", "6")
	mustGet(t, s.sm, "c", "3")
	if idx, term := s.sm.Applied(); idx != 7 || term != 2 {
		t.Fatalf("Applied() = %d, %d; want 7, 2", idx, term)
	}
}

func TestApplyActorServesReadsAtTheirIndex(t *testing.T) {
	sys := newSystem(t)
	s := openStore(t)
	_, apply, _ := spawnApply(t, sys, s)
	root := sys.Root
	cl := newClients(t, sys)
	read := func(index uint64, key string, rid uint64) {
		root.Send(apply, &readAt{index: index, key: key, replyTo: cl.at(rid)})
	}

	root.Send(apply, &applyEntries{entries: []raftlogic.Entry{cmdEntry(1, 1, putCmd("k", "old"))}})
	read(3, "k", 21) // waits for index 3
	read(1, "k", 22) // already applied: answered at once
	read(1, "nope", 23)
	if r := cl.getAnswer(22); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK || string(r.GetValue()) != "old" {
		t.Fatalf("read at an applied index: %v", r)
	}
	if r := cl.getAnswer(23); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("read of a missing key: %v, want NOT_FOUND", r)
	}
	// Read 21 was handled before 22 and 23 (one mailbox, one sender), so an
	// answer to it would already have been sent.
	if got := cl.unanswered(21); len(got) > 0 {
		t.Fatalf("read at index 3 answered at applied index 1: %v", got)
	}

	root.Send(apply, &applyEntries{entries: []raftlogic.Entry{cmdEntry(2, 1, putCmd("k", "mid"))}})
	read(1, "k", 24) // a marker behind the batch
	if r := cl.getAnswer(24); string(r.GetValue()) != "mid" {
		t.Fatalf("marker read: %v", r)
	}
	if got := cl.unanswered(21); len(got) > 0 {
		t.Fatalf("read at index 3 answered at applied index 2: %v", got)
	}

	root.Send(apply, &applyEntries{entries: []raftlogic.Entry{cmdEntry(3, 1, putCmd("k", "new"))}})
	if r := cl.getAnswer(21); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK || string(r.GetValue()) != "new" {
		t.Fatalf("read at index 3: %v, want the value written at 3", r)
	}
}

// saveLog writes entries to the log store, as the node does before it
// hands them to apply.
func saveLog(t *testing.T, s *store, ents ...raftlogic.Entry) {
	t.Helper()
	last := ents[len(ents)-1]
	if err := s.logStore.Save(raftlogic.HardState{Term: last.Term, Commit: last.Index}, ents, raftlogic.SnapshotMeta{}); err != nil {
		t.Fatalf("LogStore.Save: %v", err)
	}
}

func fiveEntries() []raftlogic.Entry {
	return []raftlogic.Entry{
		cmdEntry(1, 1, putCmd("k1", "v1")),
		cmdEntry(2, 1, putCmd("k2", "v2")),
		cmdEntry(3, 1, putCmd("k3", "v3")),
		cmdEntry(4, 1, putCmd("k4", "v4")),
		cmdEntry(5, 1, putCmd("k5", "v5")),
	}
}

// A fresh apply actor (the node restarted it) that is handed a batch
// starting past what the state machine applied fetches the gap from the log.
func TestApplyActorFillsGapFromLogAfterRestart(t *testing.T) {
	sys := newSystem(t)
	s := openStore(t)
	ents := fiveEntries()
	saveLog(t, s, ents...)

	first, apply, rec := spawnApply(t, sys, s)
	sys.Root.Send(apply, &applyEntries{entries: ents[:2]})
	expect(t, rec, appliedTo(2))
	if err := sys.Root.StopFuture(first).Wait(); err != nil {
		t.Fatal(err)
	}

	// Entry 3's batch was lost with the old instance; the next one is 4..5.
	_, apply, rec = spawnApply(t, sys, s)
	cl := newClients(t, sys)
	sys.Root.Send(apply, &awaitProposal{index: 3, term: 1, replyTo: cl.at(33)})
	sys.Root.Send(apply, &applyEntries{entries: ents[3:]})
	if r := cl.proposeAnswer(33); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK || r.GetIndex() != 3 {
		t.Fatalf("answer for the entry fetched from the log: %v", r)
	}
	expect(t, rec, appliedTo(5))
	for _, k := range []string{"1", "2", "3", "4", "5"} {
		mustGet(t, s.sm, "k"+k, "v"+k)
	}
}

// The same after a supervisor restart: a panic in the apply actor loses the
// message it failed on, and the restarted instance catches up from the log.
func TestApplyActorRestartedAfterPanicCatchesUp(t *testing.T) {
	sys := newSystem(t)
	failures := supervisorEvents(t, sys)
	s := openStore(t)
	ents := fiveEntries()
	saveLog(t, s, ents...)

	_, apply, rec := spawnApply(t, sys, s)
	cl := newClients(t, sys)
	sys.Root.Send(apply, &applyEntries{entries: ents[:2]})
	expect(t, rec, appliedTo(2))
	// A nil batch makes applyEntries panic: the stand-in for a bug hit while
	// applying entry 3's batch.
	sys.Root.Send(apply, (*applyEntries)(nil))
	ev := expect[*actor.SupervisorEvent](t, failures, nil)
	if ev.Child.Id != apply.Id || ev.Directive != actor.RestartDirective {
		t.Fatalf("supervisor event %v, want a restart of %s", ev, apply.Id)
	}

	sys.Root.Send(apply, &awaitProposal{index: 4, term: 1, replyTo: cl.at(44)})
	sys.Root.Send(apply, &applyEntries{entries: ents[3:]})
	if r := cl.proposeAnswer(44); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
		t.Fatalf("answer after the restart: %v", r)
	}
	expect(t, rec, appliedTo(5))
	mustGet(t, s.sm, "k3", "v3")
	mustGet(t, s.sm, "k5", "v5")
}

func TestApplyActorInstallsSnapshot(t *testing.T) {
	sys := newSystem(t)
	// The image: another replica's state at index 10, term 3.
	other := openStore(t)
	var img []raftlogic.Entry
	for i := uint64(1); i <= 9; i++ {
		img = append(img, cmdEntry(i, 1, putCmd("filler", "x")))
	}
	img = append(img, cmdEntry(10, 3, putCmd("s", "snap")))
	if _, err := other.sm.Apply(img, nil); err != nil {
		t.Fatal(err)
	}
	if err := other.sm.Flush(); err != nil {
		t.Fatal(err)
	}
	data, index, term, err := snapshotBytes(other.sm)
	if err != nil || index != 10 || term != 3 {
		t.Fatalf("SnapshotBytes: index %d term %d err %v", index, term, err)
	}

	s := openStore(t)
	_, apply, _ := spawnApply(t, sys, s)
	root := sys.Root
	cl := newClients(t, sys)
	root.Send(apply, &applyEntries{entries: []raftlogic.Entry{
		cmdEntry(1, 1, putCmd("a", "1")),
		cmdEntry(2, 1, putCmd("old", "x")),
	}})
	root.Send(apply, &awaitProposal{index: 5, term: 1, replyTo: cl.at(41)})  // covered by the image
	root.Send(apply, &awaitProposal{index: 12, term: 3, replyTo: cl.at(42)}) // beyond it
	root.Send(apply, &readAt{index: 8, key: "s", replyTo: cl.at(43)})
	root.Send(apply, &readAt{index: 11, key: "s", replyTo: cl.at(44)})

	res, err := root.RequestFuture(apply, &installSnapshot{gen: 7, path: imageFile(t, data)}, waitTimeout).Result()
	if err != nil {
		t.Fatalf("installSnapshot: %v", err)
	}
	if done := res.(*snapshotInstalled); done.err != nil || done.index != 10 || done.term != 3 || done.gen != 7 {
		t.Fatalf("snapshotInstalled = %+v, want index 10 term 3 of install 7", done)
	}
	if r := cl.proposeAnswer(41); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TIMEOUT {
		t.Fatalf("waiter covered by the snapshot: %v, want TIMEOUT", r)
	}
	if r := cl.getAnswer(43); string(r.GetValue()) != "snap" {
		t.Fatalf("read at 8 after the install: %v, want the image's value", r)
	}
	// A marker: whatever the install answered was sent before it.
	root.Send(apply, &readAt{index: 1, key: "s", replyTo: cl.at(45)})
	cl.getAnswer(45)
	if got := cl.unanswered(42); len(got) > 0 {
		t.Fatalf("waiter beyond the snapshot answered: %v", got)
	}
	if got := cl.unanswered(44); len(got) > 0 {
		t.Fatalf("read beyond the snapshot answered: %v", got)
	}
	mustGet(t, s.sm, "s", "snap")
	if v, err := s.sm.Get("old"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Fatalf("Get(old) = %q, %v; the snapshot should have replaced the state", v, err)
	}
	if idx, term := s.sm.Applied(); idx != 10 || term != 3 {
		t.Fatalf("Applied() = %d, %d; want 10, 3", idx, term)
	}

	// Applying carries on from the snapshot.
	root.Send(apply, &applyEntries{entries: []raftlogic.Entry{
		cmdEntry(11, 3, putCmd("s", "after")),
		cmdEntry(12, 3, putCmd("t", "12")),
	}})
	if r := cl.getAnswer(44); string(r.GetValue()) != "after" {
		t.Fatalf("read at 11: %v", r)
	}
	if r := cl.proposeAnswer(42); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
		t.Fatalf("waiter at 12: %v", r)
	}
}

func TestApplyActorBadSnapshotReportsError(t *testing.T) {
	sys := newSystem(t)
	s := openStore(t)
	_, apply, _ := spawnApply(t, sys, s)
	sys.Root.Send(apply, &applyEntries{entries: []raftlogic.Entry{cmdEntry(1, 1, putCmd("a", "1"))}})
	res, err := sys.Root.RequestFuture(apply, &installSnapshot{path: imageFile(t, []byte("not a snapshot"))}, waitTimeout).Result()
	if err != nil {
		t.Fatal(err)
	}
	if done := res.(*snapshotInstalled); !errors.Is(done.err, kvstate.ErrBadSnapshot) {
		t.Fatalf("snapshotInstalled.err = %v, want ErrBadSnapshot", done.err)
	}
	mustGet(t, s.sm, "a", "1")
}

// imageFile writes a snapshot image to a file, as the receiver leaves it
// for an install, and returns its path.
func imageFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestApplyActorStorageErrorFailStops(t *testing.T) {
	// Badger panics (rather than failing) when a closed database is used, so
	// the write error comes from a database opened read-only.
	t.Run("write refused", func(t *testing.T) {
		sys := newSystem(t)
		s := reopenReadOnly(t, openStore(t))
		_, apply, rec := spawnApply(t, sys, s)
		sys.Root.Send(apply, &applyEntries{entries: []raftlogic.Entry{cmdEntry(1, 1, putCmd("a", "1"))}})
		if fs := expect[*failStop](t, rec, nil); fs.err == nil {
			t.Fatal("failStop without an error")
		}
		if n := count[*appliedUpTo](rec); n != 0 {
			t.Fatalf("%d appliedUpTo after a failed apply", n)
		}
	})
	t.Run("gap missing from the log", func(t *testing.T) {
		sys := newSystem(t)
		s := openStore(t)
		_, apply, rec := spawnApply(t, sys, s)
		// Applied is 0 and the log is empty: entries 1..2 cannot be found.
		sys.Root.Send(apply, &applyEntries{entries: []raftlogic.Entry{cmdEntry(3, 1, putCmd("a", "1"))}})
		if fs := expect[*failStop](t, rec, nil); !errors.Is(fs.err, persist.ErrUnavailable) {
			t.Fatalf("failStop.err = %v, want persist.ErrUnavailable", fs.err)
		}
		if idx, _ := s.sm.Applied(); idx != 0 {
			t.Fatalf("applied %d past a gap", idx)
		}
	})
}

// reopenReadOnly closes s and opens its database again read-only: every
// write then fails with an error.
func reopenReadOnly(t *testing.T, s *store) *store {
	t.Helper()
	for _, db := range []*badger.DB{s.logDB, s.stateDB} {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return openStoreAt(t, s.dir, persist.WithBadgerOptions(func(o badger.Options) badger.Options { return o.WithReadOnly(true) }))
}

// Every proposal the apply actor waits for is answered exactly once, also
// when its outcome cannot be learned here: the node stepping down, a
// restart after a panic, or a stop answer the waiters with TIMEOUT (outcome
// unknown), so a sender can wait for the answer instead of re-proposing on
// a timer.
func TestApplyActorAnswersEveryWaiter(t *testing.T) {
	sys := newSystem(t)
	s := openStore(t)
	ents := fiveEntries()
	saveLog(t, s, ents...)
	_, apply, rec := spawnApply(t, sys, s)
	cl := newClients(t, sys)
	wait := func(index, term, rid uint64) {
		sys.Root.Send(apply, &awaitProposal{index: index, term: term, replyTo: cl.at(rid)})
	}
	unknownFrom := func(t *testing.T, rid, leader uint64) {
		t.Helper()
		r := cl.proposeAnswer(rid)
		if r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TIMEOUT || r.GetLeaderId() != leader {
			t.Fatalf("answer %d: %v, want TIMEOUT naming leader %d", rid, r, leader)
		}
	}

	wait(2, 1, 21)
	wait(3, 1, 22)
	sys.Root.Send(apply, &applyEntries{entries: ents[:2]})
	if r := cl.proposeAnswer(21); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
		t.Fatalf("applied waiter: %v", r)
	}
	expect(t, rec, appliedTo(2))
	sys.Root.Send(apply, &leadershipLost{leader: 3})
	unknownFrom(t, 22, 3)

	wait(4, 1, 23)
	sys.Root.Send(apply, (*applyEntries)(nil)) // panics: the actor restarts
	unknownFrom(t, 23, 0)

	wait(5, 1, 24)
	// A stop overtakes queued messages: wait until the waiter is in.
	sys.Root.Send(apply, &applyEntries{})
	expect[*appliedUpTo](t, rec, nil)
	if err := sys.Root.StopFuture(apply).Wait(); err != nil {
		t.Fatal(err)
	}
	unknownFrom(t, 24, 0)
	for rid := range cl.pid {
		if got := cl.unanswered(rid); len(got) > 0 {
			t.Fatalf("extra answers to %d: %v", rid, got)
		}
	}
	if n := count[*raftpb.ProposeResponse](rec); n != 0 {
		t.Fatalf("%d answers reached the node", n)
	}
}
