//go:build linux

package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raftkv/raftkv"
)

// leaderTerm returns the leader of the highest term and that term.
func leaderTerm(vs []nodeView) (id, term uint64) {
	id = leaderOf(vs)
	for _, v := range vs {
		if v.id == id {
			term = v.Term
		}
	}
	return id, term
}

// A transfer asked of a follower's process reaches the leader in another
// process, which answers once it sees the handover. The follower's own
// news of the new leader must not make it re-send (with 0, a second
// request would move leadership again, and the term would show it); that
// needs the news to come between two of the router's checks and before
// the answer, so this test catches such a re-send only now and then.
func TestTransferLeadershipAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a 3-process cluster")
	}
	// 500 ms election timeouts: no election here but the transfers' own.
	c := newCluster(t, keptDir(t), clusterOpts{nodes: 3, electionTicks: 50})
	c.startAll()
	old := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, oldTerm := leaderTerm(c.views(ctx))
	via := old%3 + 1 // a follower, whose process forwards to the leader
	cl, err := raftkv.Dial(ctx, c.node(via).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	if err := cl.TransferLeadership(ctx, 0); err != nil {
		t.Fatalf("TransferLeadership(0) through node %d, leader %d: %v", via, old, err)
	}
	now, term := leaderTerm(c.views(ctx))
	if now == old || now == 0 || term != oldTerm+1 {
		t.Fatalf("after one transfer from leader %d (term %d): leader %d in term %d; want another node, one term later", old, oldTerm, now, term)
	}

	if err := cl.TransferLeadership(ctx, old); err != nil {
		t.Fatalf("TransferLeadership(%d) through node %d, leader %d: %v", old, via, now, err)
	}
	if back, t2 := leaderTerm(c.views(ctx)); back != old || t2 != term+1 {
		t.Fatalf("after transferring back: leader %d in term %d; want %d in term %d", back, t2, old, term+1)
	}
	if err := cl.TransferLeadership(ctx, 99); !errors.Is(err, raftkv.ErrInvalidTransfer) {
		t.Fatalf("TransferLeadership(99): %v, want ErrInvalidTransfer", err)
	}
	if err := cl.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put after the transfers: %v", err)
	}
}
