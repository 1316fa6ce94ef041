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
	p.close()
	waitGoroutines(t, "after close", func(n int) bool { return n <= base })
}

func TestGoroutinePoolNeverWaitsForABusyRun(t *testing.T) {
	p := newGoroutinePool()
	defer p.close()
	block := make(chan struct{})
	p.Schedule(func() { <-block })
	ran := make(chan struct{})
	p.Schedule(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a second run waited for the first, which blocks")
	}
	close(block)
}

func TestGoroutinePoolRunsWorkScheduledAfterClose(t *testing.T) {
	p := newGoroutinePool()
	p.close()
	ran := make(chan struct{})
	p.Schedule(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a run scheduled after close never ran")
	}
}
