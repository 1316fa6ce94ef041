package raftkv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftkv/raftkv/config"
)

// Durability across SIGKILL, with real processes. The test binary
// re-executes itself as a child (TestCrashHelper) that opens the embedded
// database (all three nodes, no network) and writes from several goroutines,
// printing every acknowledged write. The parent kills it with SIGKILL in
// the middle of the load, opens the same data itself, and checks that every
// acknowledged write is there. Then it does it again on the same data.
//
// A kill of the whole process loses no page cache, so this tests what a
// process crash can tear (Badger's recovery, half-applied batches, a kill
// between log and state machine writes, during a compaction), not power
// loss.

var (
	crashCycles = flag.Int("crash.cycles", 4, "TestCrashDurability: kill cycles")
	crashSeed   = flag.Uint64("crash.seed", 0, "TestCrashDurability: seed of the kill points (0: random)")
)

const (
	crashDirEnv   = "RAFTKV_CRASH_HELPER_DIR"
	crashCycleEnv = "RAFTKV_CRASH_HELPER_CYCLE"
	crashSeedEnv  = "RAFTKV_CRASH_HELPER_SEED"
)

// crashConfig is the configuration parent and child both use. Frequent
// compaction puts kills inside it too.
func crashConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.ServersNum = 3
	cfg.PersistPath = dir
	cfg.SnapshotEntries = 100
	testTiming(&cfg)
	return cfg
}

// crashKey is what the parent knows of one key.
type crashKey struct {
	// Unique keys: value is what the acknowledged Put wrote; delAcked and
	// delStarted say whether a Remove returned or was in flight.
	value                string
	delStarted, delAcked bool
	// Hot keys (hot set): the stored counter must lie in [lo, hi].
	hot    bool
	lo, hi int
}

func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = rand.Uint64()%1_000_000_000 + 1
	}
	t.Logf("seed %d; replay: go test -race -run '^TestCrashDurability$' -crash.seed=%d -crash.cycles=%d .", seed, seed, *crashCycles)
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	dir := t.TempDir()
	keys := map[string]*crashKey{}
	total := 0
	for cycle := 1; cycle <= *crashCycles; cycle++ {
		// Mostly kill well into the load, sometimes right after start.
		target := 150 + rng.IntN(350)
		if rng.IntN(4) == 0 {
			target = rng.IntN(20)
		}
		acks := runCrashChild(t, dir, cycle, target, rng.Uint64(), keys)
		total += acks
		verifyAfterCrash(t, dir, cycle, keys)
	}
	t.Logf("%d cycles, %d acknowledged writes, %d keys verified after the last kill", *crashCycles, total, len(keys))
}

// runCrashChild starts a child writing on dir, reads its acknowledgements
// into keys, and SIGKILLs it once it has acknowledged target writes (plus
// whatever was already on the way). It returns the number of acks.
func runCrashChild(t *testing.T, dir string, cycle, target int, seed uint64, keys map[string]*crashKey) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashCycleEnv+"="+strconv.Itoa(cycle), crashSeedEnv+"="+strconv.FormatUint(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	started := time.Now()
	acks, killed := 0, false
	var killedAt time.Duration
	kill := func() {
		if !killed {
			killed = true
			killedAt = time.Since(started)
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("kill: %v", err)
			}
		}
	}
	timeout := time.After(60 * time.Second)
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			if applyCrashLine(t, line, keys) {
				acks++
			}
			if acks >= target {
				kill()
			}
		case <-timeout:
			kill()
			t.Errorf("cycle %d: child acknowledged only %d writes in 60s", cycle, acks)
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("cycle %d: child exited by itself (%v) after %d acks:\n%s", cycle, werr, acks, stderr.String())
	}
	t.Logf("cycle %d: killed the child %v after start, %d writes acknowledged", cycle, killedAt.Round(time.Millisecond), acks)
	return acks
}

// applyCrashLine records one line of the child; it reports whether the line
// acknowledged a write.
func applyCrashLine(t *testing.T, line string, keys map[string]*crashKey) bool {
	t.Helper()
	f := strings.Fields(line)
	// Every line ends with "." so a torn last line is ignored.
	if len(f) < 3 || f[len(f)-1] != "." {
		return false
	}
	switch f[0] + " " + f[1] {
	case "ACK PUT":
		keys[f[2]] = &crashKey{value: f[3]}
		return true
	case "DO DEL":
		keys[f[2]].delStarted = true
	case "ACK DEL":
		keys[f[2]].delAcked = true
		return true
	case "ACK HOT":
		n, _ := strconv.Atoi(f[3])
		k := keys[f[2]]
		if k == nil {
			k = &crashKey{hot: true}
			keys[f[2]] = k
		}
		// The next increment may have been in flight at the kill.
		k.lo, k.hi = n, n+1
		return true
	}
	return false
}

// verifyAfterCrash opens the data the child left and checks every key. What
// was in doubt (a write in flight at the kill) is decided by then, so the
// state read becomes the expectation for later cycles.
func verifyAfterCrash(t *testing.T, dir string, cycle int, keys map[string]*crashKey) {
	t.Helper()
	began := time.Now()
	db, err := Open(WithConfig(crashConfig(dir)), WithLogger(testLogger()))
	if err != nil {
		t.Fatalf("cycle %d: open after kill: %v", cycle, err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}()
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan string)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				v, err := db.Get(ctx, name)
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("cycle %d: Get %s: %v", cycle, name, err)
					continue
				}
				present := err == nil
				mu.Lock()
				checkCrashKey(t, cycle, name, keys[name], present, string(v))
				mu.Unlock()
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("cycle %d: %d keys verified in %v", cycle, len(names), time.Since(began).Round(time.Millisecond))
}

func checkCrashKey(t *testing.T, cycle int, name string, k *crashKey, present bool, v string) {
	t.Helper()
	switch {
	case k.hot:
		n, err := strconv.Atoi(v)
		if !present || err != nil || n < k.lo || n > k.hi {
			t.Errorf("cycle %d: counter %s = %q (present %v), want %d..%d: an acknowledged write was lost", cycle, name, v, present, k.lo, k.hi)
			return
		}
		k.lo, k.hi = n, n
	case k.delAcked:
		if present {
			t.Errorf("cycle %d: %s = %q, but its Remove was acknowledged", cycle, name, v)
		}
	case present:
		if v != k.value {
			t.Errorf("cycle %d: %s = %q, want %q", cycle, name, v, k.value)
		}
	case k.delStarted:
		k.delAcked = true // the Remove in flight took effect
	default:
		t.Errorf("cycle %d: acknowledged key %s is missing", cycle, name)
	}
}

// TestCrashHelper is the child process of TestCrashDurability: it writes
// until killed. Each worker writes its own keys, removes some of them, and
// increments a counter key; every acknowledgement is one line on stdout.
// Meanwhile nodes are stopped and restarted in turn, so a restarted node is
// often being sent a snapshot (the log is compacted every 100 entries) when
// the kill comes.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrashDurability only")
	}
	cycle := os.Getenv(crashCycleEnv)
	db, err := Open(WithConfig(crashConfig(dir)), WithLogger(testLogger()))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	var mu sync.Mutex
	emit := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...) + " .\n"
		mu.Lock()
		defer mu.Unlock()
		// One write per line: a line is whole or absent.
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(3) // the parent is gone
		}
	}
	deadline := time.Now().Add(90 * time.Second) // never outlive a lost parent for long
	// do retries an operation until it succeeds: the child never moves on
	// with a write in doubt, so at most one per worker is in flight.
	do := func(op func(ctx context.Context) error) {
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := op(ctx)
			cancel()
			if err == nil || errors.Is(err, ErrNotFound) {
				return
			}
			fmt.Fprintf(os.Stderr, "retrying: %v\n", err)
		}
		os.Exit(4)
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	go func() {
		rng := rand.New(rand.NewPCG(seed, 0xc4))
		pause := func(lo, hi int) { time.Sleep(time.Duration(lo+rng.IntN(hi-lo)) * time.Millisecond) }
		for {
			pause(50, 200)
			id := uint64(1 + rng.IntN(3))
			if err := db.stopNode(id); err != nil {
				fmt.Fprintf(os.Stderr, "stop node %d: %v\n", id, err)
			}
			pause(100, 400)
			if err := db.startNode(id); err != nil {
				fmt.Fprintf(os.Stderr, "restart node %d: %v\n", id, err)
				os.Exit(5)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hot := fmt.Sprintf("hot/c%s/w%d", cycle, w)
			name := func(i int) string { return fmt.Sprintf("u/c%s/w%d/%05d", cycle, w, i) }
			for i := 0; time.Now().Before(deadline); i++ {
				k, v := name(i), fmt.Sprintf("v%d-%d", w, i)
				do(func(ctx context.Context) error { return db.Put(ctx, k, []byte(v)) })
				emit("ACK PUT %s %s", k, v)
				if i%5 == 4 {
					d := name(i - 2)
					emit("DO DEL %s", d)
					do(func(ctx context.Context) error { return db.Remove(ctx, d) })
					emit("ACK DEL %s", d)
				}
				if i%3 == 0 {
					n := i/3 + 1
					do(func(ctx context.Context) error { return db.Put(ctx, hot, []byte(strconv.Itoa(n))) })
					emit("ACK HOT %s %d", hot, n)
				}
			}
		}()
	}
	wg.Wait()
}
