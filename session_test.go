package raftkv

import (
	"context"
	"errors"
	"testing"

	"github.com/raftkv/raftkv/internal/apiwire"
)

// The session protocol both writers follow: sessions are registered when
// the pool is empty; a session returns to the pool only after a final
// answer; a write refused because its session expired is sent again under
// a new session only if no copy of it can have run, and otherwise ends as
// ErrOutcomeUnknown, never run twice.
func TestSessionPoolWrite(t *testing.T) {
	var registered []uint64
	p := sessionPool{register: func(context.Context) (uint64, error) {
		id := uint64(100 + len(registered))
		registered = append(registered, id)
		return id, nil
	}}
	ctx := context.Background()
	type call struct{ id, seq uint64 }
	var calls []call
	record := func(final bool, err error) func(context.Context, uint64, uint64) (bool, error) {
		return func(_ context.Context, id, seq uint64) (bool, error) {
			calls = append(calls, call{id, seq})
			return final, err
		}
	}
	if err := p.write(ctx, record(true, nil)); err != nil {
		t.Fatal(err)
	}
	if err := p.write(ctx, record(true, ErrNotFound)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a final answer is returned as is: %v", err)
	}
	if len(registered) != 1 || calls[0].id != registered[0] || calls[1].id != calls[0].id || calls[0].seq != 1 || calls[1].seq != 2 {
		t.Fatalf("one registered session, reused after a final answer: registered %v, calls %+v", registered, calls)
	}

	// No final answer: the session is not reused.
	if err := p.write(ctx, record(false, apiwire.OutcomeUnknown(ErrUnavailable))); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("got %v", err)
	}
	if err := p.write(ctx, record(true, nil)); err != nil {
		t.Fatal(err)
	}
	if calls[3].id == calls[2].id || calls[3].seq != 1 || len(registered) != 2 {
		t.Fatalf("a session without a final answer was reused: %+v", calls)
	}

	// Expired while idle, and no copy can have run: sent again under a
	// newly registered session.
	calls = nil
	n := 0
	err := p.write(ctx, func(_ context.Context, id, seq uint64) (bool, error) {
		calls = append(calls, call{id, seq})
		if n++; n == 1 {
			return true, ErrSessionExpired
		}
		return true, nil
	})
	if err != nil || len(calls) != 2 || calls[0].seq < 2 || calls[1].seq != 1 || calls[1].id == calls[0].id || len(registered) != 3 {
		t.Fatalf("idle expired session: err %v, calls %+v, registered %v", err, calls, registered)
	}

	// Expired after a copy may have run: never sent again.
	calls = nil
	err = p.write(ctx, record(true, apiwire.OutcomeUnknown(ErrSessionExpired)))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrSessionExpired) || len(calls) != 1 {
		t.Fatalf("expired after a possibly applied copy: err %v, calls %+v; want one call and ErrOutcomeUnknown", err, calls)
	}

	// A registration that fails sends nothing.
	p.free = nil
	p.register = func(context.Context) (uint64, error) { return 0, ErrUnavailable }
	calls = nil
	if err := p.write(ctx, record(true, nil)); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) || len(calls) != 0 {
		t.Fatalf("failed registration: err %v, calls %+v", err, calls)
	}
}
