package raftlogic

import (
	"slices"
	"testing"
)

// §5.4.2: committing entries from previous terms (Figure 8).

func hasEntryOfTerm(m Message, term uint64) bool {
	return slices.ContainsFunc(m.Entries, func(e Entry) bool { return e.Term == term })
}

// figure8 builds Figure 8 (c): S1 led term 2 and wrote 2@2, which reached
// S2; S5 led term 3 and wrote 2@3 alone. Now S1 leads term 4 (votes of S2
// and S3; S4 and S5 are down), sends one entry per message, and replicates
// 2@2 to S3 — so 2@2 is on a majority (S1 S2 S3) — while its own no-op 3@4
// reaches only S2.
func figure8(t *testing.T) *cluster {
	t.Helper()
	c := newCluster(t, 5,
		withConfig(func(cfg *Config) { cfg.MaxEntriesPerMsg = 1 }),
		withLog(1, 3, 1, 1, 2),
		withLog(2, 3, 1, 1, 2),
		withLog(3, 3, 1, 1),
		withLog(4, 3, 1, 1),
		withLog(5, 3, 1, 1, 3),
	)
	c.crash(4)
	c.crash(5)
	// S3 receives no entry of term 4 once it holds index 2 (before that it
	// must see the probe that finds its log shorter).
	c.filter(1, 3, func(m Message) bool {
		return m.Type == MsgApp && hasEntryOfTerm(m, 4) && c.status(3).LastIndex >= 2
	})
	c.elect(1)
	if st := c.status(1); st.Term != 4 {
		t.Fatalf("S1 leads term %d, want 4", st.Term)
	}
	holders := 0
	for _, id := range []uint64{1, 2, 3} {
		if ents := logEntries(c.node(id)); len(ents) >= 2 && ents[1].Term == 2 {
			holders++
		}
	}
	if holders != 3 {
		t.Fatalf("2@2 is on %d nodes, want 3 (a majority of 5)", holders)
	}
	if got := termsOf(logEntries(c.node(3))); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("S3's log %v, want [1 2] (no term-4 entry)", got)
	}
	if got := termsOf(logEntries(c.node(2))); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Fatalf("S2's log %v, want [1 2 4]", got)
	}
	return c
}

func TestCommit_5_4_2_Figure8_OldTermEntryNotCommittedByCounting(t *testing.T) {
	c := figure8(t)
	c.tick(1) // heartbeats: nothing changes the count
	// 2@2 is on a majority, but it is not of the leader's term.
	if st := c.status(1); st.Commit != 1 {
		t.Fatalf("leader commit %d, want 1: an entry of an earlier term was committed by counting replicas", st.Commit)
	}
	for _, id := range []uint64{1, 2, 3} {
		if got := c.nodes[id].applied(); got != 1 {
			t.Fatalf("S%d applied %d entries, want 1", id, got)
		}
	}

	// Once the leader's own entry 3@4 reaches a majority, it commits, and
	// 2@2 with it (indirectly, by the Log Matching Property).
	c.filter(1, 3, nil)
	c.tick(1)
	c.tick(1)
	if st := c.status(1); st.Commit != 3 {
		t.Fatalf("after 3@4 reached S3: leader commit %d, want 3", st.Commit)
	}
	for _, id := range []uint64{1, 2, 3} {
		if got := termsOf(c.nodes[id].sm); !slices.Equal(got, []uint64{1, 2, 4}) {
			t.Errorf("S%d applied terms %v, want [1 2 4]", id, got)
		}
	}

	// Figure 8 (e): now S1 may crash — S5 cannot be elected, and the
	// committed entries stay.
	c.crash(1)
	c.start(4)
	c.start(5)
	for range 3 {
		c.campaign(5)
		if st := c.status(5); st.Role == Leader {
			t.Fatalf("S5 (last term 3) elected in term %d over committed entries of term 4", st.Term)
		}
	}
	for _, id := range []uint64{2, 3} {
		if got := termsOf(logEntries(c.node(id))); !slices.Equal(got, []uint64{1, 2, 4}) {
			t.Errorf("S%d's log %v, want [1 2 4]", id, got)
		}
	}
}

// Figure 8 (d), the case the rule prevents: had S1 committed 2@2 by counting
// and then crashed, S5 could still win an election (its last term 3 beats
// S3's 2) and overwrite 2@2 on the majority that stored it.
func TestCommit_5_4_2_Figure8_MajorityStoredEntryCanBeOverwritten(t *testing.T) {
	c := figure8(t)
	c.crash(1)
	c.start(4)
	c.start(5)
	c.campaign(5) // term 4: S2 and S3 already voted for S1 in term 4
	if st := c.status(5); st.Role == Leader {
		t.Fatalf("S5 won term %d", st.Term)
	}
	c.campaign(5) // term 5: S3 (last term 2) and S4 vote for S5
	if st := c.status(5); st.Role != Leader || st.Term != 5 {
		t.Fatalf("S5: %+v, want leader of term 5", st)
	}
	c.tick(5)
	for _, id := range []uint64{2, 3, 4, 5} {
		if got := termsOf(logEntries(c.node(id))); !slices.Equal(got, []uint64{1, 3, 5}) {
			t.Errorf("S%d's log %v, want [1 3 5]: 2@2 overwritten by 2@3", id, got)
		}
	}
	// Nothing of 2@2 was ever applied: it was never committed.
	for _, id := range []uint64{2, 3, 4, 5} {
		if got := termsOf(c.nodes[id].sm); !slices.Equal(got, []uint64{1, 3, 5}) {
			t.Errorf("S%d applied terms %v, want [1 3 5]", id, got)
		}
	}
}

// Raft thesis 10.2.1: the leader may send entries before they are durable
// locally, but counts its own log toward a quorum only once Advance reports
// it durable (async_test.go checks the same with StableTo).
func TestCommit_10_2_1_LeaderCountsItselfOnlyWhenDurable(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		n := newTestNode(t, testConfig(1), stateWithLog([]uint64{1}, 0, 0))
		n.Campaign()
		if st := n.Status(); st.Role != Leader {
			t.Fatalf("single node did not become leader: %+v", st)
		}
		rd := n.Ready()
		if len(rd.Entries) != 1 || rd.Entries[0].Index != 1 {
			t.Fatalf("Ready.Entries %v, want the no-op", rd.Entries)
		}
		if st := n.Status(); st.Commit != 0 || rd.HardState.Commit != 0 || len(rd.CommittedEntries) != 0 {
			t.Fatalf("no-op committed before it is durable: commit %d, Ready %+v", st.Commit, rd)
		}
		n.Advance(rd)
		if st := n.Status(); st.Commit != 1 {
			t.Fatalf("commit %d after the no-op is durable, want 1", st.Commit)
		}
		rd = advance(n)
		if len(rd.CommittedEntries) != 1 || rd.CommittedEntries[0].Index != 1 {
			t.Fatalf("committed entries %v, want the no-op", rd.CommittedEntries)
		}

		idx, _, err := n.Propose([]byte("x"))
		if err != nil || idx != 2 {
			t.Fatalf("Propose: %d, %v", idx, err)
		}
		rd = n.Ready()
		if st := n.Status(); st.Commit != 1 || len(rd.CommittedEntries) != 0 {
			t.Fatalf("proposal committed before it is durable: commit %d", st.Commit)
		}
		n.Advance(rd)
		if st := n.Status(); st.Commit != 2 {
			t.Fatalf("commit %d after the proposal is durable, want 2", st.Commit)
		}
	})
	t.Run("three nodes", func(t *testing.T) {
		c := newCluster(t, 3)
		c.elect(1)
		c.cut(1, 3)
		leader := c.node(1)
		if _, _, err := leader.Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		// The leader sends before persisting; node 2 stores and answers.
		rd := leader.Ready()
		for _, m := range rd.Messages {
			if m.To == 2 {
				mustStep(t, c.node(2), m)
			}
		}
		c.handleReady(2)
		answers := c.queue
		c.queue = nil
		if len(answers) != 1 || answers[0].Type != MsgAppResp || answers[0].Index != 2 {
			t.Fatalf("node 2 answered %+v, want an acknowledgement of index 2", answers)
		}
		mustStep(t, leader, answers[0])
		// Node 2 and the leader hold index 2, but the leader's copy is not
		// durable: that is one durable copy of three.
		if st := leader.Status(); st.Commit != 1 {
			t.Fatalf("leader commit %d with its own copy not durable, want 1", st.Commit)
		}
		tn := c.nodes[1]
		tn.disk.ents = append(tn.disk.ents, rd.Entries...)
		leader.Advance(rd)
		if st := leader.Status(); st.Commit != 2 {
			t.Fatalf("leader commit %d once its copy is durable, want 2", st.Commit)
		}
		c.stabilize()
	})
}

// Ready's contract: every committed entry handed out is already durable in
// the local log, so a follower never applies an entry it has not persisted.
func TestReady_CommittedEntriesAreDurable(t *testing.T) {
	n := newTestNode(t, testConfig(2), stateWithLog(voterIDs(3), 0, 0))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1), Commit: 2})
	if st := n.Status(); st.Commit != 2 {
		t.Fatalf("commit %d, want 2", st.Commit)
	}
	rd := n.Ready()
	if len(rd.Entries) != 2 || len(rd.CommittedEntries) != 0 {
		t.Fatalf("Ready hands out committed entries %v with the unpersisted entries %v", rd.CommittedEntries, rd.Entries)
	}
	n.Advance(rd)
	rd = advance(n)
	if !slices.EqualFunc(rd.CommittedEntries, mkEntries(1, 1, 1), entryEqual) {
		t.Fatalf("after persisting, committed entries %v, want 1..2", rd.CommittedEntries)
	}
}
