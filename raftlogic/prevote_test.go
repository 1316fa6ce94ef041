package raftlogic

import "testing"

// Raft thesis 9.6: PreVote.

// partitionAndRejoin runs the thesis's disruptive-server scenario: node 3 is
// cut off while the others keep committing, times out many times, then
// rejoins. It returns the cluster and node 3's term while cut off.
func partitionAndRejoin(t *testing.T, preVote bool) (c *cluster, cutTerm uint64) {
	t.Helper()
	c = newCluster(t, 3, withConfig(func(cfg *Config) { cfg.PreVote = preVote }))
	c.elect(1)
	c.tick(1)
	c.isolate(3)
	c.propose(1, "while 3 is away")
	mark := len(c.sent)
	for range 10 * testElectionTick {
		c.tick(1, 2, 3)
	}
	campaigns := count(c.sent[mark:], func(m Message) bool {
		return m.From == 3 && (m.Type == MsgPreVote || m.Type == MsgVote)
	})
	if campaigns == 0 {
		t.Fatalf("isolated node 3 never campaigned")
	}
	cutTerm = c.status(3).Term
	c.heal()
	for range 5 * testElectionTick {
		c.tick(1, 2, 3)
	}
	return c, cutTerm
}

func TestPreVote_9_6_PartitionedNodeDoesNotDisruptOnRejoin(t *testing.T) {
	c, cutTerm := partitionAndRejoin(t, true)
	if cutTerm != 1 {
		t.Fatalf("isolated pre-candidate raised its term to %d, want 1", cutTerm)
	}
	if hs := c.nodes[3].disk.hs; hs.Term != 1 || hs.Vote != 1 {
		t.Fatalf("isolated node persisted %+v, want term 1 and its vote for 1 unchanged", hs)
	}
	for _, id := range c.ids {
		if st := c.status(id); st.Term != 1 || st.Lead != 1 {
			t.Errorf("node %d after rejoining: %+v, want term 1 under leader 1", id, st)
		}
	}
	if st := c.status(1); st.Role != Leader {
		t.Fatalf("leader deposed: %+v", st)
	}
	c.requireSameLog(3, 1)
}

// Contrast: without PreVote the same partition raises node 3's term, and
// its return deposes the working leader.
func TestPreVote_9_6_WithoutPreVotePartitionedNodeRaisesTerm(t *testing.T) {
	c, cutTerm := partitionAndRejoin(t, false)
	if cutTerm < 5 {
		t.Fatalf("isolated candidate at term %d after 10 election timeouts, want it well above 1", cutTerm)
	}
	l := c.leaders()
	if len(l) != 1 {
		t.Fatalf("leaders %v after rejoining, want one", l)
	}
	if st := c.status(l[0]); st.Term < cutTerm {
		t.Fatalf("leader of term %d, want a term at least %d: the rejoining node forced a new election", st.Term, cutTerm)
	}
	c.requireSameLog(3, l[0])
}
