package raftlogic

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// Raft thesis 6.2 and 4.2.3: CheckQuorum and the leader lease.

func TestCheckQuorum_6_2_LeaderWithoutQuorumStepsDown(t *testing.T) {
	c := newCluster(t, 3, withConfig(func(cfg *Config) { cfg.CheckQuorum = true }))
	c.elect(1)
	// Control: a connected leader stays through many check periods.
	for range 10 * testElectionTick {
		c.tick(1, 2, 3)
	}
	if st := c.status(1); st.Role != Leader || st.Term != 1 {
		t.Fatalf("connected leader: %+v, want still leader of term 1", st)
	}
	c.isolate(1)
	ticks := 0
	for c.status(1).Role == Leader {
		if ticks == 2*testElectionTick {
			t.Fatalf("leader cut off from its quorum still leads after %d ticks", ticks)
		}
		c.tick(1)
		ticks++
	}
	// It stepped down at the end of the first check period in which it
	// heard from no quorum: at most 2*ElectionTick, the longest election
	// timeout of its followers.
	if ticks < testElectionTick {
		t.Fatalf("stepped down after %d ticks, before a whole check period", ticks)
	}
	st := c.status(1)
	if st.Role != Follower || st.Lead != None || st.Term != 1 {
		t.Fatalf("after stepping down: %+v, want a follower of term 1 with no leader", st)
	}
	if _, _, err := c.node(1).Propose([]byte("x")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Propose after stepping down: %v, want ErrNotLeader", err)
	}
	t.Logf("stepped down %d ticks after losing its quorum", ticks)
}

func TestCheckQuorum_4_2_3_FollowersInLeaseIgnoreVotes(t *testing.T) {
	for _, checkQuorum := range []bool{true, false} {
		t.Run(fmt.Sprintf("CheckQuorum=%v", checkQuorum), func(t *testing.T) {
			c := newCluster(t, 3, withConfig(func(cfg *Config) { cfg.CheckQuorum = checkQuorum }))
			c.elect(1)
			c.tick(1)
			// Node 3, cut off from the leader, asks for votes in term 5
			// with a log as good as anyone's.
			st3 := c.status(3)
			vote := Message{Type: MsgVote, From: 3, Term: 5, Index: st3.LastIndex, LogTerm: 1}
			for _, id := range []uint64{1, 2} {
				vote.To = id
				before := c.status(id)
				mustStep(t, c.node(id), vote)
				rd := advance(c.node(id))
				st := c.status(id)
				if checkQuorum {
					if !reflect.DeepEqual(st, before) || len(rd.Messages) != 0 {
						t.Fatalf("node %d in lease: %+v and answered %+v, want the vote ignored", id, st, rd.Messages)
					}
				} else if st.Term != 5 || st.Vote != 3 {
					// Without the lease the disruptive vote succeeds.
					t.Fatalf("node %d without CheckQuorum: %+v, want term 5 and a vote for 3", id, st)
				}
			}
			if !checkQuorum {
				return
			}
			// Out of lease (no word from the leader for an election
			// timeout), node 2 considers the request.
			c.isolate(2)
			for range testElectionTick {
				c.tick(2)
			}
			vote.To = 2
			mustStep(t, c.node(2), vote)
			if st := c.status(2); st.Term != 5 || st.Vote != 3 {
				t.Fatalf("node 2 out of lease: %+v, want term 5 and a vote for 3", st)
			}
		})
	}
}
