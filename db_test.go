package raftkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/config"
)

// testConfig is a 3-node cluster in a temporary directory, with testTiming.
func testConfig(t testing.TB, nodes int) config.Config {
	cfg := config.Default()
	cfg.ServersNum = nodes
	cfg.PersistPath = t.TempDir()
	testTiming(&cfg)
	return cfg
}

// testTiming sets the Raft timing this package's tests are written for:
// 10 ms ticks, a heartbeat every tick, elections after 100-200 ms. First
// elections and failovers then take a fraction of the defaults' (50 ms
// ticks, chosen for an idle cluster's CPU), and the tests that set their
// own election timeout count it in 10 ms ticks.
func testTiming(cfg *config.Config) {
	cfg.TickInterval = 10 * time.Millisecond
	cfg.ElectionTicks = 10
	cfg.HeartbeatTicks = 1
}

func testLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("RAFTKV_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func openTest(t testing.TB, cfg config.Config, opts ...Option) *DB {
	t.Helper()
	db, err := Open(append([]Option{WithConfig(cfg), WithLogger(testLogger())}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPutGetUpdateRemove(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	ctx := ctxT(t)

	if err := db.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, err := db.Get(ctx, "a"); err != nil || string(v) != "1" {
		t.Fatalf("Get a = %q, %v; want 1", v, err)
	}
	if err := db.Update(ctx, "a", []byte("2")); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if v, err := db.Get(ctx, "a"); err != nil || string(v) != "2" {
		t.Fatalf("Get a = %q, %v; want 2", v, err)
	}
	if err := db.Update(ctx, "missing", []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update missing: %v, want ErrNotFound", err)
	}
	if _, err := db.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing after failed Update: %v, want ErrNotFound (nothing written)", err)
	}
	if err := db.Remove(ctx, "a"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := db.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get removed: %v, want ErrNotFound", err)
	}
	if err := db.Remove(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove absent: %v, want ErrNotFound", err)
	}
}

func TestCloseReopenKeepsWrites(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	ctx := ctxT(t)
	for i := 0; i < 50; i++ {
		if err := db.Put(ctx, key(i), []byte(key(i))); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Put(ctx, "after", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	db = openTest(t, cfg)
	defer db.Close()
	for i := 0; i < 50; i++ {
		if v, err := db.Get(ctx, key(i)); err != nil || string(v) != key(i) {
			t.Fatalf("after reopen Get %d = %q, %v", i, v, err)
		}
	}
}

func key(i int) string { return fmt.Sprintf("key-%03d", i) }

func TestOpenRefusesDataOfAnotherCluster(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Same data, but the configuration now says five members.
	cfg.ServersNum = 5
	db, err := Open(WithConfig(cfg), WithLogger(testLogger()))
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded on data of a 3-node cluster with a 5-node configuration")
	}
	if !errors.Is(err, actors.ErrWrongCluster) {
		t.Fatalf("Open: %v, want ErrWrongCluster", err)
	}
}

func TestBadInputIsRefusedAndNothingStored(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	ctx := ctxT(t)
	bigKey := strings.Repeat("k", 70_000)
	bigValue := make([]byte, db.cfg.MaxValueSize+1)
	cases := []struct {
		name string
		err  error
		call func() error
	}{
		{"put empty key", ErrEmptyKey, func() error { return db.Put(ctx, "", []byte("v")) }},
		{"update empty key", ErrEmptyKey, func() error { return db.Update(ctx, "", []byte("v")) }},
		{"remove empty key", ErrEmptyKey, func() error { return db.Remove(ctx, "") }},
		{"get empty key", ErrEmptyKey, func() error { _, err := db.Get(ctx, ""); return err }},
		{"put oversized key", ErrKeyTooLarge, func() error { return db.Put(ctx, bigKey, []byte("v")) }},
		{"get oversized key", ErrKeyTooLarge, func() error { _, err := db.Get(ctx, bigKey); return err }},
		{"put oversized value", ErrValueTooLarge, func() error { return db.Put(ctx, "big", bigValue) }},
		{"update oversized value", ErrValueTooLarge, func() error { return db.Update(ctx, "big", bigValue) }},
	}
	before := appliedIndexes(t, db)
	for _, c := range cases {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// Nothing was proposed: the log did not grow, and the keys are absent.
	if after := appliedIndexes(t, db); !slices.Equal(before, after) {
		t.Errorf("log indexes moved from %v to %v: a refused input reached the log", before, after)
	}
	if _, err := db.Get(ctx, "big"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get big: %v, want ErrNotFound", err)
	}
	// The largest legal value is accepted.
	if err := db.Put(ctx, "max", make([]byte, db.cfg.MaxValueSize)); err != nil {
		t.Errorf("Put of a value at the limit: %v", err)
	}
}

// appliedIndexes returns each node's last log index once the cluster is idle.
func appliedIndexes(t testing.TB, db *DB) []uint64 {
	waitApplied(t, db)
	st, err := db.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, s := range st {
		out = append(out, s.LastIndex)
	}
	return out
}

func TestOpenRefusesAnotherNodesData(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Swap the data of nodes 1 and 2: each would start on the other's log.
	d1, d2 := cfg.DataDir(1), cfg.DataDir(2)
	if err := os.Rename(d1, d1+".x"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d2, d1); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d1+".x", d2); err != nil {
		t.Fatal(err)
	}
	db, err := Open(WithConfig(cfg), WithLogger(testLogger()))
	if err == nil {
		db.Close()
		t.Fatal("Open accepted swapped data directories")
	}
	if !errors.Is(err, actors.ErrWrongCluster) || !strings.Contains(err.Error(), "node=2") {
		t.Fatalf("Open: %v, want ErrWrongCluster naming the directory's real node", err)
	}
}

func TestOpenRefusesAnotherClustersData(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.ClusterID = "other"
	db, err := Open(WithConfig(cfg), WithLogger(testLogger()))
	if err == nil {
		db.Close()
		t.Fatal("Open accepted data of another cluster id")
	}
	if !errors.Is(err, actors.ErrWrongCluster) || !strings.Contains(err.Error(), `cluster=raftkv`) {
		t.Fatalf("Open: %v, want ErrWrongCluster naming the directory's cluster", err)
	}
}

// An embedded cluster grown by serversNum is refused before any node
// starts (the new nodes would form a cluster of their own), naming what
// to do instead.
func TestEmbeddedClusterRefusesNewNodes(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	if err := db.Put(ctxT(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.ServersNum = 5
	if db, err := Open(WithConfig(cfg), WithLogger(testLogger())); !errors.Is(err, actors.ErrWrongCluster) || !strings.Contains(err.Error(), "member add") {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open with serversNum 3 -> 5: %v, want ErrWrongCluster naming the membership command", err)
	}
	for _, id := range []uint64{4, 5} {
		if has, err := actors.HasData(cfg.DataDir(id)); err != nil || has {
			t.Fatalf("node %d got data from the refused open (%v, %v)", id, has, err)
		}
	}
	cfg.ServersNum = 3
	db = openTest(t, cfg)
	defer db.Close()
	if v, err := db.Get(ctxT(t), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after the refused open: %q, %v", v, err)
	}
}

// A failed Open releases every data directory: opening again at once
// reports the same cause, not a lock held by the failed attempt.
func TestFailedOpenReleasesStorage(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Two members against data of three: nodes 1 and 2 open Badger, then
	// refuse the membership and stop.
	cfg.ServersNum = 2
	for i := 0; i < 5; i++ {
		db, err := Open(WithConfig(cfg), WithLogger(testLogger()))
		if err == nil {
			db.Close()
			t.Fatal("Open accepted data of another membership")
		}
		if strings.Contains(err.Error(), "lock") || !errors.Is(err, actors.ErrWrongCluster) {
			t.Fatalf("attempt %d: %v, want only ErrWrongCluster", i, err)
		}
	}
	cfg.ServersNum = 3
	db = openTest(t, cfg)
	db.Close()
}

// A value as large as the configuration allows is stored, replicated and
// read back. Badger refuses values larger than its value-log file, so the
// nodes' databases must be sized from maxValueSize.
func TestLargestConfiguredValue(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.MaxValueSize = 17 << 20 // just above the default value-log file size
	db := openTest(t, cfg)
	defer db.Close()
	ctx := ctxT(t)
	v := bytes.Repeat([]byte("0123456789abcdef"), cfg.MaxValueSize/16)
	if err := db.Put(ctx, "big", v); err != nil {
		t.Fatalf("Put of %d bytes: %v", len(v), err)
	}
	got, err := db.Get(ctx, "big")
	if err != nil || !bytes.Equal(got, v) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	if err := db.Put(ctx, "too-big", append(v, 'x')); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Put of %d bytes: %v, want ErrValueTooLarge", len(v)+1, err)
	}
}
