package raftlogic

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// §5.1, §5.2: terms and leader election.

// newLeaderNode returns node cfg.ID of a three-node cluster {1,2,3} as leader
// of its next term: it campaigns and node 2 (or 1) grants its vote. Its
// Ready is handled, so its no-op is durable.
func newLeaderNode(t *testing.T, cfg Config, st InitialState) *Node {
	t.Helper()
	n := newTestNode(t, cfg, st)
	n.Campaign()
	advance(n)
	voter := uint64(2)
	if cfg.ID == 2 {
		voter = 1
	}
	mustStep(t, n, Message{Type: MsgVoteResp, From: voter, To: cfg.ID, Term: n.Status().Term})
	advance(n)
	if st := n.Status(); st.Role != Leader {
		t.Fatalf("node %d did not become leader: %+v", cfg.ID, st)
	}
	return n
}

func TestElection_5_2_MajorityElectsLeader(t *testing.T) {
	for _, tc := range []struct {
		size int
		down []uint64
	}{
		{1, nil},
		{3, nil},
		{3, []uint64{3}},
		{5, nil},
		{5, []uint64{4, 5}},
	} {
		t.Run(fmt.Sprintf("%d nodes, down %v", tc.size, tc.down), func(t *testing.T) {
			c := newCluster(t, tc.size)
			for _, id := range tc.down {
				c.crash(id)
			}
			c.campaign(1)
			if st := c.status(1); st.Role != Leader || st.Term != 1 || st.Lead != 1 || st.Vote != 1 {
				t.Fatalf("candidate with a majority: %+v, want leader of term 1", st)
			}
			// A follower that acknowledged after the commit point learns
			// the commit index with the next heartbeat (§5.3).
			c.tick(1)
			for _, id := range c.ids[1:] {
				if slices.Contains(tc.down, id) {
					continue
				}
				st := c.status(id)
				if st.Role != Follower || st.Term != 1 || st.Lead != 1 || st.Vote != 1 {
					t.Errorf("node %d: %+v, want follower of leader 1 in term 1 having voted for 1", id, st)
				}
				// The leader's first entry is committed and applied everywhere.
				if got := c.nodes[id].applied(); got != 1 {
					t.Errorf("node %d applied %d entries, want 1", id, got)
				}
			}
		})
	}
}

func TestElection_5_2_NoMajorityNoLeader(t *testing.T) {
	for _, tc := range []struct {
		size int
		down []uint64
	}{
		{3, []uint64{2, 3}},
		{5, []uint64{3, 4, 5}},
	} {
		t.Run(fmt.Sprintf("%d nodes, down %v", tc.size, tc.down), func(t *testing.T) {
			c := newCluster(t, tc.size)
			for _, id := range tc.down {
				c.crash(id)
			}
			c.tickAll(10 * testElectionTick)
			if l := c.leaders(); len(l) != 0 {
				t.Fatalf("leaders %v elected without a majority", l)
			}
			// They did try: every live node campaigned, repeatedly.
			for _, id := range c.ids {
				if slices.Contains(tc.down, id) {
					continue
				}
				if st := c.status(id); st.Term < 3 {
					t.Errorf("node %d is still at term %d after 10 election timeouts; it did not campaign", id, st.Term)
				}
			}
			// Control: with one more node back there is a majority.
			c.start(tc.down[0])
			c.tickAll(10 * testElectionTick)
			if l := c.leaders(); len(l) != 1 {
				t.Fatalf("with a majority up, leaders %v, want exactly one", l)
			}
		})
	}
}

func TestElection_5_2_SplitVoteResolvedByRandomizedTimeouts(t *testing.T) {
	c := newCluster(t, 3)
	// All three campaign at once in term 1: each votes for itself and
	// refuses the others, so no one wins.
	for _, id := range c.ids {
		c.node(id).Campaign()
	}
	c.stabilize()
	if l := c.leaders(); len(l) != 0 {
		t.Fatalf("a split vote elected %v", l)
	}
	for _, id := range c.ids {
		if st := c.status(id); st.Term != 1 || st.Vote != id {
			t.Fatalf("node %d: %+v, want term 1 and a vote for itself", id, st)
		}
	}
	// Randomized timeouts break the tie within a few election timeouts.
	for i := 0; i < 10*testElectionTick && len(c.leaders()) == 0; i++ {
		c.tickAll(1)
	}
	if l := c.leaders(); len(l) != 1 {
		t.Fatalf("leaders %v after the split vote, want exactly one", l)
	}
}

func TestVote_5_2_GrantedAtMostOncePerTerm(t *testing.T) {
	voters := voterIDs(3)
	n := newTestNode(t, testConfig(3), stateWithLog(voters, 0, 0))

	mustStep(t, n, Message{Type: MsgVote, From: 1, To: 3, Term: 1})
	rd := advance(n)
	resp := msgsOfType(rd.Messages, MsgVoteResp)
	if len(resp) != 1 || resp[0].Reject || resp[0].To != 1 || resp[0].Term != 1 {
		t.Fatalf("first candidate of term 1: answers %+v, want one grant to 1", resp)
	}
	if rd.HardState != (HardState{Term: 1, Vote: 1}) {
		t.Fatalf("the vote is not in the HardState to persist: %+v", rd.HardState)
	}

	// A second candidate of the same term, with an equally good log.
	mustStep(t, n, Message{Type: MsgVote, From: 2, To: 3, Term: 1})
	rd = advance(n)
	resp = msgsOfType(rd.Messages, MsgVoteResp)
	if len(resp) != 1 || !resp[0].Reject || resp[0].To != 2 {
		t.Fatalf("second candidate of term 1: answers %+v, want one refusal to 2", resp)
	}
	if st := n.Status(); st.Vote != 1 || st.Term != 1 {
		t.Fatalf("after refusing: %+v, want the vote still for 1 in term 1", st)
	}
	if !rd.HardState.IsEmpty() {
		t.Fatalf("a refusal changed the HardState: %+v", rd.HardState)
	}

	// The first candidate asking again (a retransmission) gets the same vote.
	mustStep(t, n, Message{Type: MsgVote, From: 1, To: 3, Term: 1})
	rd = advance(n)
	if resp = msgsOfType(rd.Messages, MsgVoteResp); len(resp) != 1 || resp[0].Reject {
		t.Fatalf("retransmitted request from the candidate voted for: %+v, want a grant", resp)
	}

	// In the next term the vote is free again.
	mustStep(t, n, Message{Type: MsgVote, From: 2, To: 3, Term: 2})
	rd = advance(n)
	if resp = msgsOfType(rd.Messages, MsgVoteResp); len(resp) != 1 || resp[0].Reject || resp[0].Term != 2 {
		t.Fatalf("candidate 2 in term 2: %+v, want a grant", resp)
	}
	if rd.HardState != (HardState{Term: 2, Vote: 2}) {
		t.Fatalf("HardState %+v, want term 2 vote 2", rd.HardState)
	}
}

// A node that already follows a leader in this term votes for nobody else
// in it (the leader has a majority, so no other candidate can win it).
func TestVote_5_2_RefusedWhenLeaderKnownInTerm(t *testing.T) {
	n := newTestNode(t, testConfig(3), stateWithLog(voterIDs(3), 0, 0))
	mustStep(t, n, Message{Type: MsgHeartbeat, From: 1, To: 3, Term: 1})
	advance(n)
	if st := n.Status(); st.Lead != 1 || st.Vote != None {
		t.Fatalf("after a heartbeat of term 1: %+v, want leader 1 and no vote", st)
	}
	mustStep(t, n, Message{Type: MsgVote, From: 2, To: 3, Term: 1})
	rd := advance(n)
	if resp := msgsOfType(rd.Messages, MsgVoteResp); len(resp) != 1 || !resp[0].Reject {
		t.Fatalf("vote request in a term with a known leader: %+v, want a refusal", resp)
	}
	if st := n.Status(); st.Vote != None || st.Lead != 1 {
		t.Fatalf("after refusing: %+v", st)
	}
}

func TestVote_5_2_VoteSurvivesRestart(t *testing.T) {
	c := newCluster(t, 3)
	// Node 1 campaigns and gets node 3's vote; node 2 is cut off, and node 3
	// receives no entries, so its log stays as short as node 2's.
	c.cut(1, 2)
	c.filter(1, 3, func(m Message) bool { return m.Type == MsgApp })
	c.elect(1)
	if st := c.status(3); st.Term != 1 || st.Vote != 1 || st.LastIndex != 0 {
		t.Fatalf("node 3: %+v, want term 1, vote 1, empty log", st)
	}

	// Node 3 crashes and restarts from what it persisted.
	c.restart(3)
	if st := c.status(3); st.Term != 1 || st.Vote != 1 {
		t.Fatalf("restarted node 3: %+v, want term 1 and its vote for 1", st)
	}

	// Node 2 campaigns in term 1 (it was at term 0): node 3 has voted in
	// term 1 already and must refuse, although node 2's log is as good.
	mark := len(c.delivered)
	c.campaign(2)
	if st := c.status(2); st.Term != 1 || st.Role == Leader {
		t.Fatalf("node 2: %+v, want a losing candidate of term 1", st)
	}
	refusals := count(c.delivered[mark:], func(m Message) bool {
		return m.Type == MsgVoteResp && m.From == 3 && m.To == 2 && m.Term == 1 && m.Reject
	})
	if refusals != 1 {
		t.Fatalf("node 3 sent %d refusals to node 2 in term 1, want 1", refusals)
	}
	if st := c.status(3); st.Vote != 1 {
		t.Fatalf("node 3 changed its term-1 vote to %d", st.Vote)
	}

	// Control: in term 2 node 3 is free to vote, and node 2 wins with it.
	c.campaign(2)
	if st := c.status(2); st.Role != Leader || st.Term != 2 {
		t.Fatalf("node 2 in term 2: %+v, want leader", st)
	}
}

func TestElection_5_2_RandomizedTimeoutInRange(t *testing.T) {
	voters := voterIDs(5)
	first := map[uint64]int{}
	seen := map[int]int{}
	for _, id := range voters {
		n := newTestNode(t, testConfig(id), stateWithLog(voters, 0, 0))
		// Time 50 campaigns in a row: a candidate that hears nothing
		// campaigns again after a freshly drawn timeout.
		for k := range 50 {
			term := n.Status().Term
			ticks := 0
			for n.Status().Term == term {
				if ticks == 2*testElectionTick {
					t.Fatalf("node %d did not campaign within 2*ElectionTick ticks", id)
				}
				n.Tick()
				ticks++
			}
			advance(n)
			if ticks < testElectionTick || ticks >= 2*testElectionTick {
				t.Fatalf("node %d campaigned after %d ticks, want [%d, %d)", id, ticks, testElectionTick, 2*testElectionTick)
			}
			if k == 0 {
				first[id] = ticks
			}
			seen[ticks]++
		}
	}
	for d := testElectionTick; d < 2*testElectionTick; d++ {
		if seen[d] == 0 {
			t.Errorf("timeout %d never drawn in 250 draws: %v", d, seen)
		}
	}
	distinct := map[int]bool{}
	for _, d := range first {
		distinct[d] = true
	}
	if len(distinct) < 2 {
		t.Errorf("all five nodes drew the same first timeout: %v", first)
	}
}

func TestElection_5_1_HigherTermMakesLeaderOrCandidateStepDown(t *testing.T) {
	type msgCase struct {
		name string
		m    Message
		lead uint64 // the leader the node should know afterwards
		vote uint64
	}
	cases := []msgCase{
		{"MsgApp", Message{Type: MsgApp, From: 2, To: 1, Term: 5}, 2, None},
		{"MsgHeartbeat", Message{Type: MsgHeartbeat, From: 2, To: 1, Term: 5}, 2, None},
		{"MsgVote", Message{Type: MsgVote, From: 2, To: 1, Term: 5, Index: 1, LogTerm: 1}, None, 2},
		{"MsgAppResp", Message{Type: MsgAppResp, From: 2, To: 1, Term: 5}, None, None},
		{"MsgVoteResp", Message{Type: MsgVoteResp, From: 2, To: 1, Term: 5, Reject: true}, None, None},
		{"MsgHeartbeatResp", Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: 5}, None, None},
	}
	voters := voterIDs(3)
	for _, role := range []Role{Leader, Candidate} {
		for _, tc := range cases {
			t.Run(role.String()+"/"+tc.name, func(t *testing.T) {
				var n *Node
				if role == Leader {
					n = newLeaderNode(t, testConfig(1), stateWithLog(voters, 0, 0))
				} else {
					n = newTestNode(t, testConfig(1), stateWithLog(voters, 0, 0))
					n.Campaign()
					advance(n)
				}
				if st := n.Status(); st.Role != role || st.Term != 1 {
					t.Fatalf("setup: %+v", st)
				}
				mustStep(t, n, tc.m)
				st := n.Status()
				if st.Role != Follower || st.Term != 5 || st.Lead != tc.lead || st.Vote != tc.vote {
					t.Fatalf("after %v of term 5: %+v, want follower of term 5, lead %d, vote %d", tc.m.Type, st, tc.lead, tc.vote)
				}
				if _, _, err := n.Propose([]byte("x")); !errors.Is(err, ErrNotLeader) {
					t.Fatalf("Propose after stepping down: %v, want ErrNotLeader", err)
				}
			})
		}
	}
	// A pre-vote promises nothing, so its higher term deposes no one.
	t.Run("leader/MsgPreVote", func(t *testing.T) {
		n := newLeaderNode(t, testConfig(1), stateWithLog(voters, 0, 0))
		mustStep(t, n, Message{Type: MsgPreVote, From: 2, To: 1, Term: 2, Index: 1, LogTerm: 1})
		if st := n.Status(); st.Role != Leader || st.Term != 1 {
			t.Fatalf("leader after a pre-vote of term 2: %+v, want leader of term 1", st)
		}
	})
}

// §5.2: a candidate that hears from a leader of its own term returns to
// follower.
func TestElection_5_2_CandidateYieldsToLeaderOfSameTerm(t *testing.T) {
	for _, typ := range []MessageType{MsgApp, MsgHeartbeat} {
		t.Run(typ.String(), func(t *testing.T) {
			n := newTestNode(t, testConfig(1), stateWithLog(voterIDs(3), 0, 0))
			n.Campaign()
			advance(n)
			mustStep(t, n, Message{Type: typ, From: 2, To: 1, Term: 1})
			if st := n.Status(); st.Role != Follower || st.Term != 1 || st.Lead != 2 {
				t.Fatalf("candidate after %v of its term: %+v, want follower of 2 in term 1", typ, st)
			}
		})
	}
}

func TestElection_5_1_StaleTermMessagesIgnored(t *testing.T) {
	voters := voterIDs(3)
	// Node 3 follows leader 2 in term 3; log [1 1], commit 1.
	setup := func(t *testing.T, cfg Config) *Node {
		n := newTestNode(t, cfg, stateWithLog(voters, 3, 1, 1, 1))
		mustStep(t, n, Message{Type: MsgHeartbeat, From: 2, To: 3, Term: 3, Commit: 1})
		advance(n)
		return n
	}
	stale := []Message{
		{Type: MsgApp, From: 1, To: 3, Term: 2, Index: 2, LogTerm: 1, Entries: mkEntries(3, 2), Commit: 3},
		{Type: MsgApp, From: 1, To: 3, Term: 2, Index: 1, LogTerm: 1, Entries: mkEntries(2, 2), Commit: 2},
		{Type: MsgHeartbeat, From: 1, To: 3, Term: 2, Commit: 2},
		{Type: MsgSnap, From: 1, To: 3, Term: 2, Snapshot: Snapshot{Meta: SnapshotMeta{Index: 10, Term: 2, ConfState: ConfState{Voters: voters}}}},
		{Type: MsgTimeoutNow, From: 1, To: 3, Term: 2},
		{Type: MsgVoteResp, From: 1, To: 3, Term: 2},
	}
	for _, m := range stale {
		t.Run(m.Type.String(), func(t *testing.T) {
			n := setup(t, testConfig(3))
			before, log := n.Status(), logEntries(n)
			mustStep(t, n, m)
			if st := n.Status(); !reflect.DeepEqual(st, before) {
				t.Fatalf("a stale %v changed the node:\n got %+v\nwant %+v", m.Type, st, before)
			}
			if !slices.EqualFunc(logEntries(n), log, entryEqual) {
				t.Fatalf("a stale %v changed the log", m.Type)
			}
			if n.HasReady() {
				t.Fatalf("a stale %v produced a Ready: %+v", m.Type, n.Ready())
			}
		})
	}
	// With CheckQuorum (or PreVote) a stale leader is told the current term,
	// so it steps down; nothing else changes.
	t.Run("stale leader told the term", func(t *testing.T) {
		cfg := testConfig(3)
		cfg.CheckQuorum = true
		n := setup(t, cfg)
		before := n.Status()
		mustStep(t, n, stale[0])
		rd := advance(n)
		if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgAppResp || rd.Messages[0].To != 1 || rd.Messages[0].Term != 3 {
			t.Fatalf("answer to a stale leader: %+v, want one MsgAppResp of term 3 to node 1", rd.Messages)
		}
		if st := n.Status(); !reflect.DeepEqual(st, before) {
			t.Fatalf("the stale MsgApp changed the node: %+v, was %+v", st, before)
		}
	})
	// A stale candidate is refused with the current term, so it catches up:
	// membership changes make that necessary (see answerStale). Nothing
	// else changes.
	t.Run("stale candidate told the term", func(t *testing.T) {
		n := setup(t, testConfig(3))
		before := n.Status()
		mustStep(t, n, Message{Type: MsgVote, From: 1, To: 3, Term: 2, Index: 5, LogTerm: 2})
		rd := advance(n)
		if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgVoteResp || !rd.Messages[0].Reject || rd.Messages[0].To != 1 || rd.Messages[0].Term != 3 {
			t.Fatalf("answer to a stale candidate: %+v, want one refusal of term 3 to node 1", rd.Messages)
		}
		if st := n.Status(); !reflect.DeepEqual(st, before) {
			t.Fatalf("the stale MsgVote changed the node: %+v, was %+v", st, before)
		}
	})
	// On the leader's side: an acknowledgement from an old term must not be
	// counted toward commitment.
	t.Run("stale MsgAppResp not counted", func(t *testing.T) {
		for _, term := range []uint64{1, 2} {
			n := newLeaderNode(t, testConfig(1), stateWithLog(voters, 1, 0, 1))
			if st := n.Status(); st.Term != 2 || st.LastIndex != 2 || st.Commit != 0 {
				t.Fatalf("setup: %+v", st)
			}
			mustStep(t, n, Message{Type: MsgAppResp, From: 2, To: 1, Term: term, Index: 2})
			want := uint64(0)
			if term == 2 {
				want = 2 // control: the same answer in the current term commits
			}
			if st := n.Status(); st.Commit != want {
				t.Fatalf("after MsgAppResp of term %d: commit %d, want %d", term, st.Commit, want)
			}
		}
	})
}

// §5.4.2 / §8: a new leader appends a no-op of its term so it can commit.
func TestElection_5_4_2_NewLeaderAppendsEmptyEntryOfItsTerm(t *testing.T) {
	c := newCluster(t, 3, withLog(1, 1, 1, 1), withLog(2, 1, 1, 1), withLog(3, 1, 1, 1))
	c.elect(1)
	c.tick(1) // the heartbeat carries the commit index to every follower
	ents := logEntries(c.node(1))
	if len(ents) != 2 {
		t.Fatalf("leader log %v, want the old entry and one new", termsOf(ents))
	}
	noop := ents[1]
	if noop.Index != 2 || noop.Term != 2 || noop.Type != EntryNormal || len(noop.Data) != 0 {
		t.Fatalf("new leader's first entry: %+v, want an empty EntryNormal at index 2, term 2", noop)
	}
	for _, id := range c.ids {
		sm := c.nodes[id].sm
		if len(sm) != 2 || !entryEqual(sm[1], noop) {
			t.Errorf("node %d applied %v, want the no-op applied at 2", id, sm)
		}
	}
}

// ---------------------------------------------------------------------------
// §5.4.1: election restriction.

func TestVote_5_4_1_UpToDateCheck(t *testing.T) {
	// The voter's log is [1 1 2]: last index 3, last term 2.
	for _, tc := range []struct {
		name        string
		index, term uint64
		wantGranted bool
	}{
		{"higher last term, shorter log", 1, 3, true},
		{"higher last term, longer log", 9, 3, true},
		{"equal last term, longer log", 4, 2, true},
		{"equal last term, equal log", 3, 2, true},
		{"equal last term, shorter log", 2, 2, false},
		{"lower last term, longer log", 9, 1, false},
		{"empty log", 0, 0, false},
	} {
		for _, typ := range []MessageType{MsgVote, MsgPreVote} {
			t.Run(typ.String()+"/"+tc.name, func(t *testing.T) {
				n := newTestNode(t, testConfig(3), stateWithLog(voterIDs(3), 2, 0, 1, 1, 2))
				mustStep(t, n, Message{Type: typ, From: 1, To: 3, Term: 3, Index: tc.index, LogTerm: tc.term})
				rd := advance(n)
				resp := rd.Messages
				wantType := MsgVoteResp
				if typ == MsgPreVote {
					wantType = MsgPreVoteResp
				}
				if len(resp) != 1 || resp[0].Type != wantType || resp[0].To != 1 {
					t.Fatalf("answers %+v, want one %v to node 1", resp, wantType)
				}
				if granted := !resp[0].Reject; granted != tc.wantGranted {
					t.Fatalf("candidate's last entry (index %d, term %d) vs voter's (3, 2): granted %v, want %v", tc.index, tc.term, granted, tc.wantGranted)
				}
				st := n.Status()
				switch {
				case typ == MsgPreVote && st.Term != 2:
					t.Fatalf("a pre-vote moved the voter to term %d", st.Term)
				case typ == MsgVote && tc.wantGranted && st.Vote != 1:
					t.Fatalf("granted but the recorded vote is %d", st.Vote)
				case typ == MsgVote && !tc.wantGranted && st.Vote != None:
					t.Fatalf("refused but the recorded vote is %d", st.Vote)
				}
			})
		}
	}
}

func TestElection_5_4_1_CandidateWithStaleLogCannotWin(t *testing.T) {
	c := newCluster(t, 3, withLog(1, 2, 1, 1, 2), withLog(2, 2, 1, 1, 2), withLog(3, 1, 1, 1))
	c.campaign(3)
	if st := c.status(3); st.Role == Leader {
		t.Fatalf("node 3 with a stale log won: %+v", st)
	}
	refusals := count(c.delivered, func(m Message) bool { return m.Type == MsgVoteResp && m.To == 3 && m.Reject })
	if refusals != 2 {
		t.Fatalf("node 3 got %d refusals, want 2", refusals)
	}
	c.campaign(1)
	if st := c.status(1); st.Role != Leader {
		t.Fatalf("node 1 with the most up-to-date log lost: %+v", st)
	}
}
