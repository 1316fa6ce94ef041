package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDemoRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, t.TempDir()); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"worker 1:", "worker 2:", "summary:", "reopened the database", "every key reads the same"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(strings.ToLower(s), "panic") {
		t.Errorf("output mentions a panic:\n%s", s)
	}
	if n := strings.Count(s, " -> "); n != 2*opsPerWorker {
		t.Errorf("%d operations reported, want %d:\n%s", n, 2*opsPerWorker, s)
	}
}
