package actors

import (
	"testing"
	"time"
)

// mostCaughtUp picks, among peers heard from in this term within an
// election timeout, the one that acknowledged the most (lowest id on a
// tie), and never the leader itself.
func TestMostCaughtUp(t *testing.T) {
	now := time.Now()
	stale := now.Add(-time.Second) // the election timeout below is 100 ms
	cases := []struct {
		name string
		acks map[uint64]peerAck
		want uint64
	}{
		{"none", nil, 0},
		{"highest match", map[uint64]peerAck{2: {term: 5, match: 7, at: now}, 3: {term: 5, match: 9, at: now}}, 3},
		{"tie: lowest id", map[uint64]peerAck{3: {term: 5, match: 9, at: now}, 2: {term: 5, match: 9, at: now}}, 2},
		{"stale peer skipped", map[uint64]peerAck{2: {term: 5, match: 7, at: now}, 3: {term: 5, match: 9, at: stale}}, 2},
		{"older term skipped", map[uint64]peerAck{2: {term: 5, match: 7, at: now}, 3: {term: 4, match: 9, at: now}}, 2},
		{"all stale", map[uint64]peerAck{2: {term: 5, match: 7, at: stale}}, 0},
		{"self never", map[uint64]peerAck{1: {term: 5, match: 99, at: now}, 2: {term: 5, match: 1, at: now}}, 2},
		{"match 0 still counts", map[uint64]peerAck{2: {term: 5, at: now}}, 2},
		{"learner never", map[uint64]peerAck{2: {term: 5, match: 3, at: now}, 4: {term: 5, match: 99, at: now}}, 2},
	}
	for _, c := range cases {
		n := &nodeActor{cfg: NodeConfig{ID: 1, ElectionTicks: 10, TickInterval: 10 * time.Millisecond}, acks: c.acks}
		if got := n.mostCaughtUp(5, []uint64{1, 2, 3}); got != c.want {
			t.Errorf("%s: mostCaughtUp = %d, want %d", c.name, got, c.want)
		}
	}
}
