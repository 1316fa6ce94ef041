package actors

import (
	"runtime"
	"testing"
	"time"
)

// waitGoroutines waits until runtime.NumGoroutine() satisfies ok, or fails.
func waitGoroutines(t *testing.T, what string, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if ok(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines", what, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGoroutinePoolReusesIdleGoroutines(t *testing.T) {
	p := newGoroutinePool()
	p.idle = 200 * time.Millisecond
	base := runtime.NumGoroutine()
	done := make(chan struct{})
	p.Schedule(func() { done <- struct{}{} })
	<-done
	pooled := waitGoroutines(t, "after the first run", func(n int) bool { return n == base+1 })
	for i := 0; i < 100; i++ {
		p.Schedule(func() { done <- struct{}{} })
		<-done
		// Let the worker get back to waiting before the next run.
		time.Sleep(100 * time.Microsecond)
	}
	if n := runtime.NumGoroutine(); n > pooled+1 {
		t.Fatalf("100 runs one after another left %d goroutines, want %d: the pool does not reuse its goroutine", n, pooled)
	}
	waitGoroutines(t, "after the idle timeout", func(n int) bool { return n <= base })
}

func TestGoroutinePoolNeverWaitsForABusyRun(t *testing.T) {
	p := newGoroutinePool()
	block := make(chan struct{})
	defer close(block)
	p.Schedule(func() { <-block })
	ran := make(chan struct{})
	p.Schedule(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a second run waited for the first, which blocks")
	}
}

// An embedded DB starts a stopped node again from the same props, and so
// on the same pool: the node must start and stop every time (a pool
// closed at the first stop made the second stop panic, and the node never
// closed its storage).
func TestNodeStartsAndStopsAgainFromTheSameProps(t *testing.T) {
	sys := newSystem(t)
	cfg := nodeConfig(sys, t.TempDir())
	stopped := make(chan error, 4)
	cfg.OnStopped = func(err error) { stopped <- err }
	started := make(chan error, 4)
	cfg.OnStart = func(err error) { started <- err }
	props, err := NewNodeProps(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		pid, err := sys.Root.SpawnNamed(props, NodeName(cfg.ID))
		if err != nil {
			t.Fatalf("round %d: spawn: %v", round, err)
		}
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("round %d: start: %v", round, err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("round %d: the node never started", round)
		}
		sys.Root.Stop(pid)
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("round %d: stopped with %v", round, err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("round %d: the node never stopped", round)
		}
	}
}
