package kvstate

import (
	"bytes"
	"testing"
)

// The session cache must never answer from a session the stored state no
// longer has: after a Restore rolls client 1 back to seq 1, its seq 2 is new
// again and must execute, not be answered as a duplicate.
func TestSessionCacheDoesNotSurviveRestore(t *testing.T) {
	a, _, _ := newState(t, Options{})
	mustApply(t, a, register(1, 1), ent(2, 1, put(1, 1, "k", "one")))
	var img bytes.Buffer
	if _, _, err := a.Snapshot(&img); err != nil {
		t.Fatal(err)
	}

	b, _, _ := newState(t, Options{})
	mustApply(t, b, register(1, 1), ent(2, 1, put(1, 1, "k", "one")), ent(3, 1, put(1, 2, "k", "two")))
	if _, _, err := b.Restore(bytes.NewReader(img.Bytes())); err != nil {
		t.Fatal(err)
	}
	mustGet(t, b, "k", "one")
	res := mustApply(t, b, ent(3, 1, put(1, 2, "k", "again")))
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("seq 2 after restore: %+v", res)
	}
	mustGet(t, b, "k", "again")
}

// A duplicate is recognised from the cache within one batch and across
// batches, exactly as from storage.
func TestSessionCacheAnswersDuplicates(t *testing.T) {
	s, db, _ := newState(t, Options{})
	mustApply(t, s, register(1, 1), ent(2, 1, put(1, 1, "k", "v1")), ent(3, 1, put(1, 1, "k", "dup-in-batch")))
	mustGet(t, s, "k", "v1")
	mustApply(t, s, ent(4, 1, put(1, 1, "k", "dup-next-batch")))
	mustGet(t, s, "k", "v1")
	// A fresh State on the same data (empty cache) agrees.
	s2, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s2, ent(5, 1, put(1, 1, "k", "dup-after-reopen")))
	mustGet(t, s2, "k", "v1")
}
