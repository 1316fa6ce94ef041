package raftkv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/faults"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// waitLeader polls Status until one reachable node leads, and returns it.
func waitLeader(t testing.TB, db *DB) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := db.Status(context.Background())
		for _, s := range st {
			if s.Reachable && s.Role == "leader" {
				return s.ID
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no leader within 10s")
	return 0
}

// waitAgreedLeader waits until a leader is the one every reachable node
// names: right after a partition heals, a deposed leader may still report
// itself leading until it hears the new term, and waitLeader could return
// it.
func waitAgreedLeader(t testing.TB, db *DB) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := db.Status(context.Background())
		var leader uint64
		agreed := len(st) > 0
		for _, s := range st {
			if !s.Reachable || s.Leader == 0 || (leader != 0 && s.Leader != leader) {
				agreed = false
				break
			}
			leader = s.Leader
		}
		for _, s := range st {
			if agreed && s.ID == leader && s.Role == "leader" {
				return leader
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no leader every node agrees on within 10s")
	return 0
}

func TestLeaderCrashFailover(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	defer db.Close()
	ctx := ctxT(t)
	for i := 0; i < 20; i++ {
		if err := db.Put(ctx, key(i), []byte("v1")); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	old := waitLeader(t, db)
	if err := db.stopNode(old); err != nil {
		t.Fatalf("stop leader: %v", err)
	}
	// Writes continue on the two survivors.
	for i := 0; i < 20; i++ {
		if err := db.Put(ctx, key(i), []byte("v2")); err != nil {
			t.Fatalf("Put after leader crash: %v", err)
		}
	}
	if l := waitLeader(t, db); l == old {
		t.Fatalf("stopped node %d still reported leader", old)
	}
	if err := db.startNode(old); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// The old leader catches up: once it applied everything, the cluster
	// agrees on every value.
	waitApplied(t, db)
	for i := 0; i < 20; i++ {
		if v, err := db.Get(ctx, key(i)); err != nil || string(v) != "v2" {
			t.Fatalf("Get %s = %q, %v; want v2", key(i), v, err)
		}
	}
}

// waitApplied waits until every node has applied the leader's commit index.
func waitApplied(t testing.TB, db *DB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := db.Status(context.Background())
		var commit uint64
		for _, s := range st {
			if s.Role == "leader" {
				commit = s.Commit
			}
		}
		ok := commit > 0
		for _, s := range st {
			ok = ok && s.Reachable && s.Applied >= commit
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, _ := db.Status(context.Background())
	t.Fatalf("nodes did not catch up: %+v", st)
}

func TestPartitionedLeaderServesNoStaleReads(t *testing.T) {
	cfg := testConfig(t, 3)
	network := faults.NewNetwork(1)
	db := openTest(t, cfg, withSenderMiddleware(network.Middleware()))
	defer db.Close()
	ctx := ctxT(t)
	if err := db.Put(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	old := waitLeader(t, db)
	network.Isolate(old, 1, 2, 3)
	// Pin the DB to the isolated leader: its read must not return "old"
	// after the majority has moved on.
	var others []uint64
	for _, id := range []uint64{1, 2, 3} {
		if id != old {
			others = append(others, id)
		}
	}
	db.route.leader.Store(others[0])
	if err := db.Put(ctx, "k", []byte("new")); err != nil {
		t.Fatalf("Put in majority: %v", err)
	}
	res, err := db.route.request(ctx, db.route.pid(old), getReq(db, "k"), false)
	if err == nil && res.GetErrorCode() == 0 {
		t.Fatalf("isolated old leader %d answered a read (%v); it must not", old, res)
	}
	network.Heal()
	waitApplied(t, db)
	if v, err := db.Get(ctx, "k"); err != nil || string(v) != "new" {
		t.Fatalf("Get after heal = %q, %v; want new", v, err)
	}
}

func getReq(db *DB, key string) *raftpb.GetRequest {
	return &raftpb.GetRequest{ClusterId: db.cfg.ClusterID, Key: key}
}

// With every node down, a call fails with ErrUnavailable once its context
// ends, wrapping the context's error, and does not hang.
func TestNoQuorumFailsWithinContext(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	if err := db.Put(ctxT(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	l := waitLeader(t, db)
	for _, id := range []uint64{1, 2, 3} {
		if id != l {
			if err := db.stopNode(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := db.Put(ctx, "k", []byte("w"))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put without quorum: %v, want ErrUnavailable wrapping DeadlineExceeded", err)
	}
	if _, err := db.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get without quorum: %v, want ErrUnavailable", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("calls took %v after a 300ms context", waited)
	}
}
