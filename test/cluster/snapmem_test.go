//go:build linux

package cluster_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var flagSnapMem = flag.Int("cluster.snapmem", 0,
	"MiB of state for TestSnapshotCatchUpMemory, which measures the peak RSS of the leader and of a follower catching up by snapshot (0: skip)")

// TestSnapshotCatchUpMemory measures what catching up a follower by
// snapshot costs in memory, on real `raftkv serve` processes: a follower is
// stopped, the cluster takes -cluster.snapmem MiB of state and compacts its
// log past the follower, and the follower is started again. It reports the
// peak resident set (VmHWM) of the follower over its run and of the leader
// and the other follower during the catch-up, and fails if the follower's
// peak is over half the state: a follower that held the image in memory
// would need the whole state at least.
//
//	go test ./test/cluster -run TestSnapshotCatchUpMemory -cluster.snapmem=1024 -v
func TestSnapshotCatchUpMemory(t *testing.T) {
	if *flagSnapMem <= 0 {
		t.Skip("set -cluster.snapmem=MiB to measure a snapshot catch-up of that much state")
	}
	state := int64(*flagSnapMem) << 20
	c := newCluster(t, keptDir(t), clusterOpts{nodes: 3, snapshotEntries: 64})
	c.startAll()
	leader := c.waitLeader()
	follower := leader%3 + 1
	other := 6 - leader - follower
	if err := c.node(follower).terminate(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cl, err := c.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const valueSize, writers = 256 << 10, 4
	keys := int(state / valueSize)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			value := make([]byte, valueSize)
			for k := w; k < keys; k += writers {
				for i := range value {
					value[i] = byte(rng.Uint32())
				}
				if err := cl.Put(ctx, fmt.Sprintf("big/%06d", k), value); err != nil {
					errs <- fmt.Errorf("put %d: %w", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.logf("wrote %d values of %d bytes (%d MiB) in %v", keys, valueSize, state>>20, time.Since(start).Round(time.Millisecond))

	// From here on, the running nodes' peaks are those of the catch-up.
	// (Leadership may have moved between them under the write load.)
	for _, id := range []uint64{leader, other} {
		if err := resetPeakRSS(c.node(id)); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	c.startNodes(follower)
	// Anonymous memory (the Go heap and runtime, not the pages of Badger's
	// memory-mapped files that the kernel may drop) has no recorded peak:
	// sample it.
	sampled := make(chan map[uint64]int64)
	stop := make(chan struct{})
	go func() {
		peak := map[uint64]int64{}
		for {
			for _, id := range []uint64{leader, follower, other} {
				if v, err := procStatus(c.node(id), "RssAnon:"); err == nil {
					peak[id] = max(peak[id], v)
				}
			}
			select {
			case <-stop:
				sampled <- peak
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	// A large state takes longer than the harness's usual wait.
	var lead uint64
	for tries := 1; ; tries++ {
		if lead, err = c.converge(); err == nil {
			break
		}
		if tries == 5 {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	close(stop)
	anon := <-sampled
	if lead == other {
		leader, other = other, leader
	}
	hwm := map[uint64]int64{}
	for _, id := range []uint64{leader, follower, other} {
		if hwm[id], err = procStatus(c.node(id), "VmHWM:"); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(readTail(c.node(leader).logPath, 1<<20)+readTail(c.node(other).logPath, 1<<20), "sending snapshot") {
		t.Fatalf("nodes %d and %d sent no snapshot; the follower caught up another way", leader, other)
	}
	mib := func(m map[uint64]int64, id uint64) int64 { return m[id] >> 20 }
	t.Logf("state %d MiB: follower %d caught up in %v", state>>20, follower, took.Round(time.Millisecond))
	t.Logf("peak anonymous RSS (sampled every 10 ms): follower %d MiB, leader %d MiB, other follower %d MiB",
		mib(anon, follower), mib(anon, leader), mib(anon, other))
	t.Logf("peak RSS with mapped files (VmHWM): follower %d MiB (its whole run), leader %d MiB and other follower %d MiB (during the catch-up)",
		mib(hwm, follower), mib(hwm, leader), mib(hwm, other))
	// The other follower took the same state through the log and did no
	// snapshot work: its peak is the baseline of this cluster's Badger and
	// Go runtime (Badger's compactions dominate it).
	for _, id := range []uint64{follower, leader} {
		if limit := anon[other] + state/2; anon[id] > limit {
			t.Errorf("node %d's anonymous memory peaked at %d MiB, the other follower's at %d MiB, with %d MiB of state; want under %d MiB",
				id, anon[id]>>20, anon[other]>>20, state>>20, limit>>20)
		}
	}
}

// resetPeakRSS resets the peak resident set (VmHWM) of n's process.
func resetPeakRSS(n *node) error {
	p := n.current()
	if p == nil {
		return fmt.Errorf("node %d is not running", n.id)
	}
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
}

// procStatus returns a size field of /proc/<pid>/status of n's process
// ("VmHWM:", "RssAnon:") in bytes.
func procStatus(n *node, field string) (int64, error) {
	p := n.current()
	if p == nil {
		return 0, fmt.Errorf("node %d is not running", n.id)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
}
