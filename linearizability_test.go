package raftkv

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/internal/faults"
	"github.com/raftkv/raftkv/internal/kvmodel"
)

// A linearizability check of the whole database under faults. Concurrent
// clients run Put/Get/Update/Remove on a few keys while a fault schedule
// partitions the network (isolating the leader or a follower, one-way
// cuts), loses, duplicates and delays node-to-node messages, crash-stops
// and restarts the leader and followers, and makes node actors panic (their
// supervisor restarts them from storage). Every operation is recorded with
// its call and return time, and porcupine checks that the history is
// linearizable with respect to a per-key register.
//
// An operation that failed (no quorum in time: ErrUnavailable, or any
// ErrOutcomeUnknown) has an unknown outcome. A failed write may still take
// effect at any later time, so it is recorded as returning at the end of
// the history, with an output that allows either outcome; a failed read
// changes nothing and is dropped.
//
// The fault schedule is drawn from a seed, printed on every run; replay it
// with -lin.seed=N or RAFTKV_LIN_SEED=N (timing still varies between runs,
// so a replay is the same schedule, not the same interleaving). Run longer
// with -lin.duration=2m.

var (
	linDuration = flag.Duration("lin.duration", 6*time.Second, "TestLinearizability: how long clients run under faults (plus a healed tail)")
	linSeed     = flag.Uint64("lin.seed", 0, "TestLinearizability: fault schedule seed (0: random; also RAFTKV_LIN_SEED)")
	linClients  = flag.Int("lin.clients", 6, "TestLinearizability: concurrent clients")
	linCheck    = flag.Duration("lin.check", 2*time.Minute, "TestLinearizability: porcupine time limit")
)

// linHistory collects operations from concurrent clients.
type linHistory struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// pending marks ops whose outcome is unknown: they return at the end.
	pending []bool
	// Counters for the report and the liveness assertion.
	ok, notFound, unknown, failedReads atomic.Int64
	otherErrs                          sync.Map // error text -> *atomic.Int64
	// afterHeal counts definite answers to calls made after the faults
	// were healed.
	afterHeal atomic.Int64
	healedAt  atomic.Int64
	nextID    atomic.Int64
}

func (h *linHistory) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *linHistory) add(client int, in kvmodel.Input, call int64, out kvmodel.Output, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.pending = append(h.pending, out.Outcome == kvmodel.Unknown)
}

// operations returns the history with unknown outcomes returning after
// everything else.
func (h *linHistory) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var end int64
	for _, op := range h.ops {
		end = max(end, op.Call, op.Return)
	}
	ops := slices.Clone(h.ops)
	for i := range ops {
		if h.pending[i] {
			ops[i].Return = end + 1
		}
	}
	return ops
}

// record classifies a call's error and adds the operation; it reports
// whether the outcome was unknown.
func (h *linHistory) record(client int, in kvmodel.Input, call int64, value []byte, err error) bool {
	ret := h.now()
	var out kvmodel.Output
	switch {
	case err == nil:
		out.Outcome = kvmodel.OK
		if in.Op == kvmodel.Get {
			out.Value = string(value)
		}
		h.ok.Add(1)
	case errors.Is(err, ErrNotFound):
		out.Outcome = kvmodel.NotFound
		h.notFound.Add(1)
	default:
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrOutcomeUnknown) {
			// Any other error is a bug or an unexpected refusal; count it
			// by kind, the test fails on it.
			msg := err.Error()
			c, _ := h.otherErrs.LoadOrStore(msg, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
		}
		if in.Op == kvmodel.Get {
			h.failedReads.Add(1)
			return false
		}
		out.Outcome = kvmodel.Unknown
		h.unknown.Add(1)
	}
	if healed := h.healedAt.Load(); healed > 0 && call >= healed && out.Outcome != kvmodel.Unknown {
		h.afterHeal.Add(1)
	}
	h.add(client, in, call, out, ret)
	return out.Outcome == kvmodel.Unknown
}

func linSeedValue(t *testing.T) uint64 {
	if *linSeed != 0 {
		return *linSeed
	}
	if s := os.Getenv("RAFTKV_LIN_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RAFTKV_LIN_SEED=%q: %v", s, err)
		}
		return v
	}
	return rand.Uint64()%1_000_000_000 + 1
}

func TestLinearizability(t *testing.T) {
	seed := linSeedValue(t)
	t.Logf("seed %d; replay: go test -race -run '^TestLinearizability$' -lin.seed=%d -lin.duration=%v .", seed, seed, *linDuration)
	rng := rand.New(rand.NewPCG(seed, 0x11))

	cfg := testConfig(t, 3)
	// Compact often, so restarted followers are also caught up by
	// snapshots while clients run.
	cfg.SnapshotEntries = 40 + rng.IntN(80)
	network := faults.NewNetwork(seed)
	panics := &nodePanics{}
	db := openTest(t, cfg, withSenderMiddleware(network.Middleware(), panics.Middleware()))
	defer db.Close()
	waitLeader(t, db)

	keys := []string{"k0", "k1", "k2", "k3"}
	h := &linHistory{start: time.Now()}
	h.nextID.Store(int64(*linClients))

	faultFor := *linDuration
	tail := max(2*time.Second, *linDuration/10) // healed: everything must work again
	stopClients := make(chan struct{})
	endClients := sync.OnceFunc(func() { close(stopClients) })
	running := func() bool {
		select {
		case <-stopClients:
			return false
		default:
			return true
		}
	}
	// Short deadlines: calls in flight when a fault hits fail with an
	// unknown outcome instead of waiting it out.
	opTimeout := func(r *rand.Rand) time.Duration {
		return 200*time.Millisecond + time.Duration(r.Int64N(int64(time.Second)))
	}

	var wg sync.WaitGroup
	// On an early exit too, the clients stop before the DB closes.
	defer wg.Wait()
	defer endClients()
	for c := 0; c < *linClients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			crng := rand.New(rand.NewPCG(seed, uint64(c)+100))
			client := c
			for n := 0; running(); n++ {
				in := kvmodel.Input{Key: keys[crng.IntN(len(keys))]}
				switch p := crng.IntN(100); {
				case p < 40:
					in.Op = kvmodel.Get
				case p < 70:
					in.Op = kvmodel.Put
				case p < 85:
					in.Op = kvmodel.Update
				default:
					in.Op = kvmodel.Remove
				}
				if in.Op == kvmodel.Put || in.Op == kvmodel.Update {
					// Unique values make every read pin down which write
					// it saw.
					in.Value = fmt.Sprintf("c%d-%d", c, n)
				}
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout(crng))
				call := h.now()
				var v []byte
				var err error
				switch in.Op {
				case kvmodel.Get:
					v, err = db.Get(ctx, in.Key)
				case kvmodel.Put:
					err = db.Put(ctx, in.Key, []byte(in.Value))
				case kvmodel.Update:
					err = db.Update(ctx, in.Key, []byte(in.Value))
				case kvmodel.Remove:
					err = db.Remove(ctx, in.Key)
				}
				cancel()
				if h.record(client, in, call, v, err) {
					// This client's failed op stays open until the end of
					// the history; go on as a new client, so the
					// visualisation shows one op at a time per row.
					client = int(h.nextID.Add(1))
				}
			}
		}()
	}

	actions := runFaultSchedule(t, db, network, panics, rng, faultFor, h.start)
	h.healedAt.Store(h.now())
	time.Sleep(tail)
	endClients()
	wg.Wait()

	// Everything healed: every node catches up, and a final read of every
	// key joins the history.
	waitApplied(t, db)
	ctx := ctxT(t)
	final := int(h.nextID.Add(1))
	for _, k := range keys {
		call := h.now()
		v, err := db.Get(ctx, k)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("final read of %s after healing: %v", k, err)
		}
		h.record(final, kvmodel.Input{Op: kvmodel.Get, Key: k}, call, v, err)
	}

	ops := h.operations()
	definite := h.ok.Load() + h.notFound.Load()
	t.Logf("faults: %s", strings.Join(actions, ", "))
	t.Logf("node actor panics injected: %d", panics.fired.Load())
	t.Logf("history: %d operations checked (%d ok, %d not found, %d writes with unknown outcome), %d failed reads dropped, %d definite answers after healing; %d messages dropped by faults; snapshotEntries=%d",
		len(ops), h.ok.Load(), h.notFound.Load(), h.unknown.Load(), h.failedReads.Load(), h.afterHeal.Load(), network.Dropped(), cfg.SnapshotEntries)
	h.otherErrs.Range(func(k, v any) bool {
		t.Errorf("unexpected error %dx: %s", v.(*atomic.Int64).Load(), k)
		return true
	})

	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvmodel.Model(), ops, *linCheck)
	t.Logf("porcupine: %s in %v", res, time.Since(began).Round(time.Millisecond))
	if res != porcupine.Ok {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("raftkv-linearizability-seed%d-%d.html", seed, time.Now().UnixNano()))
		if err := porcupine.VisualizePath(kvmodel.Model(), info, path); err != nil {
			t.Errorf("writing the visualisation: %v", err)
		}
		t.Fatalf("history is %s (seed %d); visualisation: %s", res, seed, path)
	}

	// A cluster that failed every call would be trivially linearizable:
	// demand real progress, under faults and after healing.
	minDefinite := int64(100 * faultFor / (6 * time.Second))
	if definite < minDefinite {
		t.Fatalf("only %d operations got a definite answer (want at least %d)", definite, minDefinite)
	}
	if h.afterHeal.Load() < 20 {
		t.Fatalf("only %d operations got a definite answer after healing; the cluster did not recover", h.afterHeal.Load())
	}
	if len(actions) < 3 {
		t.Fatalf("only %d faults injected", len(actions))
	}
}

// runFaultSchedule injects random faults for d, then heals the network and
// restarts every stopped node. It returns a description of each fault.
func runFaultSchedule(t *testing.T, db *DB, network *faults.Network, panics *nodePanics, rng *rand.Rand, d time.Duration, t0 time.Time) []string {
	t.Helper()
	all := []uint64{1, 2, 3}
	down := map[uint64]bool{}
	stop := func(id uint64) {
		if down[id] {
			return
		}
		if err := db.stopNode(id); err != nil {
			t.Logf("stop node %d: %v", id, err)
		}
		down[id] = true
	}
	restartAll := func() {
		for _, id := range all {
			if down[id] {
				if err := db.startNode(id); err != nil {
					t.Fatalf("restart node %d: %v", id, err)
				}
				delete(down, id)
			}
		}
	}
	other := func(not ...uint64) uint64 {
		var c []uint64
		for _, id := range all {
			if !slices.Contains(not, id) {
				c = append(c, id)
			}
		}
		return c[rng.IntN(len(c))]
	}
	end := time.Now().Add(d)
	// sleep draws a pause in [lo, hi), cut short at the end of the
	// schedule (the draw is made either way, keeping the sequence).
	sleep := func(lo, hi time.Duration) {
		p := lo + time.Duration(rng.Int64N(int64(hi-lo)))
		time.Sleep(max(0, min(p, time.Until(end))))
	}
	// hold keeps a fault for a drawn time; with misroute set it keeps
	// pointing the DB at that node.
	hold := func(lo, hi time.Duration, misroute uint64) {
		p := lo + time.Duration(rng.Int64N(int64(hi-lo)))
		until := time.Now().Add(max(0, min(p, time.Until(end))))
		for left := time.Until(until); left > 0; left = time.Until(until) {
			if misroute != 0 {
				db.route.leader.Store(misroute)
			}
			time.Sleep(min(left, 30*time.Millisecond))
		}
	}

	var actions []string
	for time.Now().Before(end) {
		sleep(100*time.Millisecond, 500*time.Millisecond) // healthy gap
		leader := currentLeader(db)
		if leader == 0 {
			leader = other()
		}
		var what string
		var misroute uint64
		switch rng.IntN(10) {
		case 0:
			network.Isolate(leader, all...)
			what = fmt.Sprintf("isolate leader %d", leader)
			if rng.IntN(2) == 0 {
				// Clients with a stale view keep asking the deposed
				// leader (as other client processes would).
				misroute = leader
				what += " (clients pinned to it)"
			}
		case 1:
			f := other(leader)
			network.Isolate(f, all...)
			what = fmt.Sprintf("isolate follower %d", f)
		case 2:
			// One-way: the leader's messages to a follower are lost, the
			// follower still reaches the leader (and may start elections).
			f := other(leader)
			network.Cut(leader, f)
			what = fmt.Sprintf("cut %d->%d", leader, f)
		case 3:
			drop, dup, delay := rng.IntN(30), rng.IntN(30), time.Duration(rng.IntN(40))*time.Millisecond
			network.SetLoss(drop, dup, delay)
			what = fmt.Sprintf("loss %d%% dup %d%% delay<%v", drop, dup, delay)
		case 4:
			stop(leader)
			what = fmt.Sprintf("stop leader %d", leader)
		case 5:
			f := other(leader)
			stop(f)
			what = fmt.Sprintf("stop follower %d", f)
		case 6:
			// No quorum: a follower down and the leader isolated from the
			// other; writes in flight get unknown outcomes.
			f := other(leader)
			stop(f)
			network.Isolate(leader, all...)
			what = fmt.Sprintf("stop %d + isolate leader %d (no quorum)", f, leader)
		case 7:
			network.SetLoss(10, 10, 20*time.Millisecond)
			stop(leader)
			what = fmt.Sprintf("loss + stop leader %d", leader)
		case 8:
			panics.arm(leader)
			what = fmt.Sprintf("panic leader %d", leader)
		case 9:
			f := other(leader)
			panics.arm(f)
			what = fmt.Sprintf("panic follower %d", f)
		}
		actions = append(actions, fmt.Sprintf("%.1fs %s", time.Since(t0).Seconds(), what))
		hold(200*time.Millisecond, 2*time.Second, misroute)
		network.Heal()
		panics.disarm()
		restartAll()
	}
	network.Heal()
	panics.disarm()
	restartAll()
	return actions
}

// currentLeader returns the reachable leader of the highest term, or 0.
func currentLeader(db *DB) uint64 {
	st, _ := db.Status(context.Background())
	var id, term uint64
	for _, s := range st {
		if s.Reachable && s.Role == "leader" && s.Term >= term {
			id, term = s.ID, s.Term
		}
	}
	return id
}

// nodePanics makes a node actor panic, as a bug in it would: armed for node
// id, the node's next send panics (wherever in its work it sends: handling
// a Ready, answering a client, scheduling a flush), and protoactor's
// supervisor restarts the actor, which rebuilds its state from storage.
type nodePanics struct {
	armed sync.Map // node actor id ("n1") -> struct{}
	fired atomic.Int64
}

func (p *nodePanics) arm(id uint64) { p.armed.Store(actors.NodeName(id), struct{}{}) }

func (p *nodePanics) disarm() { p.armed.Clear() }

func (p *nodePanics) Middleware() actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			if self := c.Self(); self != nil {
				if _, ok := p.armed.LoadAndDelete(self.Id); ok {
					p.fired.Add(1)
					panic(fmt.Sprintf("injected panic in %s sending %T", self.Id, env.Message))
				}
			}
			next(c, target, env)
		}
	}
}
