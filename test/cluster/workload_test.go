//go:build linux

package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/internal/kvmodel"
)

// The workload runs two kinds of clients against the cluster, each through
// its own raftkv.Dial client (endpoints rotated, so they start on different
// nodes):
//
//   - linearizability workers: random Get/Put/Update/Remove on a few keys,
//     every operation recorded with its call and return times and outcome,
//     checked with porcupine per key;
//   - durability workers: Puts of unique keys, each acknowledged one checked
//     at the end on every node's disk.

// regState is what the final reads found for one key.
type regState struct {
	present bool
	value   string
}

// workloadOpts sizes a workload.
type workloadOpts struct {
	linWorkers, durWorkers int
	// pinned adds one reader per node whose client knows only that node's
	// endpoint and gives up on a Get after pinnedTimeout. While its node is
	// paused or cut off, it keeps invoking fresh Gets there, so that when
	// the node wakes, a Get invoked after the rest of the cluster moved on
	// is waiting for it: a deposed leader that answered it from its own
	// state would be caught serving a stale read.
	pinned        bool
	pinnedTimeout time.Duration
	keys          int
	opTimeout     time.Duration
	// pause between two operations of one worker (uniform in [0, pause]),
	// which keeps histories small enough to check quickly.
	pause time.Duration
}

// durPut is one Put of the durability workload.
type durPut struct {
	key, value string
	acked      bool
}

// workload is a running workload.
type workload struct {
	c      *cluster
	o      workloadOpts
	base   time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	ops     []porcupine.Operation
	durs    []durPut
	clients []*raftkv.Client
	final   map[string]regState // what finalReads saw

	counts [3]atomic.Int64 // ok, notFound, unknown (Gets with an error are not counted)
	failed atomic.Int64    // Gets that failed
}

// startWorkload dials the clients and starts the workers.
func startWorkload(t testing.TB, c *cluster, o workloadOpts, rng *rand.Rand) *workload {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{c: c, o: o, base: time.Now(), cancel: cancel}
	t.Cleanup(w.stop)
	eps := c.endpoints()
	dial := func(i int) *raftkv.Client {
		rot := append(append([]string{}, eps[i%len(eps):]...), eps[:i%len(eps)]...)
		dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer dcancel()
		cl, err := raftkv.Dial(dctx, rot...)
		if err != nil {
			t.Fatalf("dial %v: %v", rot, err)
		}
		w.mu.Lock()
		w.clients = append(w.clients, cl)
		w.mu.Unlock()
		return cl
	}
	for i := range o.linWorkers {
		cl := dial(i)
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		w.wg.Add(1)
		go w.linWorker(ctx, i, cl, r)
	}
	if o.pinned {
		for i, n := range c.nodes {
			dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
			cl, err := raftkv.Dial(dctx, n.clientAddr)
			dcancel()
			if err != nil {
				t.Fatalf("dial node %d: %v", n.id, err)
			}
			w.mu.Lock()
			w.clients = append(w.clients, cl)
			w.mu.Unlock()
			r := rand.New(rand.NewPCG(rng.Uint64(), uint64(2000+i)))
			w.wg.Add(1)
			go w.pinnedReader(ctx, o.linWorkers+1+i, cl, r)
		}
	}
	for i := range o.durWorkers {
		cl := dial(o.linWorkers + i)
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(1000+i)))
		w.wg.Add(1)
		go w.durWorker(ctx, i, cl, r)
	}
	return w
}

func (w *workload) now() int64 { return time.Since(w.base).Nanoseconds() }

func linKey(i int) string { return fmt.Sprintf("lin/%d", i) }

func (w *workload) linWorker(ctx context.Context, id int, cl *raftkv.Client, r *rand.Rand) {
	defer w.wg.Done()
	for seq := 0; ctx.Err() == nil; seq++ {
		in := kvmodel.Input{Key: linKey(r.IntN(w.o.keys))}
		switch p := r.IntN(100); {
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
			in.Value = fmt.Sprintf("w%d-%d", id, seq)
		}
		w.do(ctx, id, cl, in)
		if w.o.pause > 0 {
			sleepCtx(ctx, time.Duration(r.Int64N(int64(w.o.pause)+1)))
		}
	}
}

func (w *workload) pinnedReader(ctx context.Context, id int, cl *raftkv.Client, r *rand.Rand) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		w.doWithin(ctx, id, cl, kvmodel.Input{Op: kvmodel.Get, Key: linKey(r.IntN(w.o.keys))}, w.o.pinnedTimeout)
		if w.o.pause > 0 {
			sleepCtx(ctx, time.Duration(r.Int64N(int64(w.o.pause)+1)))
		}
	}
}

// do runs one operation and records it.
func (w *workload) do(ctx context.Context, client int, cl *raftkv.Client, in kvmodel.Input) {
	w.doWithin(ctx, client, cl, in, w.o.opTimeout)
}

func (w *workload) doWithin(ctx context.Context, client int, cl *raftkv.Client, in kvmodel.Input, timeout time.Duration) {
	opCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	call := w.now()
	var err error
	var v []byte
	switch in.Op {
	case kvmodel.Get:
		v, err = cl.Get(opCtx, in.Key)
	case kvmodel.Put:
		err = cl.Put(opCtx, in.Key, []byte(in.Value))
	case kvmodel.Update:
		err = cl.Update(opCtx, in.Key, []byte(in.Value))
	case kvmodel.Remove:
		err = cl.Remove(opCtx, in.Key)
	}
	ret := w.now()
	var out kvmodel.Output
	switch {
	case err == nil:
		out = kvmodel.Output{Outcome: kvmodel.OK, Value: string(v)}
	case errors.Is(err, raftkv.ErrNotFound):
		out = kvmodel.Output{Outcome: kvmodel.NotFound}
	default:
		if in.Op == kvmodel.Get {
			// A failed read changed nothing: leave it out.
			w.failed.Add(1)
			return
		}
		out = kvmodel.Output{Outcome: kvmodel.Unknown, Err: err.Error()}
		ret = -1 // fixed up to the end of the history by history()
	}
	w.counts[out.Outcome].Add(1)
	w.mu.Lock()
	w.ops = append(w.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	w.mu.Unlock()
}

func (w *workload) durWorker(ctx context.Context, id int, cl *raftkv.Client, r *rand.Rand) {
	defer w.wg.Done()
	for seq := 0; ctx.Err() == nil; seq++ {
		d := durPut{key: fmt.Sprintf("dur/%d/%d", id, seq), value: fmt.Sprintf("v%d-%d-%x", id, seq, r.Uint32())}
		opCtx, cancel := context.WithTimeout(ctx, w.o.opTimeout)
		err := cl.Put(opCtx, d.key, []byte(d.value))
		cancel()
		d.acked = err == nil
		w.mu.Lock()
		w.durs = append(w.durs, d)
		w.mu.Unlock()
		if w.o.pause > 0 {
			sleepCtx(ctx, time.Duration(r.Int64N(int64(w.o.pause)+1)))
		}
	}
}

// stop ends the workers (operations in flight end as unknown) and waits.
func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cl := range w.clients {
		cl.Close()
	}
	w.clients = nil
}

func (w *workload) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	acked := 0
	for _, d := range w.durs {
		if d.acked {
			acked++
		}
	}
	return fmt.Sprintf("%d recorded ops (%d ok, %d not-found, %d unknown writes; %d failed gets left out); durability: %d/%d puts acknowledged",
		len(w.ops), w.counts[kvmodel.OK].Load(), w.counts[kvmodel.NotFound].Load(), w.counts[kvmodel.Unknown].Load(), w.failed.Load(), acked, len(w.durs))
}

// finalReads reads every key of the workload once more through cl, after
// the faults are healed, and adds the reads to the history: they pin the
// final state the checker must explain.
func (w *workload) finalReads(t testing.TB, cl *raftkv.Client) {
	t.Helper()
	for i := range w.o.keys {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		call := w.now()
		v, err := cl.Get(ctx, linKey(i))
		ret := w.now()
		cancel()
		var out kvmodel.Output
		switch {
		case err == nil:
			out = kvmodel.Output{Outcome: kvmodel.OK, Value: string(v)}
		case errors.Is(err, raftkv.ErrNotFound):
			out = kvmodel.Output{Outcome: kvmodel.NotFound}
		default:
			t.Errorf("final read of %s after healing: %v", linKey(i), err)
			continue
		}
		w.mu.Lock()
		w.ops = append(w.ops, porcupine.Operation{ClientId: w.o.linWorkers, Input: kvmodel.Input{Op: kvmodel.Get, Key: linKey(i)}, Call: call, Output: out, Return: ret})
		// (client ids: workers 0..linWorkers-1, final reads linWorkers,
		// pinned readers after.)
		if w.final == nil {
			w.final = map[string]regState{}
		}
		w.final[linKey(i)] = regState{out.Outcome == kvmodel.OK, out.Value}
		w.mu.Unlock()
	}
}

// history returns the recorded operations, unknown ones ending after
// everything else.
func (w *workload) history() []porcupine.Operation {
	w.mu.Lock()
	defer w.mu.Unlock()
	var end int64
	for _, op := range w.ops {
		end = max(end, op.Return, op.Call)
	}
	ops := make([]porcupine.Operation, len(w.ops))
	copy(ops, w.ops)
	for i := range ops {
		if ops[i].Return < 0 {
			ops[i].Return = end + 1
		}
	}
	return ops
}

// checkLinearizable checks the history with porcupine. On a violation it
// writes the visualization and the history into dir and fails t.
func (w *workload) checkLinearizable(t testing.TB, dir string) {
	t.Helper()
	ops := w.history()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvmodel.Model(), ops, 2*time.Minute)
	t.Logf("linearizability check of %d operations: %s in %v", len(ops), res, time.Since(start).Round(time.Millisecond))
	histPath := filepath.Join(dir, "history.txt")
	if res != porcupine.Ok || *flagKeep {
		if err := writeHistory(histPath, ops); err != nil {
			t.Logf("writing history: %v", err)
		}
	}
	if res == porcupine.Ok {
		return
	}
	vis := filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(kvmodel.Model(), info, vis); err != nil {
		t.Logf("writing visualization: %v", err)
	}
	if res == porcupine.Illegal {
		t.Errorf("history is NOT linearizable; visualization: %s; history: %s", vis, histPath)
	} else {
		t.Errorf("linearizability check inconclusive (%s: checker timed out); visualization: %s; history: %s", res, vis, histPath)
	}
}

func writeHistory(path string, ops []porcupine.Operation) error {
	sorted := append([]porcupine.Operation(nil), ops...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	var b strings.Builder
	b.WriteString("# call_ns return_ns client operation\n")
	for _, op := range sorted {
		fmt.Fprintf(&b, "%d %d c%d %s\n", op.Call, op.Return, op.ClientId, kvmodel.Model().DescribeOperation(op.Input, op.Output))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// checkDurableReads reads every acknowledged durability key through cl: each
// must hold its value.
func (w *workload) checkDurableReads(t testing.TB, cl *raftkv.Client) {
	t.Helper()
	w.mu.Lock()
	durs := append([]durPut(nil), w.durs...)
	w.mu.Unlock()
	var acked []durPut
	for _, d := range durs {
		if d.acked {
			acked = append(acked, d)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	const readers = 8
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; i < len(acked); i += readers {
				d := acked[i]
				v, err := cl.Get(ctx, d.key)
				if err != nil || string(v) != d.value {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: got %q, %v; want %q", d.key, v, err, d.value))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		if len(bad) > 20 {
			bad = append(bad[:20], fmt.Sprintf("... and %d more", len(bad)-20))
		}
		t.Errorf("%d of %d acknowledged writes not readable after healing:\n%s", len(bad), len(acked), strings.Join(bad, "\n"))
	}
}

// checkDurableState checks a node's stored data against the durability
// workload: every acknowledged key holds its value; every stored dur/ key
// was written by the workload with that value (acknowledged or not).
func (w *workload) checkDurableState(t testing.TB, id uint64, data map[string]string) {
	t.Helper()
	w.mu.Lock()
	durs := append([]durPut(nil), w.durs...)
	w.mu.Unlock()
	want := map[string]string{}
	var missing []string
	for _, d := range durs {
		want[d.key] = d.value
		if got, ok := data[d.key]; d.acked && (!ok || got != d.value) {
			missing = append(missing, fmt.Sprintf("%s (stored %q, present %v; acked %q)", d.key, got, ok, d.value))
		}
	}
	var invented []string
	for k, v := range data {
		if !strings.HasPrefix(k, "dur/") {
			continue
		}
		if wv, ok := want[k]; !ok || wv != v {
			invented = append(invented, fmt.Sprintf("%s=%q", k, v))
		}
	}
	if len(missing) > 0 {
		t.Errorf("node %d lost %d acknowledged writes: %s", id, len(missing), firstN(missing, 20))
	}
	if len(invented) > 0 {
		t.Errorf("node %d stores %d dur/ keys no client wrote that way: %s", id, len(invented), firstN(invented, 20))
	}
}

// checkFinalState checks a node's stored lin/ keys against the final reads.
func (w *workload) checkFinalState(t testing.TB, id uint64, data map[string]string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, want := range w.final {
		v, ok := data[k]
		if got := (regState{ok, v}); got != want {
			t.Errorf("node %d stores %s = %s, but the final read returned %s", id, k, kvmodel.Model().DescribeState(got), kvmodel.Model().DescribeState(want))
		}
	}
	for k := range data {
		if strings.HasPrefix(k, "lin/") {
			if _, ok := w.final[k]; !ok {
				t.Errorf("node %d stores %s, which the workload never wrote", id, k)
			}
		}
	}
}

func firstN(s []string, n int) string {
	sort.Strings(s)
	if len(s) > n {
		return strings.Join(s[:n], ", ") + fmt.Sprintf(", ... (%d more)", len(s)-n)
	}
	return strings.Join(s, ", ")
}
