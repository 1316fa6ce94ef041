//go:build linux

package powerloss_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/config"
)

// The writers run in a child process (this test binary re-executed as
// TestPowerLossHelper), never in the process serving FUSE: a process that
// both serves a filesystem and writes to it can deadlock when the kernel
// reclaims its memory by writing back pages only it can write. It also
// means the child can be SIGKILLed with nothing closed cleanly.

const (
	helperModeEnv   = "RAFTKV_POWERLOSS_HELPER" // "files" or "raftkv"
	helperDirEnv    = "RAFTKV_POWERLOSS_DIR"
	helperSeedEnv   = "RAFTKV_POWERLOSS_SEED"
	helperWritesEnv = "RAFTKV_POWERLOSS_WRITES"
	helperValueEnv  = "RAFTKV_POWERLOSS_VALUE"
)

// workloadWorkers is how many goroutines of the child write at once (each
// its own keys, one operation at a time), so Readys carry several
// proposals, as under real load.
const workloadWorkers = 4

// workloadConfig is the cluster both the writing child and the checker
// open. Frequent compaction puts crash points inside it too.
func workloadConfig(dataDir string) config.Config {
	cfg := config.Default()
	cfg.ServersNum = 3
	cfg.PersistPath = dataDir
	cfg.SnapshotEntries = 200
	// Quick elections (100-200 ms, not the defaults' 500 ms to 1 s): every
	// crash state is started and checked, each start waits for one.
	cfg.TickInterval = 10 * time.Millisecond
	cfg.ElectionTicks = 10
	cfg.HeartbeatTicks = 1
	return cfg
}

// TestPowerLossHelper is the child process of the power-loss tests; run
// alone it skips.
func TestPowerLossHelper(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	switch os.Getenv(helperModeEnv) {
	case "":
		t.Skip("child process of the power-loss tests only")
	case "files":
		filesHelper(t, dir)
	case "raftkv":
		raftkvHelper(t, dir)
	default:
		t.Fatalf("unknown helper mode %q", os.Getenv(helperModeEnv))
	}
}

// emitter writes whole lines to stdout, one write each, so the parent sees
// a line entirely or not at all. Every line ends with " ." so a torn last
// line is recognisable.
type emitter struct{ mu sync.Mutex }

func (e *emitter) emit(format string, args ...any) {
	line := fmt.Sprintf(format, args...) + " .\n"
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := os.Stdout.WriteString(line); err != nil {
		os.Exit(3) // the parent is gone
	}
}

// raftkvHelper runs the embedded three-node database on dir and writes
// from workloadWorkers goroutines: puts of new keys, overwrites and
// removes of the worker's earlier keys. It announces each operation
// before it starts ("DO") and after it is acknowledged ("ACK"), then says
// "DONE" and waits to be killed.
func raftkvHelper(t *testing.T, dir string) {
	seed, _ := strconv.ParseUint(os.Getenv(helperSeedEnv), 10, 64)
	writes, _ := strconv.Atoi(os.Getenv(helperWritesEnv))
	valueSize, _ := strconv.Atoi(os.Getenv(helperValueEnv))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := raftkv.Open(raftkv.WithConfig(workloadConfig(dir)), raftkv.WithLogger(logger))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	var out emitter
	out.emit("OPEN")
	go watchMemtables(workloadConfig(dir), &out)
	// The parent bounds the run (and the child dies with it: Pdeathsig);
	// this only stops a child whose parent is wedged.
	deadline := time.Now().Add(workloadTimeout(writes) + time.Minute)
	// do retries an operation until it succeeds, so a worker never moves
	// on with a write in doubt; a retried Put writes the same value, and
	// a retried Remove may find its first attempt done (ErrNotFound).
	do := func(op func(ctx context.Context) error) {
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := op(ctx)
			cancel()
			if err == nil || errors.Is(err, raftkv.ErrNotFound) {
				return
			}
			fmt.Fprintf(os.Stderr, "retrying: %v\n", err)
		}
		os.Exit(4)
	}
	var wg sync.WaitGroup
	for w := range workloadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			var live []string // this worker's keys that exist
			for i := w; i < writes; i += workloadWorkers {
				u := rng.IntN(100)
				switch {
				case len(live) > 0 && u < 15:
					k := live[rng.IntN(len(live))]
					id, size := fmt.Sprintf("w%d.%d", w, i), valueSize/2+rng.IntN(valueSize+1)
					out.emit("DO PUT %s %s %d", k, id, size)
					do(func(ctx context.Context) error { return db.Put(ctx, k, valueBytes(id, size)) })
					out.emit("ACK PUT %s", k)
				case len(live) > 0 && u < 25:
					j := rng.IntN(len(live))
					k := live[j]
					live = append(live[:j], live[j+1:]...)
					out.emit("DO DEL %s", k)
					do(func(ctx context.Context) error { return db.Remove(ctx, k) })
					out.emit("ACK DEL %s", k)
				default:
					k := fmt.Sprintf("w%d/%05d", w, i)
					id, size := fmt.Sprintf("w%d.%d", w, i), valueSize/2+rng.IntN(valueSize+1)
					live = append(live, k)
					out.emit("DO PUT %s %s %d", k, id, size)
					do(func(ctx context.Context) error { return db.Put(ctx, k, valueBytes(id, size)) })
					out.emit("ACK PUT %s", k)
				}
			}
		}()
	}
	wg.Wait()
	out.emit("DONE")
	time.Sleep(time.Until(deadline)) // the parent kills us; nothing is closed
	os.Exit(5)
}

// watchMemtables reports, as "MEM <node> <count>" lines, how many
// memtable write-ahead logs (Badger's *.mem files) the busier database of
// each node has whenever that changes. Two or more mean a full memtable is waiting to be flushed
// to a table: the parent aims some crash points inside those windows. This
// only steers the choice of crash points; no check depends on it.
func watchMemtables(cfg config.Config, out *emitter) {
	counts := map[uint64]int{}
	for {
		for id := uint64(1); id <= uint64(cfg.ServersNum); id++ {
			// A node has two databases (log and state): count each one's
			// files and report the larger count.
			perDB := map[string]int{}
			filepath.WalkDir(cfg.DataDir(id), func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(path, ".mem") {
					perDB[filepath.Dir(path)]++
				}
				return nil
			})
			n := 0
			for _, c := range perDB {
				n = max(n, c)
			}
			if n != counts[id] {
				counts[id] = n
				out.emit("MEM %d %d", id, n)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// valueBytes is the value a put with this id writes: the id, a '|', then
// bytes that depend on the id, so a value read back names the put that
// wrote it and any damage to it shows.
func valueBytes(id string, size int) []byte {
	b := make([]byte, 0, size+8)
	b = append(b, id...)
	b = append(b, '|')
	h := fnv.New64a()
	h.Write([]byte(id))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0xda7a))
	for len(b) < size {
		b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
	}
	return b[:max(size, len(id)+1)]
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its stdout, line by line; closed at EOF
}

// startChild runs TestPowerLossHelper in mode with env added, its stderr
// going to logPath. The child dies with this process (Pdeathsig) and is
// killed when t ends.
func startChild(t *testing.T, mode, logPath string, env ...string) *child {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// No test timeout in the child: the parent bounds it and it dies with
	// the parent (Pdeathsig).
	cmd := exec.Command(os.Args[0], "-test.run=^TestPowerLossHelper$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(append(os.Environ(), helperModeEnv+"="+mode), env...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	var once sync.Once
	reap := func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
		})
	}
	t.Cleanup(reap)
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	return c
}

// kill SIGKILLs the child and waits for it.
func (c *child) kill() {
	c.cmd.Process.Kill()
	for range c.lines {
	}
	c.cmd.Wait()
}

// keyOp is one operation on a key, in the order its (single) writer issued
// them.
type keyOp struct {
	remove bool
	id     string // value id of a put
	size   int
	ack    int // recorder position when the ack was read; -1: not acknowledged
}

// history is what the parent learned from the child's lines.
type history struct {
	keys map[string][]*keyOp
	acks []int // the position of every acknowledgement, in order
	done bool
	// opened is the position when the child reported the cluster open
	// (0 until then): before it, the nodes were creating their storage.
	opened int
	// flushWindows are the stretches of the operation log during which a
	// node had a full memtable waiting to be flushed; memOpen[node] is
	// where the one still open began.
	flushWindows []window
	memOpen      map[string]int
}

// window is a stretch [from, to] of the operation log.
type window struct{ from, to int }

func newHistory() *history {
	return &history{keys: map[string][]*keyOp{}, memOpen: map[string]int{}}
}

// add records one line of the child, read when the operation log had pos
// operations. The position of an ack is therefore at or after the true
// one: a crash state at or after it must hold the write, and no crash
// state where the write might legitimately be missing is checked for it.
func (h *history) add(line string, pos int) error {
	f := strings.Fields(line)
	if len(f) < 2 || f[len(f)-1] != "." {
		return nil // torn by the kill
	}
	switch strings.Join(f[:len(f)-1], " ") {
	case "OPEN":
		h.opened = pos
		return nil
	case "DONE":
		h.done = true
		return nil
	}
	if f[0] == "MEM" && len(f) == 4 {
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("bad line %q", line)
		}
		start, open := h.memOpen[f[1]]
		switch {
		case n >= 2 && !open:
			h.memOpen[f[1]] = pos
		case n < 2 && open:
			delete(h.memOpen, f[1])
			h.flushWindows = append(h.flushWindows, window{start, pos})
		}
		return nil
	}
	if len(f) < 4 {
		return fmt.Errorf("bad line %q", line)
	}
	key := f[2]
	ops := h.keys[key]
	switch f[0] + " " + f[1] {
	case "DO PUT":
		size, err := strconv.Atoi(f[4])
		if len(f) != 6 || err != nil {
			return fmt.Errorf("bad line %q", line)
		}
		h.keys[key] = append(ops, &keyOp{id: f[3], size: size, ack: -1})
	case "DO DEL":
		h.keys[key] = append(ops, &keyOp{remove: true, ack: -1})
	case "ACK PUT", "ACK DEL":
		if len(ops) == 0 || ops[len(ops)-1].ack >= 0 || ops[len(ops)-1].remove != (f[1] == "DEL") {
			return fmt.Errorf("ack %q without its operation", line)
		}
		ops[len(ops)-1].ack = pos
		h.acks = append(h.acks, pos)
	default:
		return fmt.Errorf("bad line %q", line)
	}
	return nil
}

// check reports whether value (nil: absent) is a state key may be in after
// a crash at pos: the result of its last operation acknowledged at or
// before pos, or of any later one (those were attempted and may have taken
// effect), or absence if nothing was acknowledged by then. "" means fine.
func (h *history) check(key string, value []byte, pos int) string {
	ops := h.keys[key]
	if ops == nil {
		return fmt.Sprintf("%s is present but was never written", key)
	}
	from := -1
	for i, o := range ops {
		if o.ack >= 0 && o.ack <= pos {
			from = i
		}
	}
	allowed := ops[max(from, 0):]
	if value == nil {
		if from < 0 {
			return ""
		}
		for _, o := range allowed {
			if o.remove {
				return ""
			}
		}
		return fmt.Sprintf("%s is missing, but its put %s was acknowledged at op %d", key, ops[from].id, ops[from].ack)
	}
	id, _, ok := bytes.Cut(value, []byte("|"))
	for _, o := range allowed {
		if o.remove || o.id != string(id) {
			continue
		}
		if !ok || !bytes.Equal(value, valueBytes(o.id, o.size)) {
			return fmt.Sprintf("%s holds a damaged value of put %s (%d bytes, want %d)", key, o.id, len(value), o.size)
		}
		return ""
	}
	what := "put " + string(id)
	if !ok {
		what = fmt.Sprintf("an unrecognisable %d-byte value", len(value))
	}
	if from >= 0 {
		last := "put " + ops[from].id
		if ops[from].remove {
			last = "remove"
		}
		return fmt.Sprintf("%s holds %s, but its %s was acknowledged at op %d", key, what, last, ops[from].ack)
	}
	return fmt.Sprintf("%s holds %s, which no put of it wrote", key, what)
}

// workloadTimeout bounds the recording of a workload of writes
// operations: generous (measured: 3000 writes in 72 s under -race), since
// a slow machine is not what the test is about.
func workloadTimeout(writes int) time.Duration {
	return 5*time.Minute + time.Duration(writes)*100*time.Millisecond
}

// runWorkload runs the raftkv child on dataDir until it has made writes
// operations, then SIGKILLs it. pos reads the operation log's length.
func runWorkload(t *testing.T, work, dataDir string, seed uint64, writes, valueSize int, pos func() int) *history {
	t.Helper()
	c := startChild(t, "raftkv", filepath.Join(work, "child.log"),
		helperDirEnv+"="+dataDir, helperSeedEnv+"="+strconv.FormatUint(seed, 10),
		helperWritesEnv+"="+strconv.Itoa(writes), helperValueEnv+"="+strconv.Itoa(valueSize))
	h := newHistory()
	limit := workloadTimeout(writes)
	timeout := time.After(limit)
	for !h.done {
		select {
		case line, ok := <-c.lines:
			if !ok {
				err := c.cmd.Wait()
				t.Fatalf("the writing child exited (%v) after %d acks; its log is %s/child.log", err, len(h.acks), work)
			}
			if err := h.add(line, pos()); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			c.kill()
			t.Fatalf("the writing child made only %d of %d writes in %v", len(h.acks), writes, limit)
		}
	}
	c.kill()
	end := pos()
	for node, start := range h.memOpen {
		h.flushWindows = append(h.flushWindows, window{start, end})
		delete(h.memOpen, node)
	}
	return h
}
