package raftkv

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftkv/raftkv/remote/raftpb"
)

// snapValue is key i's value in TestLaggingFollowerRepairedBySnapshot: 2 KiB,
// so 400 of them make a snapshot of several 256 KiB chunks.
func snapValue(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("value-%04d;", i)), 2048/11+1)[:2048]
}

// A follower that comes back after the leader compacted its log past the
// follower's last entry can only be repaired by a snapshot. It must end up
// with exactly the leader's state: new keys present, keys removed while it
// was down gone, updated keys updated. Reads it serves as leader prove it.
func TestLaggingFollowerRepairedBySnapshot(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.SnapshotEntries = 50
	db := openTest(t, cfg)
	defer db.Close()
	ctx := ctxT(t)

	// State the follower has before it goes down.
	const old = 20
	for i := 0; i < old; i++ {
		if err := db.Put(ctx, fmt.Sprintf("old-%02d", i), []byte("o")); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	waitApplied(t, db)
	leader := waitLeader(t, db)
	follower := leader%3 + 1
	before := nodeStatus(t, db, follower)
	if err := db.stopNode(follower); err != nil {
		t.Fatalf("stop follower %d: %v", follower, err)
	}

	// While it is down: many new keys, removals and updates of old ones.
	const n = 400
	for i := 0; i < n; i++ {
		if err := db.Put(ctx, key(i), snapValue(i)); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	for i := 0; i < old; i++ {
		k := fmt.Sprintf("old-%02d", i)
		var err error
		if i%2 == 0 {
			err = db.Remove(ctx, k)
		} else {
			err = db.Update(ctx, k, []byte("updated"))
		}
		if err != nil {
			t.Fatalf("change %s: %v", k, err)
		}
	}

	// The log the follower would need is gone from every live node.
	var ldr NodeStatus
	for deadline := time.Now().Add(10 * time.Second); ; {
		ldr = nodeStatus(t, db, waitLeader(t, db))
		if ldr.FirstIndex > before.LastIndex+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader did not compact past the follower's last index %d: %+v", before.LastIndex, ldr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("follower %d stopped at last index %d (snapshot %d); leader %d log now starts at %d (snapshot %d, commit %d)",
		follower, before.LastIndex, before.SnapshotIndex, ldr.ID, ldr.FirstIndex, ldr.SnapshotIndex, ldr.Commit)

	if err := db.startNode(follower); err != nil {
		t.Fatalf("restart follower: %v", err)
	}
	waitApplied(t, db)
	after := nodeStatus(t, db, follower)
	t.Logf("follower after catching up: first %d last %d snapshot %d applied %d", after.FirstIndex, after.LastIndex, after.SnapshotIndex, after.Applied)
	if after.SnapshotIndex <= before.LastIndex || after.FirstIndex <= before.LastIndex+1 {
		t.Fatalf("follower did not install a snapshot: before %+v, after %+v", before, after)
	}
	if after.SnapshotIndex < ldr.SnapshotIndex {
		t.Fatalf("follower's snapshot %d is older than the leader's compaction point %d", after.SnapshotIndex, ldr.SnapshotIndex)
	}

	// Make the repaired follower the leader, and read everything from it.
	transferLeadership(t, db, follower)
	read := func(k string) ([]byte, raftpb.ErrorCode) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			res, err := db.route.request(ctx, db.route.pid(follower), getReq(db, k), false)
			if err != nil {
				t.Fatalf("read %s from %d: %v", k, follower, err)
			}
			code := res.GetErrorCode()
			if code == raftpb.ErrorCode_ERROR_CODE_NOT_LEADER && attempt < 5 {
				// An election (a stalled machine) moved leadership away.
				transferLeadership(t, db, follower)
				continue
			}
			return res.(*raftpb.GetResponse).GetValue(), code
		}
	}
	for i := 0; i < n; i++ {
		v, code := read(key(i))
		if code != raftpb.ErrorCode_ERROR_CODE_OK || !bytes.Equal(v, snapValue(i)) {
			t.Fatalf("repaired node %d: %s = %.20q (%v), want %.20q", follower, key(i), v, code, snapValue(i))
		}
	}
	for i := 0; i < old; i++ {
		k := fmt.Sprintf("old-%02d", i)
		v, code := read(k)
		if i%2 == 0 && code != raftpb.ErrorCode_ERROR_CODE_NOT_FOUND {
			t.Fatalf("repaired node %d: removed %s = %q (%v), want not found", follower, k, v, code)
		}
		if i%2 == 1 && (code != raftpb.ErrorCode_ERROR_CODE_OK || string(v) != "updated") {
			t.Fatalf("repaired node %d: %s = %q (%v), want updated", follower, k, v, code)
		}
	}
	// And it goes on working as leader.
	if err := db.Put(ctx, "after", []byte("x")); err != nil {
		t.Fatalf("Put after transfer: %v", err)
	}
	if v, err := db.Get(ctx, "after"); err != nil || string(v) != "x" {
		t.Fatalf("Get after transfer = %q, %v", v, err)
	}
}

func nodeStatus(t *testing.T, db *DB, id uint64) NodeStatus {
	t.Helper()
	st, err := db.gw.status(context.Background(), []uint64{id})
	if err != nil || !st[0].Reachable {
		t.Fatalf("status of node %d: %+v, %v", id, st, err)
	}
	return st[0]
}

// transferLeadership asks the leader to hand over to id, until id leads.
func transferLeadership(t *testing.T, db *DB, id uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		l := waitLeader(t, db)
		if l == id {
			return
		}
		res, err := db.sys.Root.RequestFuture(db.route.pid(l), &raftpb.TransferRequest{To: id, ClusterId: db.cfg.ClusterID}, readTryTimeout).Result()
		if err != nil {
			t.Logf("transfer request to %d: %v", l, err)
		} else if r := res.(*raftpb.TransferResponse); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
			t.Logf("transfer refused by %d: %v %s", l, r.GetErrorCode(), r.GetMessage())
		}
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			if s := nodeStatus(t, db, id); s.Role == "leader" {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Fatalf("leadership did not move to node %d", id)
}

// logCounter is a slog handler that counts records whose message is msg.
type logCounter struct {
	msg string
	n   *atomic.Int64
}

func (h logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h logCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logCounter) WithGroup(string) slog.Handler      { return h }

// A follower only briefly behind (fewer missed entries than the catch-up
// entries a compaction keeps) catches up from the log, even when the leader
// compacted while it was away: no snapshot is sent. Without the trailing
// entries every compaction would force a full snapshot on it.
func TestBrieflyLaggingFollowerCatchesUpFromLog(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.SnapshotEntries = 100 // compaction keeps min(catchUpEntries, 50) entries
	var snapshotsSent atomic.Int64
	db := openTest(t, cfg, WithLogger(slog.New(logCounter{msg: "sending snapshot", n: &snapshotsSent})))
	defer db.Close()
	ctx := ctxT(t)

	// Fill the log until the leader is 15 entries short of its next
	// compaction, so that one comes while the follower is away.
	leader := waitLeader(t, db)
	i := 0
	for {
		ldr := nodeStatus(t, db, leader)
		if d := ldr.Applied - ldr.SnapshotIndex; ldr.SnapshotIndex > 0 && d >= 85 && d < 90 {
			break
		}
		if err := db.Put(ctx, key(i), []byte("v")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		i++
		if i > 1000 {
			t.Fatalf("leader never reached the window before a compaction: %+v", ldr)
		}
	}
	waitApplied(t, db)
	leader = waitLeader(t, db)
	before := nodeStatus(t, db, leader)
	follower := leader%3 + 1
	if err := db.stopNode(follower); err != nil {
		t.Fatalf("stop follower %d: %v", follower, err)
	}
	for j := 0; j < 30; j++ {
		if err := db.Put(ctx, key(i), []byte("w")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		i++
	}
	after := nodeStatus(t, db, waitLeader(t, db))
	if after.SnapshotIndex <= before.SnapshotIndex {
		t.Fatalf("the leader did not compact while the follower was away (snapshot index %d, then %d): the test proves nothing",
			before.SnapshotIndex, after.SnapshotIndex)
	}
	if err := db.startNode(follower); err != nil {
		t.Fatalf("restart follower: %v", err)
	}
	waitApplied(t, db)
	if n := snapshotsSent.Load(); n != 0 {
		t.Fatalf("%d snapshots sent to a follower that missed 30 entries (leader compacted to %d)", n, after.SnapshotIndex)
	}
}
