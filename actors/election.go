package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// electionActor is the node's clock: it sends its parent a tick every
// interval. Election and heartbeat timeouts are counted by raftlogic in
// ticks, so this actor is the only place wall-clock time enters a node, and
// a test can tick a node by hand instead.
//
// It uses its own time.Ticker rather than protoactor's scheduler package,
// whose cancel flag is read without synchronisation (a data race under
// -race at the pinned version).
type electionActor struct {
	interval time.Duration
	stop     chan struct{}
}

func (e *electionActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		e.startTicking(ctx)
	case *actor.Stopping, *actor.Restarting:
		e.stopTicking()
	}
}

func (e *electionActor) startTicking(ctx actor.Context) {
	stop := make(chan struct{})
	e.stop = stop
	// Sends go through the root context: an actor's context must not be
	// used from another goroutine.
	root, parent, every := ctx.ActorSystem().Root, ctx.Parent(), e.interval
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				root.Send(parent, &tick{})
			case <-stop:
				return
			}
		}
	}()
}

func (e *electionActor) stopTicking() {
	if e.stop != nil {
		close(e.stop)
		e.stop = nil
	}
}
