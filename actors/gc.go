package actors

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/persist"
)

// gcActor reclaims the disk space of deleted and overwritten values in the
// node's two databases (persist.Collector). It works on its own goroutine
// because a collection can take seconds of disk work; the node and apply
// actors only wait for it while it flushes memtables, which holds off their
// writes briefly (see persist.NewCollector).
type gcActor struct {
	collectors map[string]*persist.Collector
	log        *slog.Logger
}

func (g *gcActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *collectGarbage:
		g.collect()
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
