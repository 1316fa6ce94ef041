package raftlogic

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// Raft thesis 6.4: linearizable reads by ReadIndex.

func isMsgApp(m Message) bool { return m.Type == MsgApp }

func readCtxs(rs []ReadState) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.RequestCtx)
	}
	return out
}

func TestRead_6_4_NewLeaderWaitsForCommitInItsTerm(t *testing.T) {
	// Index 2 is committed in term 1. Node 1 wins term 2, but its no-op
	// cannot reach anyone yet, so it does not know the current commit index.
	c := newCluster(t, 3, withLog(1, 1, 2, 1, 1), withLog(2, 1, 2, 1, 1), withLog(3, 1, 2, 1, 1))
	c.filter(1, 2, isMsgApp)
	c.filter(1, 3, isMsgApp)
	c.elect(1)
	if st := c.status(1); st.Commit != 2 || st.Term != 2 {
		t.Fatalf("setup: %+v", st)
	}
	if err := c.node(1).ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	// Heartbeats get through and are answered by a quorum: leadership is
	// confirmed, but the read index is not known yet.
	for range 5 {
		c.tick(1)
	}
	if rs := c.nodes[1].reads; len(rs) != 0 {
		t.Fatalf("read answered %+v before the leader committed an entry of its term", rs)
	}
	c.heal()
	c.tick(1)
	rs := c.nodes[1].reads
	if len(rs) != 1 || rs[0].Err != nil || string(rs[0].RequestCtx) != "r" {
		t.Fatalf("reads %+v, want r answered", rs)
	}
	if rs[0].Index != 3 {
		t.Fatalf("read index %d, want 3 (the no-op of term 2), not the stale commit index 2", rs[0].Index)
	}
}

func TestRead_6_4_NoQuorumNoAnswer(t *testing.T) {
	c := newCluster(t, 5)
	c.elect(1)
	c.tick(1)
	// The leader still reaches node 2, but 2 of 5 is no quorum.
	for _, id := range []uint64{3, 4, 5} {
		c.cut(1, id)
	}
	if err := c.node(1).ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	for range testElectionTick - 1 {
		c.tick(1, 2)
	}
	if rs := c.nodes[1].reads; len(rs) != 0 {
		t.Fatalf("read answered %+v without a quorum", rs)
	}
	if st := c.status(1); st.Role != Leader {
		t.Fatalf("setup: leader stepped down: %+v", st)
	}
	// Control: with a quorum back the read is answered.
	c.heal()
	c.tick(1)
	if rs := c.nodes[1].reads; len(rs) != 1 || rs[0].Err != nil || rs[0].Index != 1 {
		t.Fatalf("reads after healing: %+v, want r at index 1", rs)
	}
}

// heartbeatRounds counts, among msgs, the read confirmation heartbeats
// (Context > 0) and the distinct rounds they belong to.
func heartbeatRounds(msgs []Message, from uint64) (beats int, rounds []uint64) {
	for _, m := range msgs {
		if m.Type == MsgHeartbeat && m.From == from && m.Context > 0 {
			beats++
			if !slices.Contains(rounds, m.Context) {
				rounds = append(rounds, m.Context)
			}
		}
	}
	return beats, rounds
}

func TestRead_6_4_ReadsArrivingTogetherShareOneRound(t *testing.T) {
	t.Run("queued until the leader commits", func(t *testing.T) {
		c := newCluster(t, 3, withLog(1, 1, 1, 1), withLog(2, 1, 1, 1), withLog(3, 1, 1, 1))
		c.filter(1, 2, isMsgApp)
		c.filter(1, 3, isMsgApp)
		c.elect(1)
		for i := range 5 {
			if err := c.node(1).ReadIndex(fmt.Appendf(nil, "r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		c.stabilize()
		if beats, _ := heartbeatRounds(c.sent, 1); beats != 0 {
			t.Fatalf("%d confirmation heartbeats before the read index is known", beats)
		}
		c.heal()
		c.tick(1)
		rs := c.nodes[1].reads
		if got := readCtxs(rs); !slices.Equal(got, []string{"r0", "r1", "r2", "r3", "r4"}) {
			t.Fatalf("answered %v, want r0..r4 in order", got)
		}
		for _, r := range rs {
			if r.Err != nil || r.Index != rs[0].Index || r.Index < 2 {
				t.Fatalf("reads %+v, want all at one index covering the no-op 2", rs)
			}
		}
		beats, rounds := heartbeatRounds(c.sent, 1)
		if len(rounds) != 1 || beats != 2 {
			t.Fatalf("%d confirmation heartbeats in rounds %v for 5 reads, want one broadcast (2 heartbeats)", beats, rounds)
		}
	})
	t.Run("arriving while a round is in flight", func(t *testing.T) {
		c := newCluster(t, 3)
		c.elect(1)
		c.tick(1)
		mark := len(c.sent)
		if err := c.node(1).ReadIndex([]byte("r0")); err != nil {
			t.Fatal(err)
		}
		c.handleReady(1) // round 1's heartbeats leave
		for i := 1; i < 5; i++ {
			if err := c.node(1).ReadIndex(fmt.Appendf(nil, "r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		// r1..r4 came after round 1's heartbeats left, so round 1 cannot
		// vouch for them; they start round 2 at once rather than wait for
		// round 1 to finish (one round trip, not two).
		c.handleReady(1)
		if _, rounds := heartbeatRounds(c.sent[mark:], 1); !slices.Equal(rounds, []uint64{1, 2}) {
			t.Fatalf("before any answer, rounds %v left the leader, want [1 2]", rounds)
		}
		c.hop() // heartbeats of both rounds reach the followers
		c.hop() // their answers reach the leader
		if got := readCtxs(c.nodes[1].reads); !slices.Equal(got, []string{"r0", "r1", "r2", "r3", "r4"}) {
			t.Fatalf("after one round trip answered %v, want r0..r4", got)
		}
		c.stabilize()
		beats, rounds := heartbeatRounds(c.sent[mark:], 1)
		if len(rounds) != 2 || beats != 4 {
			t.Fatalf("%d confirmation heartbeats in rounds %v for 5 reads, want 2 rounds (4 heartbeats): r0's, and one shared by r1..r4", beats, rounds)
		}
	})
	t.Run("round not yet sent is joined", func(t *testing.T) {
		c := newCluster(t, 3)
		c.elect(1)
		c.tick(1)
		mark := len(c.sent)
		for i := range 5 {
			if err := c.node(1).ReadIndex(fmt.Appendf(nil, "r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		c.stabilize()
		if got := readCtxs(c.nodes[1].reads); !slices.Equal(got, []string{"r0", "r1", "r2", "r3", "r4"}) {
			t.Fatalf("answered %v, want r0..r4", got)
		}
		if beats, rounds := heartbeatRounds(c.sent[mark:], 1); len(rounds) != 1 || beats != 2 {
			t.Fatalf("%d confirmation heartbeats in rounds %v for 5 reads before one Ready, want one round", beats, rounds)
		}
	})
}

func TestRead_6_4_FollowerRefusesNamingLeader(t *testing.T) {
	c := newCluster(t, 3)
	c.elect(1)
	err := c.node(2).ReadIndex([]byte("r"))
	requireNotLeaderError(t, err, 1)
	if c.node(2).HasReady() {
		t.Fatalf("a refused read left work: %+v", c.node(2).Ready())
	}
	// A node that knows no leader says so.
	n := newTestNode(t, testConfig(1), stateWithLog(voterIDs(3), 0, 0))
	requireNotLeaderError(t, n.ReadIndex([]byte("r")), None)
}

func TestRead_6_4_PendingReadsFailWhenLeaderStepsDown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		commit bool // whether the leader committed in its term before the read
	}{
		{"confirmation pending", true},
		{"index not yet known", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3)
			if !tc.commit {
				c.filter(1, 2, isMsgApp)
				c.filter(1, 3, isMsgApp)
			}
			c.elect(1)
			c.isolate(1)
			for _, r := range []string{"a", "b"} {
				if err := c.node(1).ReadIndex([]byte(r)); err != nil {
					t.Fatal(err)
				}
			}
			c.stabilize()
			if rs := c.nodes[1].reads; len(rs) != 0 {
				t.Fatalf("isolated leader answered %+v", rs)
			}
			// Node 2 wins term 2 with node 3 and reaches node 1.
			c.campaign(2)
			c.heal()
			c.tick(2)
			if st := c.status(1); st.Role != Follower || st.Term != 2 || st.Lead != 2 {
				t.Fatalf("old leader: %+v, want a follower of 2 in term 2", st)
			}
			rs := c.nodes[1].reads
			if got := readCtxs(rs); !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("reads %v, want a and b failed", got)
			}
			for _, r := range rs {
				if !errors.Is(r.Err, ErrNotLeader) || r.Index != 0 {
					t.Fatalf("read %q: %+v, want an ErrNotLeader error at index 0", r.RequestCtx, r)
				}
				// The client is pointed at the leader that deposed node 1.
				var nl *NotLeaderError
				if !errors.As(r.Err, &nl) || nl.Leader != 2 {
					t.Fatalf("read %q failed with %v, want it to name leader 2", r.RequestCtx, r.Err)
				}
			}
		})
	}
}
