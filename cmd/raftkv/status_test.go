package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	addr := startCluster(t)
	ep := "--endpoints=" + addr

	// The cluster elects a leader shortly after it starts; wait for it.
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		out = mustRun(t, nil, "status", ep)
		if strings.Count(out, " leader ") == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("status printed %d lines, want a header and 3 nodes:\n%s", len(lines), out)
	}
	for _, col := range []string{"ID", "PEER ADDRESS", "CLIENT ADDRESS", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LOG SIZE", "SNAPSHOT", "DISK", "FREE", "REACHABLE"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	leaders := 0
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 13 {
			t.Fatalf("row %q has %d fields, want 13", line, len(f))
		}
		if f[0] != string(rune('1'+i)) || f[12] != "yes" || !strings.HasSuffix(f[10], "B") {
			t.Errorf("row %q: want node %d, reachable", line, i+1)
		}
		if f[3] == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders in\n%s", leaders, out)
	}

	var nodes []map[string]any
	js := mustRun(t, nil, "status", "--json", ep)
	if err := json.Unmarshal([]byte(js), &nodes); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js)
	}
	if len(nodes) != 3 {
		t.Fatalf("status --json: %d nodes, want 3", len(nodes))
	}
	leaders = 0
	for _, n := range nodes {
		for _, k := range []string{"id", "peer_address", "client_address", "reachable", "role", "term", "leader", "commit", "applied", "first_index", "last_index", "log_size", "snapshot_index", "disk_bytes", "disk_free_bytes"} {
			if _, ok := n[k]; !ok {
				t.Errorf("node %v lacks %q", n, k)
			}
		}
		if n["role"] == "leader" {
			leaders++
		}
		if n["reachable"] != true || n["log_size"].(float64) < 1 || n["disk_bytes"].(float64) < 1 || n["disk_free_bytes"].(float64) < 1 {
			t.Errorf("node %v: want reachable with a non-empty log, disk use and free space", n)
		}
	}
	if leaders != 1 {
		t.Fatalf("status --json shows %d leaders:\n%s", leaders, js)
	}
}
