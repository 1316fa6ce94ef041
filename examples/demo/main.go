// Command demo runs a replicated RaftKV cluster inside this process, lets two
// goroutines put, get, update and remove the same few keys at random, then
// closes the database, opens it again and shows what survived.
//
//	go run ./examples/demo             # data in a fresh temporary directory
//	go run ./examples/demo -data DIR   # data in DIR, kept for the next run
//
// It is the original project's demo, ported to the current API: errors are
// returned instead of panicking, and a missing key (ErrNotFound) is an
// ordinary outcome.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raftkv/raftkv"
)

// The original demo's operations, keys and values. Like the original, the
// workers use only the first 8 keys and the first 10 values, so they keep
// running into each other's keys.
var (
	ops    = [4]string{"get", "put", "remove", "update"}
	keys   = [20]string{"a", "b", "c", "se", "aa", "Esx", "ky", "mio", "ss", "teio", "rs", "sada", "mc", "mq", "xxx23x", "asddaw", "xxas", "3a1sd", "liky", "fll"}
	values = [20]int{2, 96, -2, 5, 33, -88, 5, 23, 6, 845, 9, 2, 922, 912123, 223, 55, 31, 5223, 5, 2631}
)

const (
	usedKeys     = 8
	usedValues   = 10
	opsPerWorker = 10
	// opTimeout bounds each call; the first ones also wait for the
	// cluster's first election.
	opTimeout = 5 * time.Second
)

func main() {
	data := flag.String("data", "", "keep the database in this directory (default: a fresh temporary directory, removed at exit)")
	flag.Parse()
	dir, temporary := *data, false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "raftkv-demo-"); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			os.Exit(1)
		}
		temporary = true
	}
	err := run(os.Stdout, dir)
	if temporary {
		os.RemoveAll(dir)
		fmt.Printf("removed %s (run with -data DIR to keep the data between runs)\n", dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run is the whole demo, writing its report to w and keeping the data in
// dataDir.
func run(w io.Writer, dataDir string) error {
	out := &lockedWriter{w: w}
	out.printf("RaftKV demo: data in %s\n", dataDir)

	db, err := open(dataDir)
	if err != nil {
		return err
	}
	out.printf("opened the cluster (config.yaml if present, else the defaults)\n\n")

	var wg sync.WaitGroup
	tallies := make([]tally, 2)
	for i := range tallies {
		wg.Go(func() { tallies[i] = randomOps(db, out, i+1) })
	}
	wg.Wait()

	out.printf("\nsummary:\n")
	var failed int
	for i, t := range tallies {
		out.printf("  worker %d: %d ok, %d not found, %d failed\n", i+1, t.ok, t.notFound, t.failed)
		failed += t.failed
	}
	before, err := readAll(db)
	if err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	out.printf("closed the database\n\n")

	db, err = open(dataDir)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	after, err := readAll(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close after reopen: %w", cerr)
	}
	if err != nil {
		return err
	}
	out.printf("reopened the database; what survived:\n")
	var lost []string
	for i, k := range keys[:usedKeys] {
		v := after[i]
		if v == "" {
			v = "(not found)"
		}
		out.printf("  %-4s = %s\n", k, v)
		if after[i] != before[i] {
			lost = append(lost, fmt.Sprintf("%s was %q before closing, %q after reopening", k, before[i], after[i]))
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("data changed across the restart: %s", strings.Join(lost, "; "))
	}
	out.printf("every key reads the same as before closing\n")
	if failed > 0 {
		return fmt.Errorf("%d operations failed", failed)
	}
	return nil
}

// open starts the cluster with its data in dir. Logs go to stderr at warn
// level, so the demo's own output is all there is unless something is
// wrong.
func open(dir string) (*raftkv.DB, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := raftkv.Open(raftkv.WithDataDir(dir), raftkv.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return db, nil
}

type tally struct{ ok, notFound, failed int }

// randomOps does the original demo's random operations and reports each.
func randomOps(db *raftkv.DB, out *lockedWriter, worker int) tally {
	var t tally
	for range opsPerWorker {
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		op := ops[rand.IntN(len(ops))]
		key := keys[rand.IntN(usedKeys)]
		val := strconv.Itoa(values[rand.IntN(usedValues)])

		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		var got []byte
		var err error
		what := fmt.Sprintf("%-6s %-4s", op, key)
		switch op {
		case "get":
			got, err = db.Get(ctx, key)
		case "put":
			err = db.Put(ctx, key, []byte(val))
			what += " = " + val
		case "update":
			err = db.Update(ctx, key, []byte(val))
			what += " = " + val
		case "remove":
			err = db.Remove(ctx, key)
		}
		cancel()

		var outcome string
		switch {
		case err == nil && op == "get":
			outcome, t.ok = "ok: "+string(got), t.ok+1
		case err == nil:
			outcome, t.ok = "ok", t.ok+1
		case errors.Is(err, raftkv.ErrNotFound):
			outcome, t.notFound = "not found", t.notFound+1
		default:
			outcome, t.failed = "FAILED: "+err.Error(), t.failed+1
		}
		out.printf("worker %d: %-20s -> %s\n", worker, what, outcome)
	}
	return t
}

// readAll reads every key the workers used; "" stands for a missing key
// (the demo never writes an empty value).
func readAll(db *raftkv.DB) ([]string, error) {
	vals := make([]string, usedKeys)
	for i, k := range keys[:usedKeys] {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		v, err := db.Get(ctx, k)
		cancel()
		switch {
		case errors.Is(err, raftkv.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("get %s: %w", k, err)
		default:
			vals[i] = string(v)
		}
	}
	return vals, nil
}

// lockedWriter keeps the two workers' lines whole.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}
