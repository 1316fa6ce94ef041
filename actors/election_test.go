package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestElectionActorTicksParentUntilStopped(t *testing.T) {
	sys := newSystem(t)
	const interval = 10 * time.Millisecond
	start := time.Now()
	_, child, rec := spawnProbe(t, sys, "", probeOpts{
		child:     func() actor.Actor { return &electionActor{interval: interval} },
		childName: "election",
	})

	time.Sleep(30 * interval)
	ticks := count[*tick](rec)
	elapsed := time.Since(start)
	// A time.Ticker never fires more often than its interval; it may fire
	// less often on a loaded machine, but it does fire.
	if ticks == 0 {
		t.Fatalf("no tick in %v at an interval of %v", elapsed, interval)
	}
	if limit := int(elapsed/interval) + 2; ticks > limit {
		t.Fatalf("%d ticks in %v at an interval of %v; at most %d expected", ticks, elapsed, interval, limit)
	}
	for _, m := range rec.snapshot() {
		if _, ok := m.(*tick); !ok {
			t.Fatalf("the parent received %T besides ticks", m)
		}
	}

	if err := sys.Root.StopFuture(child).Wait(); err != nil {
		t.Fatalf("stop election actor: %v", err)
	}
	// A tick already on its way when the actor stopped may still land.
	time.Sleep(5 * interval)
	after := count[*tick](rec)
	time.Sleep(20 * interval)
	if got := count[*tick](rec); got != after {
		t.Fatalf("%d ticks arrived after the election actor stopped", got-after)
	}
}
