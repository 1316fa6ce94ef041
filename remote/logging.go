package remote

import (
	"context"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
)

// NewLoggerFactory returns a logger factory for actor.WithLoggerFactory that
// sends protoactor's logs (actor system, remote, dead letters) to l, tagged
// component=protoactor and actor_system=<id>, instead of protoactor's
// coloured stderr logger:
//
//	sys := actor.NewActorSystem(actor.WithLoggerFactory(remote.NewLoggerFactory(logger)))
//
// protoactor logs routine events at INFO (start-up, every connection, dead
// letters), so its DEBUG and INFO records are passed on at DEBUG: they show
// only when l logs debug. WARN and ERROR pass unchanged; connection failures
// ("EndpointWriter failed to connect", "lost connection") are ERROR.
// protoactor logs actor panics at INFO only; use WatchFailures to see them.
// A nil l means slog.Default().
func NewLoggerFactory(l *slog.Logger) func(*actor.ActorSystem) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return func(sys *actor.ActorSystem) *slog.Logger {
		return slog.New(quietHandler{l.Handler()}).With(
			slog.String("component", "protoactor"),
			slog.String("actor_system", sys.ID),
		)
	}
}

// quietHandler passes records below WARN on at DEBUG.
type quietHandler struct{ h slog.Handler }

func quiet(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, quiet(l))
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = quiet(r.Level)
	return q.h.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{q.h.WithAttrs(as)}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.h.WithGroup(name)}
}

// WatchFailures logs every actor failure in sys (a panic in Receive, handled
// by a supervisor) to l at WARN, with the failing actor, the reason and the
// supervisor's directive; protoactor itself logs panics only at INFO. It is
// the one place failures are logged: protoactor publishes one event per
// failure, and supervisors (the nodes') log nothing of their own, so each
// failure makes one line. It returns a function that stops watching. A nil
// l means slog.Default().
//
// The event handler runs synchronously on the goroutine that handles the
// failure, so it only logs.
func WatchFailures(sys *actor.ActorSystem, l *slog.Logger) (stop func()) {
	if l == nil {
		l = slog.Default()
	}
	sub := sys.EventStream.Subscribe(func(evt any) {
		e, ok := evt.(*actor.SupervisorEvent)
		if !ok {
			return
		}
		l.Warn("actor failed",
			slog.String("actor", pidString(e.Child)),
			slog.Any("reason", e.Reason),
			slog.String("directive", e.Directive.String()),
		)
	})
	return func() { sys.EventStream.Unsubscribe(sub) }
}

func pidString(p *actor.PID) string {
	if p == nil {
		return ""
	}
	return p.GetAddress() + "/" + p.GetId()
}
