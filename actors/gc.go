package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/persist"
)

// gcActor reclaims the disk space of deleted and overwritten values in the
// node's two databases (persist.Collector). It works on its own goroutine
// because a collection can take seconds of disk work; the node and apply
// actors only wait for it while it flushes memtables, which holds off their
// writes briefly (see persist.NewCollector).
//
// It collects after each log compaction (the node asks), and at least every
// gcIdleInterval: a burst of writes that ends leaves garbage that no later
// compaction would come to reclaim, and Collector's own rate limit may have
// deferred the last of it.
type gcActor struct {
	collectors map[string]*persist.Collector
	log        *slog.Logger
	timer      *time.Timer
}

// gcIdleInterval is the longest a node goes without a collection.
const gcIdleInterval = 10 * time.Second

func (g *gcActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		// The timer sends through the root context: an actor's context must
		// not be used from another goroutine.
		root, self := ctx.ActorSystem().Root, ctx.Self()
		g.timer = time.AfterFunc(gcIdleInterval, func() { root.Send(self, &collectGarbage{}) })
	case *collectGarbage:
		g.collect()
		g.timer.Reset(gcIdleInterval)
	case *actor.Stopping, *actor.Restarting:
		g.timer.Stop()
	}
}

func (g *gcActor) collect() {
	for name, c := range g.collectors {
		r, err := c.Collect()
		if err != nil {
			// Not fatal: the space is reclaimed on a later attempt, and a
			// failing database shows up on its write path anyway.
			g.log.Warn("value-log GC failed", "db", name, "err", err)
			continue
		}
		if r.Rewrites > 0 || r.Flushed {
			g.log.Debug("value-log GC", "db", name, "rewrites", r.Rewrites, "flushed", r.Flushed,
				"vlog_before", r.Before, "vlog_after", r.After)
		}
	}
}
