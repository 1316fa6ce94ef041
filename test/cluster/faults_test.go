//go:build linux

package cluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/kvmodel"
)

// The fault scenarios. Each starts a cluster of real `raftkv serve`
// processes, runs the workload (workload_test.go) through raftkv.Dial
// clients, injects its faults, heals everything, and then checks:
//
//  1. the recorded history, plus a final read of every key, is linearizable
//     (porcupine, per key; writes with an unknown outcome may have happened
//     at any time after their call, or not at all);
//  2. every acknowledged durability Put reads back with its value, and is
//     on every node's disk; no node stores a dur/ key nobody wrote;
//  3. after a converged clean stop (SIGTERM, followers first), every node
//     applied the same index and holds identical data, the stored lin/ keys
//     are what the final reads returned, and the committed log entries the
//     nodes share are identical (log matching: no node applied a different
//     command at the same index);
//  4. no process exited without being told to, and the cluster made
//     progress again after each fault.
//
// Default run (no flags), ~25 s in all:
//   - TestClusterFaults, 3 nodes: SIGKILL of the leader and restart, SIGSTOP
//     of the leader beyond an election timeout and SIGCONT (a paused leader
//     must not serve stale reads when it wakes: the linearizability check
//     covers it), SIGKILL of a follower and restart, SIGKILL of every node
//     and restart;
//   - TestClusterPartitions, 3 nodes: isolated leader, a paused leader cut
//     off while it sleeps that wakes believing it leads (stale-read bait),
//     one-way cut of the leader's messages, a broken leader-follower link.
//     Partitions need root and the iptables command (netfault_test.go);
//     without them the test skips, saying why.
//
// Every workload includes one "pinned" reader per node (a client of that
// node alone with a short timeout), so a node that wakes or is cut off gets
// fresh reads invoked after the rest of the cluster moved on.
//
// -cluster.full adds TestClusterFull (5 nodes with small snapshots: every
// fault in sequence, partitions included, then a seeded random schedule; and
// a random schedule on 3 nodes) and a 5-node TestClusterPartitions (leader
// in a minority, partition while a node is down). -short skips every
// scenario.

// run is one scenario in progress.
type run struct {
	t   *testing.T
	c   *cluster
	w   *workload
	nf  *netFaults // nil when partitions are unavailable
	rng *rand.Rand
}

type scenario struct {
	cluster clusterOpts
	work    workloadOpts
	warmup  time.Duration
	steps   func(r *run)
}

func runScenario(t *testing.T, sc scenario) {
	dir := keptDir(t)
	_, rng := testSeed(t)
	start := time.Now()
	why := partitionsUnavailable()
	sc.cluster.ownGroups = why == ""
	c := newCluster(t, dir, sc.cluster)
	r := &run{t: t, c: c, rng: rng}
	if why == "" {
		r.nf = newNetFaults(t, c)
	} else {
		t.Logf("partition steps will be skipped: %s", why)
	}
	c.startAll()
	c.logf("cluster of %d started in %s; leader is node %d", len(c.nodes), dir, c.waitLeader())

	r.w = startWorkload(t, c, sc.work, rng)
	time.Sleep(sc.warmup)
	r.expectProgress("warm-up")
	sc.steps(r)
	r.w.stop()
	c.logf("workload stopped: %s", r.w.summary())

	// Heal everything, then check.
	if r.nf != nil {
		if err := r.nf.heal(); err != nil {
			t.Error(err)
		}
	}
	c.healProcesses()
	if _, err := c.converge(); err != nil {
		t.Error(err)
		c.checkNoCrashes()
		// Still check what the clients saw, for the diagnosis.
		r.w.checkLinearizable(t, dir)
		return
	}
	checkCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := c.client(checkCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r.w.finalReads(t, cl)
	r.w.checkDurableReads(t, cl)
	r.w.checkLinearizable(t, dir)

	c.stopAllCleanly(c.waitConverged())
	states := c.inspectNodes()
	compareStates(t, states)
	for _, s := range states {
		r.w.checkDurableState(t, s.id, s.Data)
		r.w.checkFinalState(t, s.id, s.Data)
	}
	c.checkNoCrashes()
	c.logf("scenario done in %v", time.Since(start).Round(time.Millisecond))
}

// expectProgress waits until the workload completes a few more operations,
// failing the test if it does not within a bound: the cluster must be
// available again after each healed fault.
func (r *run) expectProgress(after string) {
	r.t.Helper()
	const need, within = 10, 15 * time.Second
	from := r.w.counts[kvmodel.OK].Load() + r.w.counts[kvmodel.NotFound].Load()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r.w.counts[kvmodel.OK].Load()+r.w.counts[kvmodel.NotFound].Load() >= from+need {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Errorf("no progress within %v after %s: %s", within, after, r.w.summary())
}

// leader returns the current leader (waiting for one).
func (r *run) leader() uint64 { return r.c.waitLeader() }

// followers returns the running nodes other than lead, in a seeded random
// order.
func (r *run) followers(lead uint64) []uint64 {
	var f []uint64
	for _, n := range r.c.nodes {
		if n.id != lead && n.running() && !n.isPaused() {
			f = append(f, n.id)
		}
	}
	r.rng.Shuffle(len(f), func(i, j int) { f[i], f[j] = f[j], f[i] })
	return f
}

// jitter returns d scaled by a seeded factor in [0.75, 1.25].
func (r *run) jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + r.rng.Float64()/2))
}

func (r *run) kill(ids ...uint64) {
	r.t.Helper()
	r.c.logf("SIGKILL %v", ids)
	for _, id := range ids {
		if !r.c.node(id).kill() {
			r.t.Fatalf("node %d was not running", id)
		}
	}
}

func (r *run) restart(ids ...uint64) {
	r.t.Helper()
	r.c.logf("restart %v", ids)
	r.c.startNodes(ids...)
}

// killLeader kills the leader with SIGKILL, checks that the others elect a
// new one, and restarts it after down.
func (r *run) killLeader(down time.Duration) {
	r.t.Helper()
	lead := r.leader()
	r.kill(lead)
	if len(r.c.nodes) > 2 {
		r.c.logf("new leader: node %d", r.c.waitLeader(lead))
	}
	time.Sleep(r.jitter(down))
	r.restart(lead)
	r.expectProgress(fmt.Sprintf("restarting the killed leader %d", lead))
}

// killFollowers kills n followers with SIGKILL and restarts them after down.
func (r *run) killFollowers(n int, down time.Duration) {
	r.t.Helper()
	victims := r.followers(r.leader())[:n]
	r.kill(victims...)
	time.Sleep(r.jitter(down))
	r.restart(victims...)
	r.expectProgress(fmt.Sprintf("restarting the killed followers %v", victims))
}

// killAll kills every node at once and starts them all again.
func (r *run) killAll(down time.Duration) {
	r.t.Helper()
	ids := r.c.ids()
	r.c.logf("SIGKILL every node %v", ids)
	done := make(chan struct{}, len(ids))
	for _, id := range ids {
		go func() { r.c.node(id).kill(); done <- struct{}{} }()
	}
	for range ids {
		<-done
	}
	time.Sleep(r.jitter(down))
	r.restart(ids...)
	r.c.logf("leader after full restart: node %d", r.c.waitLeader())
	r.expectProgress("restarting every node")
}

// pause stops id with SIGSTOP for d, then SIGCONT. When id leads, the
// others must elect a new leader meanwhile (d is well beyond the election
// timeout, 100-200 ms); when it wakes it still believes it leads until it
// hears the new term, which is when a stale read would slip out.
func (r *run) pause(id uint64, d time.Duration) {
	r.t.Helper()
	wasLeader := id == r.leader()
	r.c.logf("SIGSTOP node %d (leader: %v) for ~%v", id, wasLeader, d)
	if err := r.c.node(id).pause(); err != nil {
		r.t.Fatal(err)
	}
	start := time.Now()
	if wasLeader && len(r.c.nodes) > 2 {
		r.c.logf("new leader while %d is stopped: node %d", id, r.c.waitLeader(id))
	}
	time.Sleep(max(0, r.jitter(d)-time.Since(start)))
	if err := r.c.node(id).resume(); err != nil {
		r.t.Fatal(err)
	}
	r.c.logf("SIGCONT node %d", id)
	r.expectProgress(fmt.Sprintf("resuming node %d", id))
}

func (r *run) pauseLeader(d time.Duration) { r.pause(r.leader(), d) }

func (r *run) pauseFollower(d time.Duration) { r.pause(r.followers(r.leader())[0], d) }

// partitioned applies a partition for d and heals it. It is a no-op (logged)
// when partitions are unavailable.
func (r *run) partitioned(what string, d time.Duration, apply func(nf *netFaults, lead uint64) (newLeaderOutside []uint64, err error)) {
	r.t.Helper()
	if r.nf == nil {
		r.c.logf("skipping partition step %q: %s", what, partitionsUnavailable())
		return
	}
	lead := r.leader()
	exclude, err := apply(r.nf, lead)
	if err != nil {
		r.t.Fatal(err)
	}
	r.c.logf("partition %q (leader was %d): cut %s", what, lead, r.nf.describe())
	start := time.Now()
	if exclude != nil {
		r.c.logf("new leader outside %v: node %d", exclude, r.c.waitLeader(exclude...))
	}
	time.Sleep(max(0, r.jitter(d)-time.Since(start)))
	if err := r.nf.heal(); err != nil {
		r.t.Fatal(err)
	}
	r.c.logf("healed %q", what)
	r.expectProgress("healing partition " + what)
}

// isolateLeader cuts the leader from every other node.
func (r *run) isolateLeader(d time.Duration) {
	r.partitioned("isolated leader", d, func(nf *netFaults, lead uint64) ([]uint64, error) {
		return []uint64{lead}, nf.isolate(lead)
	})
}

// leaderInMinority puts the leader and one follower on the minority side.
func (r *run) leaderInMinority(d time.Duration) {
	r.partitioned("leader in minority", d, func(nf *netFaults, lead uint64) ([]uint64, error) {
		f := r.followers(lead)
		minority := []uint64{lead, f[0]}
		return minority, nf.partition(minority, f[1:])
	})
}

// brokenLink cuts only the link between the leader and one follower: both
// still reach everyone else.
func (r *run) brokenLink(d time.Duration) {
	r.partitioned("broken leader-follower link", d, func(nf *netFaults, lead uint64) ([]uint64, error) {
		return nil, nf.partition([]uint64{lead}, r.followers(lead)[:1])
	})
}

// oneWayFromLeader drops everything the leader sends to the others, while
// it still hears them: they elect a new leader, whose messages it gets.
func (r *run) oneWayFromLeader(d time.Duration) {
	r.partitioned("one-way: leader's messages dropped", d, func(nf *netFaults, lead uint64) ([]uint64, error) {
		for _, f := range r.followers(lead) {
			if err := nf.cut(lead, f); err != nil {
				return nil, err
			}
		}
		return []uint64{lead}, nil
	})
}

// pausedLeaderWakesAlone pauses the leader with SIGSTOP, cuts it from the
// others while it sleeps, lets the others elect a new leader and commit
// writes, and wakes it while still cut off: it then believes it leads, with
// stale data, until CheckQuorum makes it step down (an election timeout or
// two). The pinned reader of that node keeps asking it for reads meanwhile;
// answering any of them without a quorum's confirmation would be a stale
// read, which the linearizability check catches.
func (r *run) pausedLeaderWakesAlone(d time.Duration) {
	r.t.Helper()
	if r.nf == nil {
		r.c.logf("skipping partition step \"paused leader wakes alone\": %s", partitionsUnavailable())
		return
	}
	lead := r.leader()
	n := r.c.node(lead)
	if err := n.pause(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.nf.isolate(lead); err != nil {
		r.t.Fatal(err)
	}
	r.c.logf("SIGSTOP leader %d and cut it off: %s", lead, r.nf.describe())
	start := time.Now()
	r.c.logf("new leader while %d sleeps: node %d", lead, r.c.waitLeader(lead))
	time.Sleep(max(0, r.jitter(d)-time.Since(start)))
	if err := n.resume(); err != nil {
		r.t.Fatal(err)
	}
	r.c.logf("SIGCONT node %d, still cut off", lead)
	time.Sleep(r.jitter(time.Second))
	if err := r.nf.heal(); err != nil {
		r.t.Fatal(err)
	}
	r.c.logf("healed")
	r.expectProgress(fmt.Sprintf("waking leader %d alone", lead))
}

// randomFaults runs n faults chosen with the seed, each with a short pause
// before it.
func (r *run) randomFaults(n int) {
	r.t.Helper()
	type fault struct {
		name string
		do   func()
	}
	faults := []fault{
		{"kill leader", func() { r.killLeader(time.Second) }},
		{"kill follower", func() { r.killFollowers(1, 2*time.Second) }},
		{"pause leader", func() { r.pauseLeader(time.Second) }},
		{"pause follower", func() { r.pauseFollower(time.Second) }},
		{"kill all", func() { r.killAll(500 * time.Millisecond) }},
	}
	if len(r.c.nodes) >= 5 {
		faults = append(faults, fault{"kill minority", func() { r.killFollowers(2, time.Second) }})
	}
	if r.nf != nil {
		faults = append(faults,
			fault{"isolate leader", func() { r.isolateLeader(time.Second) }},
			fault{"broken link", func() { r.brokenLink(time.Second) }},
			fault{"one-way from leader", func() { r.oneWayFromLeader(time.Second) }},
			fault{"paused leader wakes alone", func() { r.pausedLeaderWakesAlone(time.Second) }})
		if len(r.c.nodes) >= 5 {
			faults = append(faults, fault{"leader in minority", func() { r.leaderInMinority(time.Second) }})
		}
	}
	for i := range n {
		f := faults[r.rng.IntN(len(faults))]
		time.Sleep(r.jitter(500 * time.Millisecond))
		r.c.logf("random fault %d/%d: %s", i+1, n, f.name)
		f.do()
	}
}

// TestClusterFaults is the default scenario: 3 nodes, ~20 s.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts processes and injects faults for ~20 s")
	}
	runScenario(t, scenario{
		cluster: clusterOpts{nodes: 3, snapshotEntries: 2000},
		work:    workloadOpts{linWorkers: 4, durWorkers: 1, keys: 6, opTimeout: 4 * time.Second, pause: 2 * time.Millisecond, pinned: true, pinnedTimeout: 300 * time.Millisecond},
		warmup:  time.Second,
		steps: func(r *run) {
			r.killLeader(1500 * time.Millisecond)
			r.pauseLeader(1500 * time.Millisecond)
			r.killFollowers(1, time.Second)
			r.killAll(500 * time.Millisecond)
			time.Sleep(500 * time.Millisecond)
		},
	})
}

// TestClusterPartitions is the partition scenario: 3 nodes by default, 5
// more with -cluster.full. It skips, saying why, where partitions cannot be
// made (not root, or no iptables command).
func TestClusterPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts processes and injects faults for ~10 s")
	}
	if why := partitionsUnavailable(); why != "" {
		t.Skip("partition cases skipped: " + why)
	}
	t.Run("3nodes", func(t *testing.T) {
		runScenario(t, scenario{
			cluster: clusterOpts{nodes: 3, snapshotEntries: 2000},
			work:    workloadOpts{linWorkers: 4, durWorkers: 1, keys: 6, opTimeout: 4 * time.Second, pause: 2 * time.Millisecond, pinned: true, pinnedTimeout: 300 * time.Millisecond},
			warmup:  500 * time.Millisecond,
			steps: func(r *run) {
				r.isolateLeader(1500 * time.Millisecond)
				r.pausedLeaderWakesAlone(1500 * time.Millisecond)
				r.oneWayFromLeader(1500 * time.Millisecond)
				r.brokenLink(time.Second)
				time.Sleep(300 * time.Millisecond)
			},
		})
	})
	if !*flagFull {
		return
	}
	t.Run("5nodes", func(t *testing.T) {
		runScenario(t, scenario{
			cluster: clusterOpts{nodes: 5, snapshotEntries: 5000},
			work:    workloadOpts{linWorkers: 6, durWorkers: 2, keys: 8, opTimeout: 5 * time.Second, pause: 2 * time.Millisecond, pinned: true, pinnedTimeout: 300 * time.Millisecond},
			warmup:  time.Second,
			steps: func(r *run) {
				r.isolateLeader(3 * time.Second)
				r.leaderInMinority(3 * time.Second)
				r.brokenLink(3 * time.Second)
				r.oneWayFromLeader(3 * time.Second)
				r.pausedLeaderWakesAlone(2 * time.Second)
				// A partition with a node down on the majority side.
				lead := r.leader()
				f := r.followers(lead)
				r.kill(f[0])
				r.isolateLeader(2 * time.Second)
				r.restart(f[0])
				time.Sleep(time.Second)
			},
		})
	})
}

// TestClusterFull is every scenario on 5 nodes (and the random schedule on
// 3); it runs with -cluster.full.
func TestClusterFull(t *testing.T) {
	if !*flagFull {
		t.Skip("the full fault suite runs with -cluster.full")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	t.Run("5nodes/every-fault", func(t *testing.T) {
		runScenario(t, scenario{
			cluster: clusterOpts{nodes: 5, snapshotEntries: 1000},
			work:    workloadOpts{linWorkers: 6, durWorkers: 2, keys: 8, opTimeout: 5 * time.Second, pause: 2 * time.Millisecond, pinned: true, pinnedTimeout: 300 * time.Millisecond},
			warmup:  2 * time.Second,
			steps: func(r *run) {
				r.killLeader(3 * time.Second)
				// Down long enough for the others to compact past it: it
				// catches up by snapshot.
				r.killFollowers(1, 6*time.Second)
				r.killFollowers(2, 3*time.Second)
				r.pauseLeader(3 * time.Second)
				r.pauseFollower(2 * time.Second)
				r.killAll(time.Second)
				r.isolateLeader(3 * time.Second)
				r.leaderInMinority(3 * time.Second)
				r.brokenLink(3 * time.Second)
				r.oneWayFromLeader(3 * time.Second)
				r.pausedLeaderWakesAlone(3 * time.Second)
				time.Sleep(time.Second)
			},
		})
	})
	t.Run("5nodes/random", func(t *testing.T) {
		runScenario(t, scenario{
			cluster: clusterOpts{nodes: 5, snapshotEntries: 300},
			work:    workloadOpts{linWorkers: 6, durWorkers: 2, keys: 8, opTimeout: 5 * time.Second, pause: 2 * time.Millisecond, pinned: true, pinnedTimeout: 300 * time.Millisecond},
			warmup:  time.Second,
			steps:   func(r *run) { r.randomFaults(12) },
		})
	})
	t.Run("3nodes/random", func(t *testing.T) {
		runScenario(t, scenario{
			cluster: clusterOpts{nodes: 3, snapshotEntries: 300},
			work:    workloadOpts{linWorkers: 5, durWorkers: 1, keys: 5, opTimeout: 4 * time.Second, pause: time.Millisecond, pinned: true, pinnedTimeout: 300 * time.Millisecond},
			warmup:  time.Second,
			steps:   func(r *run) { r.randomFaults(10) },
		})
	})
}
