package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBenchEmbedded(t *testing.T) {
	t.Setenv(endpointsEnv, "127.0.0.1:1") // ignored by bench
	t.Run("table", func(t *testing.T) {
		out := mustRun(t, nil, "bench", "--workload", "put", "--clients", "4", "--duration", "1s", "--keys", "100", "--value-size", "64")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("bench printed %d lines, want a header and a row:\n%s", len(lines), out)
		}
		for _, col := range []string{"WORKLOAD", "CLIENTS", "OPS", "ERRORS", "OPS/S", "P50", "P95", "P99", "P99.9"} {
			if !strings.Contains(lines[0], col) {
				t.Errorf("header %q lacks %s", lines[0], col)
			}
		}
		f := strings.Fields(lines[1])
		if len(f) != 10 || f[0] != "put" || f[1] != "4" {
			t.Fatalf("row %q: want put with 4 clients and 10 columns", lines[1])
		}
		if ops, err := strconv.Atoi(f[3]); err != nil || ops == 0 {
			t.Fatalf("row %q: ops %q, want > 0", lines[1], f[3])
		}
	})
	t.Run("json", func(t *testing.T) {
		out := mustRun(t, nil, "bench", "--json", "--workload", "mixed", "--clients", "4", "--duration", "1s", "--keys", "50")
		var r benchResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("bench --json: %v\n%s", err, out)
		}
		if r.Workload != "mixed" || r.Clients != 4 || r.Ops == 0 || r.OpsPerSec <= 0 || r.P50Ms <= 0 || r.P999Ms < r.P50Ms {
			t.Fatalf("bench --json: implausible result %+v", r)
		}
		if len(r.ByOp) != 2 || r.ByOp[0].Op != "get" || r.ByOp[1].Op != "put" || r.ByOp[0].Ops == 0 || r.ByOp[1].Ops == 0 {
			t.Fatalf("bench --json: by_op %+v, want get and put with ops", r.ByOp)
		}
		if r.ByOp[0].Ops+r.ByOp[1].Ops != r.Ops {
			t.Fatalf("by_op ops do not add up: %+v", r)
		}
		if !strings.Contains(r.Target, "embedded") {
			t.Fatalf("target %q, want the embedded cluster", r.Target)
		}
	})
}

func TestBenchEndpoints(t *testing.T) {
	addr := startCluster(t)
	out := mustRun(t, nil, "bench", "--endpoints", addr, "--json", "--workload", "get", "--clients", "2", "--duration", "500ms", "--keys", "20")
	var r benchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if r.Target != addr || r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("bench against %s: %+v", addr, r)
	}
}

// Failures during a run are counted and reported, and the run still ends
// on time.
func TestBenchCountsErrors(t *testing.T) {
	addr, stopAPI := startClusterAPI(t)
	time.AfterFunc(400*time.Millisecond, stopAPI)
	start := time.Now()
	code, out, errs := runCmd(t, nil, "bench", "--endpoints", addr, "--json", "--clients", "2", "--duration", "1500ms", "--timeout", "200ms")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("bench --duration 1500ms took %v", took)
	}
	if code != exitOK {
		t.Fatalf("exit %d, want 0 (some operations succeeded); stderr:\n%s", code, errs)
	}
	var r benchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if r.Ops == 0 || r.Errors == 0 || len(r.ErrorSamples) == 0 {
		t.Fatalf("want successes before the API stopped and failures after: %+v", r)
	}
	if !strings.Contains(errs, "operations failed") {
		t.Fatalf("stderr does not report the failures:\n%s", errs)
	}
}

func TestPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := summarize("put", lat, 2, 2*time.Second)
	want := opStats{Op: "put", measured: measured{Ops: 1000, Errors: 2, OpsPerSec: 500, P50Ms: 500, P95Ms: 950, P99Ms: 990, P999Ms: 999}}
	if s != want {
		t.Fatalf("summarize = %+v, want %+v", s, want)
	}
	if s := summarize("get", nil, 3, time.Second); s.Ops != 0 || s.Errors != 3 || s.P50Ms != 0 {
		t.Fatalf("empty summary: %+v", s)
	}
}
