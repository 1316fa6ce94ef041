package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/config"
	"google.golang.org/grpc"
)

// startCluster opens an embedded 3-node cluster and serves its client API
// on a loopback port, which it returns.
func startCluster(t *testing.T) string {
	t.Helper()
	addr, _ := startClusterAPI(t)
	return addr
}

// startClusterAPI is startCluster that also returns a function that stops
// serving the client API (the cluster goes on). It returns once a node
// leads, so that a test's first request is not spent waiting for the first
// election (500 ms to 1 s with the default timing).
func startClusterAPI(t *testing.T) (addr string, stopAPI func()) {
	t.Helper()
	cfg := config.Default()
	cfg.PersistPath = t.TempDir()
	level := slog.LevelError
	if os.Getenv("RAFTKV_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	db, err := raftkv.Open(raftkv.WithConfig(cfg), raftkv.WithLogger(logger))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	gs := grpc.NewServer(raftkv.ClientAPIServerOptions(db)...)
	raftkv.RegisterClientAPI(gs, db)
	go gs.Serve(lis)
	t.Cleanup(func() {
		gs.Stop()
		db.Close()
	})
	waitLeader(t, db)
	return lis.Addr().String(), gs.Stop
}

// waitLeader polls Status until one reachable node leads.
func waitLeader(t *testing.T, db *raftkv.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := db.Status(context.Background())
		for _, s := range st {
			if s.Reachable && s.Role == "leader" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 10s")
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// runCmd runs one command line with stdin and returns its exit code and
// what it wrote.
func runCmd(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, bytes.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// mustRun runs a command that must succeed and returns its stdout.
func mustRun(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	code, out, errs := runCmd(t, stdin, args...)
	if code != exitOK {
		t.Fatalf("raftkv %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestKVCommands(t *testing.T) {
	t.Setenv(endpointsEnv, "")
	addr := startCluster(t)
	ep := "--endpoints=" + deadAddr(t) + "," + addr // a dead endpoint first: the client moves on

	t.Run("put and get round trip", func(t *testing.T) {
		if out := mustRun(t, nil, "put", ep, "greeting", "hello"); out != "" {
			t.Fatalf("put wrote %q to stdout; want nothing", out)
		}
		if out := mustRun(t, nil, "get", ep, "greeting"); out != "hello" {
			t.Fatalf("get = %q, want %q (no newline)", out, "hello")
		}
		if out := mustRun(t, nil, "get", "--newline", ep, "greeting"); out != "hello\n" {
			t.Fatalf("get --newline = %q, want %q", out, "hello\n")
		}
	})

	t.Run("binary value via stdin", func(t *testing.T) {
		var value []byte
		for i := range 256 {
			value = append(value, byte(i))
		}
		value = append(value, "\r\n\x00trailing newline\n"...)
		if out := mustRun(t, value, "put", ep, "blob"); out != "" {
			t.Fatalf("put wrote %q to stdout", out)
		}
		if out := mustRun(t, nil, "get", ep, "blob"); out != string(value) {
			t.Fatalf("get blob = %q, want %q", out, value)
		}
		// An empty stdin stores an empty value.
		mustRun(t, []byte{}, "put", ep, "empty")
		if out := mustRun(t, nil, "get", ep, "empty"); out != "" {
			t.Fatalf("get empty = %q", out)
		}
	})

	t.Run("update and remove", func(t *testing.T) {
		mustRun(t, nil, "put", ep, "u", "1")
		mustRun(t, []byte("2"), "update", ep, "u")
		if out := mustRun(t, nil, "get", ep, "u"); out != "2" {
			t.Fatalf("get after update = %q, want 2", out)
		}
		mustRun(t, nil, "remove", ep, "u")
		if code, out, _ := runCmd(t, nil, "get", ep, "u"); code != exitNotFound || out != "" {
			t.Fatalf("get after remove: exit %d, stdout %q; want 3 and nothing", code, out)
		}
	})

	t.Run("missing key exits 3", func(t *testing.T) {
		for _, args := range [][]string{
			{"get", ep, "missing"},
			{"update", ep, "missing", "x"},
			{"remove", ep, "missing"},
		} {
			code, out, errs := runCmd(t, nil, args...)
			if code != exitNotFound {
				t.Errorf("%v: exit %d, want 3; stderr: %s", args, code, errs)
			}
			if out != "" {
				t.Errorf("%v: stdout %q, want nothing", args, out)
			}
			if !strings.Contains(errs, `"missing" not found`) {
				t.Errorf("%v: stderr %q does not say the key was not found", args, errs)
			}
		}
		// update wrote nothing.
		if code, _, _ := runCmd(t, nil, "get", ep, "missing"); code != exitNotFound {
			t.Errorf("get after failed update: exit %d, want 3", code)
		}
	})

	t.Run("flags anywhere and -- before dash values", func(t *testing.T) {
		mustRun(t, nil, "put", "dash", ep, "--timeout", "3s", "--", "-5")
		if out := mustRun(t, nil, "get", "dash", ep); out != "-5" {
			t.Fatalf("get dash = %q, want -5", out)
		}
		mustRun(t, nil, "put", ep, "--", "-k", "v")
		if out := mustRun(t, nil, "get", ep, "--", "-k"); out != "v" {
			t.Fatalf("get -k = %q, want v", out)
		}
	})

	t.Run("endpoints from the environment", func(t *testing.T) {
		t.Setenv(endpointsEnv, addr)
		mustRun(t, nil, "put", "envkey", "v")
		if out := mustRun(t, nil, "get", "envkey"); out != "v" {
			t.Fatalf("get envkey = %q", out)
		}
	})

	t.Run("bad keys", func(t *testing.T) {
		for _, args := range [][]string{
			{"put", ep, "", "x"},
			{"get", ep, ""},
			{"remove", ep, ""},
		} {
			code, out, errs := runCmd(t, nil, args...)
			if code != exitUsage || out != "" || !strings.Contains(errs, "key is empty") {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and a message about the empty key", args, code, out, errs)
			}
		}
		long := strings.Repeat("k", 64001)
		if code, _, errs := runCmd(t, nil, "put", ep, long, "x"); code != exitUsage || !strings.Contains(errs, "at most") {
			t.Errorf("put long key: exit %d, stderr %q", code, errs)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	t.Setenv(endpointsEnv, "")
	ep := "--endpoints=127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: raftkv"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"get", "k"}, "no endpoints"},
		{[]string{"get", "--", "k"}, "no endpoints"},
		{[]string{"status"}, "no endpoints"},
		{[]string{"get", ep}, "missing KEY"},
		{[]string{"put", ep}, "missing KEY"},
		{[]string{"get", ep, "a", "b"}, "too many arguments"},
		{[]string{"put", ep, "a", "b", "c"}, "too many arguments"},
		{[]string{"get", "--bogus", ep, "k"}, "flag provided but not defined"},
		{[]string{"get", "--endpoints", "nocolon", "k"}, `endpoint "nocolon" is not host:port`},
		{[]string{"get", ep, "--timeout", "0s", "k"}, "--timeout must be positive"},
		{[]string{"status", ep, "extra"}, "unexpected arguments"},
		{[]string{"transfer-leader"}, "no endpoints"},
		{[]string{"transfer-leader", ep, "2"}, "unexpected arguments"},
		{[]string{"transfer-leader", ep, "--to", "two"}, `invalid value "two" for flag -to`},
		{[]string{"transfer-leader", ep, "--to", "-1"}, `invalid value "-1" for flag -to`},
		{[]string{"bench", "--workload", "scan"}, "--workload must be put, get or mixed"},
		{[]string{"bench", "--clients", "0"}, "--clients must be at least 1"},
		{[]string{"bench", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"bench", "--keys", "0"}, "--keys must be at least 1"},
	} {
		code, out, errs := runCmd(t, nil, tc.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want 2; stderr: %s", tc.args, code, errs)
		}
		if out != "" {
			t.Errorf("%q: stdout %q, want nothing", tc.args, out)
		}
		if !strings.Contains(errs, tc.want) {
			t.Errorf("%q: stderr %q does not contain %q", tc.args, errs, tc.want)
		}
	}
	for _, args := range [][]string{{"help"}, {"get", "-h"}, {"put", "--help"}, {"status", "-h"}, {"transfer-leader", "-h"}, {"bench", "-h"}, {"serve", "-h"}} {
		code, out, errs := runCmd(t, nil, args...)
		if code != exitOK || !strings.Contains(out+errs, "usage: raftkv") {
			t.Errorf("%q: exit %d, output %q; want 0 and the usage", args, code, out+errs)
		}
	}
}

func TestUnreachableEndpoints(t *testing.T) {
	dead := deadAddr(t)
	for _, args := range [][]string{
		{"get", "k"},
		{"put", "k", "v"},
		{"update", "k", "v"},
		{"remove", "k"},
		{"status"},
		{"transfer-leader", "--to", "2"},
	} {
		start := time.Now()
		code, out, errs := runCmd(t, nil, append(args, "--endpoints", dead, "--timeout", "500ms")...)
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%v: took %v with --timeout 500ms", args, took)
		}
		if code != exitFailure || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want 1 and nothing", args, code, out)
		}
		if !strings.Contains(errs, "cannot reach the cluster") || !strings.Contains(errs, dead) {
			t.Errorf("%v: stderr %q does not name the problem and the endpoint", args, errs)
		}
	}
}
