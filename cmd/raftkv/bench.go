package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/config"
)

const benchDesc = `Measure throughput and latency. With --endpoints it loads that cluster
through the client API; without, it starts a fresh embedded 3-node cluster
(the built-in configuration, real disk with fsync) in a temporary directory
and removes it afterwards. $RAFTKV_ENDPOINTS is ignored: bench writes, so a
cluster is only benchmarked when named explicitly.

Workloads: put writes, get reads, mixed does 50% get / 50% put, each op's
kind and key drawn at random from --keys keys (bench-00000000, ...). For get
and mixed every key is written first (not measured); put overwrites them.
Each of --clients callers issues one operation at a time until --duration
ends, then finishes the one in flight. A failed operation (timeout, no
leader) is counted in ERRORS and the run goes on; the most common errors are
listed on stderr. Ctrl-C stops early and reports what was measured.

Output: a table (or --json: one object with workload, target, clients, keys,
value_size, duration_s, ops, errors, ops_per_sec, p50_ms, p95_ms, p99_ms,
p999_ms, by_op for mixed, error_samples). OPS counts successful operations;
OPS/S divides them by the wall time of the run; the latency percentiles are
of successful operations. On a terminal a progress line is refreshed on
stderr every second. Exit code 1 if no operation succeeded.
`

// opKind indexes per-kind statistics.
type opKind int

const (
	opGet opKind = iota
	opPut
)

func (k opKind) String() string { return [...]string{"get", "put"}[k] }

// measured is what a run achieved: throughput and latency percentiles.
type measured struct {
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
}

// opStats summarizes one kind of operation, or all of them.
type opStats struct {
	Op string `json:"op"`
	measured
}

// benchResult is the --json output.
type benchResult struct {
	Workload  string  `json:"workload"`
	Target    string  `json:"target"`
	Clients   int     `json:"clients"`
	Keys      int     `json:"keys"`
	ValueSize int     `json:"value_size"`
	DurationS float64 `json:"duration_s"`
	measured
	ByOp         []opStats `json:"by_op,omitempty"`
	ErrorSamples []string  `json:"error_samples,omitempty"`
	Interrupted  bool      `json:"interrupted,omitempty"`
}

type benchParams struct {
	workload  string
	clients   int
	duration  time.Duration
	keys      int
	valueSize int
	timeout   time.Duration
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "raftkv bench [flags]", benchDesc, stderr)
	endpoints := endpointsFlag(fs, false)
	var p benchParams
	fs.StringVar(&p.workload, "workload", "put", "put, get or mixed (50% get, 50% put)")
	fs.IntVar(&p.clients, "clients", 16, "concurrent callers")
	fs.DurationVar(&p.duration, "duration", 10*time.Second, "how long to measure")
	fs.IntVar(&p.keys, "keys", 1000, "number of distinct keys")
	fs.IntVar(&p.valueSize, "value-size", 256, "bytes per value written")
	fs.DurationVar(&p.timeout, "timeout", defaultTimeout, "bound on each operation (and on connecting)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return usageError(fs, stderr, "unexpected arguments: %q", pos)
	case p.workload != "put" && p.workload != "get" && p.workload != "mixed":
		return usageError(fs, stderr, "--workload must be put, get or mixed, not %q", p.workload)
	case p.clients < 1:
		return usageError(fs, stderr, "--clients must be at least 1")
	case p.duration <= 0:
		return usageError(fs, stderr, "--duration must be positive")
	case p.keys < 1:
		return usageError(fs, stderr, "--keys must be at least 1")
	case p.valueSize < 0 || p.valueSize > config.MaxValueSizeLimit:
		return usageError(fs, stderr, "--value-size must be 0..%d", config.MaxValueSizeLimit)
	case p.timeout <= 0:
		return usageError(fs, stderr, "--timeout must be positive")
	}
	eps, err := splitEndpoints(*endpoints)
	if err != nil {
		return usageError(fs, stderr, "--endpoints: %v", err)
	}

	// Everything on stderr (the embedded nodes' logs included) goes
	// through one lock.
	errw := &lockedWriter{w: stderr}
	tty := isTerminal(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var kv raftkv.KV
	var target string
	if len(eps) > 0 {
		dctx, cancel := context.WithTimeout(ctx, p.timeout)
		c, err := raftkv.Dial(dctx, eps...)
		cancel()
		if err != nil {
			fmt.Fprintf(errw, "raftkv bench: cannot reach the cluster within %v: %v\n", p.timeout, err)
			return exitFailure
		}
		kv, target = c, strings.Join(eps, ",")
	} else {
		dir, err := os.MkdirTemp("", "raftkv-bench-")
		if err != nil {
			fmt.Fprintf(errw, "raftkv bench: %v\n", err)
			return exitFailure
		}
		defer os.RemoveAll(dir)
		cfg := config.Default()
		cfg.PersistPath = dir
		logger := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: slog.LevelError}))
		db, err := raftkv.Open(raftkv.WithConfig(cfg), raftkv.WithLogger(logger))
		if err != nil {
			fmt.Fprintf(errw, "raftkv bench: open the embedded cluster: %v\n", err)
			return exitFailure
		}
		kv, target = db, fmt.Sprintf("embedded %d-node cluster", len(cfg.Servers()))
	}
	defer kv.Close()

	res, err := runBench(ctx, kv, p, errw, tty)
	if err != nil {
		fmt.Fprintf(errw, "raftkv bench: %v\n", err)
		return exitFailure
	}
	res.Target = target
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(errw, "raftkv bench: %v\n", err)
			return exitFailure
		}
	} else if err := printBenchTable(stdout, res); err != nil {
		fmt.Fprintf(errw, "raftkv bench: %v\n", err)
		return exitFailure
	}
	if res.Errors > 0 {
		fmt.Fprintf(errw, "raftkv bench: %d operations failed; most common errors:\n", res.Errors)
		for _, s := range res.ErrorSamples {
			fmt.Fprintf(errw, "  %s\n", s)
		}
	}
	if res.Interrupted {
		fmt.Fprintln(errw, "raftkv bench: interrupted; results cover the time measured")
	}
	if res.Ops == 0 {
		fmt.Fprintln(errw, "raftkv bench: no operation succeeded")
		return exitFailure
	}
	return exitOK
}

// benchKey names key i of the key space.
func benchKey(i int) string { return fmt.Sprintf("bench-%08d", i) }

// runBench preloads (for get and mixed), then runs p.clients callers for
// p.duration and summarizes what they measured.
func runBench(ctx context.Context, kv raftkv.KV, p benchParams, stderr io.Writer, tty bool) (benchResult, error) {
	keys := make([]string, p.keys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	value := make([]byte, p.valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	// Warm up: the first write waits for a leader and opens the path.
	wctx, cancel := context.WithTimeout(ctx, max(p.timeout, 10*time.Second))
	err := kv.Put(wctx, keys[0], value)
	cancel()
	if err != nil {
		return benchResult{}, fmt.Errorf("warm-up write: %w", err)
	}
	if p.workload != "put" {
		if tty {
			fmt.Fprintf(stderr, "preloading %d keys...", p.keys)
		}
		if err := preload(ctx, kv, keys, value, p); err != nil {
			return benchResult{}, err
		}
		if tty {
			fmt.Fprint(stderr, "\r\x1b[K")
		}
	}

	type callerStats struct {
		lat  [2][]time.Duration
		errs [2]int64
	}
	stats := make([]callerStats, p.clients)
	var doneOps, doneErrs atomic.Int64
	samples := newErrorSamples(5)

	start := time.Now()
	deadline := start.Add(p.duration)
	var wg sync.WaitGroup
	for c := range p.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			st := &stats[c]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				kind := opPut
				switch p.workload {
				case "get":
					kind = opGet
				case "mixed":
					kind = opKind(rng.IntN(2))
				}
				key := keys[rng.IntN(len(keys))]
				octx, cancel := context.WithTimeout(ctx, p.timeout)
				t0 := time.Now()
				var err error
				if kind == opGet {
					_, err = kv.Get(octx, key)
				} else {
					err = kv.Put(octx, key, value)
				}
				d := time.Since(t0)
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted: neither a result nor a failure
					}
					st.errs[kind]++
					doneErrs.Add(1)
					samples.add(err)
					// Do not spin on an error that comes back at once.
					time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
					continue
				}
				st.lat[kind] = append(st.lat[kind], d)
				doneOps.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	var progress sync.WaitGroup
	if tty {
		progress.Add(1)
		go func() {
			defer progress.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			var last int64
			for {
				select {
				case <-finished:
					fmt.Fprint(stderr, "\r\x1b[K")
					return
				case now := <-t.C:
					ops := doneOps.Load()
					fmt.Fprintf(stderr, "\rbench %s: %v/%v  ops %d  ops/s %d  errors %d\x1b[K",
						p.workload, now.Sub(start).Round(time.Second), p.duration, ops, ops-last, doneErrs.Load())
					last = ops
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(finished)
	progress.Wait()

	res := benchResult{
		Workload: p.workload, Clients: p.clients, Keys: p.keys, ValueSize: p.valueSize,
		DurationS: round3(elapsed.Seconds()), ErrorSamples: samples.top(), Interrupted: ctx.Err() != nil,
	}
	var all []time.Duration
	var allErrs int64
	for _, k := range []opKind{opGet, opPut} {
		var lat []time.Duration
		var errs int64
		for i := range stats {
			lat = append(lat, stats[i].lat[k]...)
			errs += stats[i].errs[k]
		}
		all = append(all, lat...)
		allErrs += errs
		if p.workload == "mixed" {
			res.ByOp = append(res.ByOp, summarize(k.String(), lat, errs, elapsed))
		}
	}
	total := summarize(p.workload, all, allErrs, elapsed)
	res.measured = total.measured
	return res, nil
}

// preload writes every key once, with up to p.clients writers.
func preload(ctx context.Context, kv raftkv.KV, keys []string, value []byte, p benchParams) error {
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(p.clients, 64, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(keys) {
					return
				}
				octx, cancel := context.WithTimeout(ctx, p.timeout)
				err := kv.Put(octx, keys[i], value)
				cancel()
				if err != nil {
					err = fmt.Errorf("preload %s: %w", keys[i], err)
					failed.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		return *e
	}
	return nil
}

// summarize computes throughput and latency percentiles of lat (sorted in
// place).
func summarize(op string, lat []time.Duration, errs int64, elapsed time.Duration) opStats {
	slices.Sort(lat)
	s := opStats{Op: op, measured: measured{Ops: int64(len(lat)), Errors: errs}}
	if elapsed > 0 {
		s.OpsPerSec = round3(float64(len(lat)) / elapsed.Seconds())
	}
	s.P50Ms = percentileMs(lat, 0.50)
	s.P95Ms = percentileMs(lat, 0.95)
	s.P99Ms = percentileMs(lat, 0.99)
	s.P999Ms = percentileMs(lat, 0.999)
	return s
}

// percentileMs is the nearest-rank percentile q of sorted, in milliseconds.
func percentileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return round3(float64(sorted[i]) / float64(time.Millisecond))
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func printBenchTable(w io.Writer, r benchResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKLOAD\tCLIENTS\tDURATION\tOPS\tERRORS\tOPS/S\tP50\tP95\tP99\tP99.9\t")
	row := func(name string, s opStats) {
		fmt.Fprintf(tw, "%s\t%d\t%.1fs\t%d\t%d\t%.0f\t%.3fms\t%.3fms\t%.3fms\t%.3fms\t\n",
			name, r.Clients, r.DurationS, s.Ops, s.Errors, s.OpsPerSec, s.P50Ms, s.P95Ms, s.P99Ms, s.P999Ms)
	}
	row(r.Workload, opStats{measured: r.measured})
	for _, s := range r.ByOp {
		row(r.Workload+"/"+s.Op, s)
	}
	return tw.Flush()
}

// errorSamples counts errors by message, keeping at most limit messages.
type errorSamples struct {
	mu     sync.Mutex
	limit  int
	counts map[string]int64
	other  int64
}

func newErrorSamples(limit int) *errorSamples {
	return &errorSamples{limit: limit, counts: map[string]int64{}}
}

func (e *errorSamples) add(err error) {
	msg := err.Error()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.counts[msg]; ok || len(e.counts) < e.limit {
		e.counts[msg]++
		return
	}
	e.other++
}

// top lists the messages, most frequent first, as "N times: message".
func (e *errorSamples) top() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	msgs := make([]string, 0, len(e.counts))
	for m := range e.counts {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool {
		if e.counts[msgs[i]] != e.counts[msgs[j]] {
			return e.counts[msgs[i]] > e.counts[msgs[j]]
		}
		return msgs[i] < msgs[j]
	})
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%d times: %s", e.counts[m], m))
	}
	if e.other > 0 {
		out = append(out, fmt.Sprintf("%d times: other errors", e.other))
	}
	return out
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
