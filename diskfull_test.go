//go:build linux

package raftkv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv/config"
	"github.com/raftkv/raftkv/persist"
)

// errorLog is a slog handler that keeps the error records, for tests that
// check what a node says when it stops.
type errorLog struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newErrorLog() errorLog { return errorLog{mu: &sync.Mutex{}, msgs: new([]string)} }

func (h errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h errorLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	*h.msgs = append(*h.msgs, b.String())
	h.mu.Unlock()
	return nil
}
func (h errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h errorLog) WithGroup(string) slog.Handler      { return h }

func (h errorLog) find(substr ...string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
next:
	for _, m := range *h.msgs {
		for _, s := range substr {
			if !strings.Contains(m, s) {
				continue next
			}
		}
		return m, true
	}
	return "", false
}

// mountSmallFS mounts a tmpfs of size bytes at dir for the test, or skips.
func mountSmallFS(t *testing.T, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fillTo allocates a ballast file in dir until only free bytes are left on
// its filesystem, and returns the file's path.
func fillTo(t *testing.T, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	if avail <= free {
		t.Fatalf("only %d bytes free in %s before the ballast", avail, dir)
	}
	path := dir + "/ballast"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, avail-free); err != nil {
		t.Fatalf("fallocate ballast: %v", err)
	}
	return path
}

// A node whose filesystem runs low stops cleanly, naming the path and the
// free space; the process and the other nodes carry on; once space is freed
// the node starts again and catches up. Without the reserve, Badger would
// write into its memory-mapped files until the filesystem is full and the
// kernel kills the process with SIGBUS.
func TestDiskFullStopsOneNodeAndRecovers(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.DiskReserve = 24 << 20
	dir3 := cfg.DataDir(3)
	mountSmallFS(t, dir3, 96<<20)
	logs := newErrorLog()
	db := openTest(t, cfg, WithLogger(slog.New(logs)))
	defer db.Close()
	ctx := ctxT(t)
	put := func(i int) {
		t.Helper()
		if err := db.Put(ctx, key(i), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	for i := 0; i < 20; i++ {
		put(i)
	}
	waitApplied(t, db)

	ballast := fillTo(t, dir3, cfg.DiskReserve-(1<<20))
	i := 20
	for deadline := time.Now().Add(15 * time.Second); ; i++ {
		put(i) // the other two nodes keep the cluster writable
		if st := db.statusNoFail(3); !st.Reachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node 3 kept running below its disk reserve")
		}
	}
	msg, ok := logs.find("node stopping", dir3, "free", persist.ErrDiskFull.Error())
	if !ok {
		t.Fatalf("node 3 stopped without an error naming %s and its free space; errors logged: %q", dir3, *logs.msgs)
	}
	t.Logf("node 3 stopped: %s", msg)
	for j := 0; j < 10; j++ {
		put(i + j)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, db) // node 3 is back and has applied everything
	for j := 0; j < i+10; j++ {
		v, err := db.Get(ctx, key(j))
		if err != nil || string(v) != fmt.Sprint("v", j) {
			t.Fatalf("Get %s = %q, %v", key(j), v, err)
		}
	}
}

// statusNoFail returns node id's status; Reachable is false when it is down.
func (db *DB) statusNoFail(id uint64) NodeStatus {
	st, err := db.gw.status(context.Background(), []uint64{id})
	if err != nil || len(st) == 0 {
		return NodeStatus{ID: id}
	}
	return st[0]
}

const (
	diskFullDirEnv     = "RAFTKV_DISKFULL_HELPER_DIR"
	diskFullReserveEnv = "RAFTKV_DISKFULL_HELPER_RESERVE"
)

// The hazard the reserve exists for, shown with a real process: a node's
// filesystem with almost no space left, and 64 KiB writes. Without a
// reserve, Badger writes into its memory-mapped files until the kernel
// kills the whole process with SIGBUS (all three nodes, and the
// application). With it, the node stops and the process lives on. The
// control run without a reserve proves the setup reproduces the hazard.
func TestDiskFullDoesNotKillTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	run := func(reserve int64) (*os.ProcessState, string) {
		data := t.TempDir()
		dir3 := data + "/node3"
		mountSmallFS(t, dir3, 64<<20)
		cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullHelper$", "-test.count=1", "-test.timeout=2m")
		cmd.Env = append(os.Environ(), diskFullDirEnv+"="+data, diskFullReserveEnv+"="+fmt.Sprint(reserve))
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState, string(out)
	}
	// The Go runtime turns the SIGBUS into a fatal error: the process exits
	// with status 2 after printing "signal SIGBUS".
	st, out := run(0)
	if st.Success() || !strings.Contains(out, "signal SIGBUS") {
		t.Fatalf("control run without a reserve: %v, want a crash by SIGBUS; the setup does not reproduce the hazard. Output:\n%.2000s", st, out)
	}
	st, out = run(2 << 20)
	if !st.Success() {
		t.Fatalf("with a reserve the process died or failed: %v. Output:\n%.2000s", st, out)
	}
	if !strings.Contains(out, "node 3 stopped") {
		t.Fatalf("the helper did not see node 3 stop. Output:\n%s", out)
	}
}

// TestDiskFullHelper is the child of TestDiskFullDoesNotKillTheProcess.
func TestDiskFullHelper(t *testing.T) {
	data := os.Getenv(diskFullDirEnv)
	if data == "" {
		t.Skip("helper process of TestDiskFullDoesNotKillTheProcess")
	}
	cfg := config.Default()
	cfg.ServersNum = 3
	cfg.PersistPath = data
	testTiming(&cfg)
	fmt.Sscan(os.Getenv(diskFullReserveEnv), &cfg.DiskReserve)
	db, err := Open(WithConfig(cfg), WithLogger(testLogger()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	fillTo(t, cfg.DataDir(3), 4<<20)
	value := make([]byte, 64<<10)
	for i := 0; i < 400; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := db.Put(ctx, key(i), value)
		cancel()
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if !db.statusNoFail(3).Reachable {
			fmt.Println("node 3 stopped after", i, "writes")
			return
		}
	}
	t.Fatal("node 3 never stopped")
}
