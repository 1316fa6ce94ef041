package faults

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

func TestNodeOf(t *testing.T) {
	for _, c := range []struct {
		id   string
		want uint64
		ok   bool
	}{
		{"n3", 3, true},
		{"n3/apply", 3, true},
		{"n12/replicate-4", 12, true},
		{"future$1", 0, false},
		{"$7", 0, false},
		{"n", 0, false},
		{"nx", 0, false},
		{"n/apply", 0, false},
		{"node1", 0, false},
		{"n-1", 0, false},
	} {
		got, ok := nodeOf(actor.NewPID("nonhost", c.id))
		if got != c.want || ok != c.ok {
			t.Errorf("nodeOf(%q) = %d, %v; want %d, %v", c.id, got, ok, c.want, c.ok)
		}
	}
	if _, ok := nodeOf(nil); ok {
		t.Error("nodeOf(nil) reported a node")
	}
}
