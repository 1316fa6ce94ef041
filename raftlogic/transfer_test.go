package raftlogic

import (
	"errors"
	"testing"
)

// Raft thesis 3.10: leadership transfer.

func TestTransfer_3_10_TransfereeCaughtUpThenTimeoutNow(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"plain", func(*Config) {}},
		{"PreVote and CheckQuorum", func(c *Config) { c.PreVote, c.CheckQuorum = true, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, withConfig(tc.cfg))
			c.elect(1)
			c.tick(1)
			term := c.status(1).Term
			c.isolate(3)
			c.propose(1, "a", "b", "c")
			c.heal()
			// When MsgTimeoutNow leaves, node 3 must hold the leader's log.
			behindAtTimeoutNow := -1
			c.filter(1, 3, func(m Message) bool {
				if m.Type == MsgTimeoutNow {
					behindAtTimeoutNow = int(c.status(1).LastIndex - c.status(3).LastIndex)
				}
				return false
			})
			if err := c.node(1).TransferLeadership(3); err != nil {
				t.Fatal(err)
			}
			mark := len(c.sent)
			c.handleReady(1)
			if first := c.sent[mark:]; len(first) != 1 || first[0].Type != MsgApp || first[0].To != 3 {
				t.Fatalf("leader's first messages %+v, want one MsgApp to catch the transferee up", first)
			}
			c.stabilize()
			if behindAtTimeoutNow != 0 {
				t.Fatalf("MsgTimeoutNow sent with the transferee %d entries behind (-1: never sent)", behindAtTimeoutNow)
			}
			st := c.status(3)
			if st.Role != Leader || st.Term != term+1 {
				t.Fatalf("transferee: %+v, want leader of term %d", st, term+1)
			}
			for _, id := range []uint64{1, 2} {
				if st := c.status(id); st.Role != Follower || st.Lead != 3 || st.Term != term+1 {
					t.Errorf("node %d: %+v, want a follower of 3 in term %d", id, st, term+1)
				}
			}
		})
	}
}

func TestTransfer_3_10_ProposalsRefusedDuringTransfer(t *testing.T) {
	c := newCluster(t, 3)
	c.elect(1)
	c.isolate(3)
	if err := c.node(1).TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	if st := c.status(1); st.Transferee != 3 || st.Role != Leader {
		t.Fatalf("leader: %+v, want transferring to 3", st)
	}
	last := c.status(1).LastIndex
	_, _, err := c.node(1).Propose([]byte("x"))
	var nle *NotLeaderError
	if !errors.As(err, &nle) || !errors.Is(err, ErrTransferInProgress) || errors.Is(err, ErrNotLeader) {
		t.Fatalf("Propose during a transfer: %v, want a *NotLeaderError matching ErrTransferInProgress only", err)
	}
	if nle.Leader != 3 || !nle.Transferring {
		t.Fatalf("NotLeaderError %+v, want it to name the transferee 3", nle)
	}
	if st := c.status(1); st.LastIndex != last {
		t.Fatalf("a refused proposal was appended: last index %d, was %d", st.LastIndex, last)
	}
	// Reads are still served by the leader meanwhile.
	if err := c.node(1).ReadIndex([]byte("r")); err != nil {
		t.Fatalf("ReadIndex during a transfer: %v", err)
	}
}

func TestTransfer_3_10_UnreachableTransfereeAbandonedAfterElectionTimeout(t *testing.T) {
	c := newCluster(t, 3)
	c.elect(1)
	c.tick(1)
	c.isolate(3)
	if err := c.node(1).TransferLeadership(3); err != nil {
		t.Fatal(err)
	}
	c.stabilize()
	for i := 1; i < testElectionTick; i++ {
		c.tick(1, 2)
		if _, _, err := c.node(1).Propose([]byte("x")); !errors.Is(err, ErrTransferInProgress) {
			t.Fatalf("after %d ticks Propose: %v, want ErrTransferInProgress", i, err)
		}
	}
	c.tick(1, 2)
	if st := c.status(1); st.Transferee != None || st.Role != Leader || st.Term != 1 {
		t.Fatalf("after an election timeout: %+v, want the transfer abandoned, still leader of term 1", st)
	}
	idx := c.propose(1, "y")
	c.tick(1)
	if st := c.status(1); st.Commit != idx {
		t.Fatalf("proposal after the abandoned transfer: commit %d, want %d", st.Commit, idx)
	}
}
