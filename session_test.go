package raftkv

import (
	"errors"
	"testing"
)

// The session protocol both writers follow: a session returns to the pool
// only after a final answer, and a write refused because its idle session
// expired is sent again under a fresh session starting at seq 1.
func TestSessionPoolWrite(t *testing.T) {
	var p sessionPool
	type call struct{ id, seq uint64 }
	var calls []call
	record := func(final bool, err error) func(id, seq uint64) (bool, error) {
		return func(id, seq uint64) (bool, error) {
			calls = append(calls, call{id, seq})
			return final, err
		}
	}
	if err := p.write(record(true, nil)); err != nil {
		t.Fatal(err)
	}
	if err := p.write(record(true, ErrNotFound)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a final answer is returned as is: %v", err)
	}
	if calls[0].id != calls[1].id || calls[1].seq != 2 {
		t.Fatalf("after a final answer the session goes on: %+v", calls)
	}

	// No final answer: the session is not reused.
	if err := p.write(record(false, ErrUnavailable)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	if err := p.write(record(true, nil)); err != nil {
		t.Fatal(err)
	}
	if calls[3].id == calls[2].id || calls[3].seq != 1 {
		t.Fatalf("a session without a final answer was reused: %+v", calls)
	}

	// Expired with seq > 1: retried under a fresh session at seq 1.
	calls = nil
	n := 0
	err := p.write(func(id, seq uint64) (bool, error) {
		calls = append(calls, call{id, seq})
		if n++; n == 1 {
			return true, ErrSessionExpired
		}
		return true, nil
	})
	if err != nil || len(calls) != 2 || calls[0].seq < 2 || calls[1].seq != 1 || calls[1].id == calls[0].id {
		t.Fatalf("expired session: err %v, calls %+v", err, calls)
	}
}
