package raftlogic

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// These tests follow the Raft paper ("In Search of an Understandable
// Consensus Algorithm", extended version) section by section, and Ongaro's
// thesis for the extensions. Each test name says the rule it checks.

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

func requireNotLeaderError(t *testing.T, err error, leader uint64) {
	t.Helper()
	var nle *NotLeaderError
	if !errors.As(err, &nle) {
		t.Fatalf("error %v (%T) is not a *NotLeaderError", err, err)
	}
	if !errors.Is(err, ErrNotLeader) || errors.Is(err, ErrTransferInProgress) {
		t.Fatalf("error %v: errors.Is(ErrNotLeader)=%v, errors.Is(ErrTransferInProgress)=%v", err, errors.Is(err, ErrNotLeader), errors.Is(err, ErrTransferInProgress))
	}
	if nle.Leader != leader || nle.Transferring {
		t.Fatalf("NotLeaderError names leader %d (transferring %v), want %d", nle.Leader, nle.Transferring, leader)
	}
}

// ---------------------------------------------------------------------------
// §5.1, §5.2: terms and leader election.

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
		{Type: MsgVote, From: 1, To: 3, Term: 2, Index: 5, LogTerm: 2},
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

// ---------------------------------------------------------------------------
// §5.3: log replication.

func TestReplication_5_3_ConsistencyCheckRejectsMismatch(t *testing.T) {
	voters := voterIDs(3)
	// Follower 2 holds [1 1 2] at term 2; leader 1 of term 3 sends.
	for _, tc := range []struct {
		name               string
		prevIndex, prevTrm uint64
		// The follower's hint: its last index at or below the probe whose
		// term is at most the probe's term, and that term.
		wantHint, wantTerm uint64
	}{
		{"prev entry of a later term", 3, 3, 3, 2},
		{"prev entry of an earlier term", 2, 2, 2, 1},
		{"prev entry beyond the log", 5, 3, 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNode(t, testConfig(2), stateWithLog(voters, 2, 1, 1, 1, 2))
			advance(n)
			m := Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: tc.prevIndex, LogTerm: tc.prevTrm, Entries: mkEntries(tc.prevIndex+1, 3), Commit: tc.prevIndex + 1}
			mustStep(t, n, m)
			rd := advance(n)
			if got := termsOf(logEntries(n)); !slices.Equal(got, []uint64{1, 1, 2}) {
				t.Fatalf("log after a mismatched MsgApp: %v, want [1 1 2]", got)
			}
			if len(rd.Entries) != 0 || n.Status().Commit != 1 {
				t.Fatalf("a refused MsgApp persisted %v / moved commit to %d", rd.Entries, n.Status().Commit)
			}
			resp := msgsOfType(rd.Messages, MsgAppResp)
			if len(resp) != 1 || !resp[0].Reject || resp[0].Index != m.Index {
				t.Fatalf("answer %+v, want one rejection of index %d", resp, m.Index)
			}
			if resp[0].RejectHint != tc.wantHint || resp[0].LogTerm != tc.wantTerm {
				t.Fatalf("rejection hint (%d, term %d), want (%d, term %d)", resp[0].RejectHint, resp[0].LogTerm, tc.wantHint, tc.wantTerm)
			}
		})
	}
	t.Run("matching prev entry accepted", func(t *testing.T) {
		n := newTestNode(t, testConfig(2), stateWithLog(voters, 2, 1, 1, 1, 2))
		mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 3, LogTerm: 2, Entries: mkEntries(4, 3)})
		rd := advance(n)
		if got := termsOf(logEntries(n)); !slices.Equal(got, []uint64{1, 1, 2, 3}) {
			t.Fatalf("log %v, want [1 1 2 3]", got)
		}
		if resp := msgsOfType(rd.Messages, MsgAppResp); len(resp) != 1 || resp[0].Reject || resp[0].Index != 4 {
			t.Fatalf("answer %+v, want acceptance up to 4", resp)
		}
	})
}

func TestReplication_5_3_ConflictingEntriesTruncated(t *testing.T) {
	// Follower [1 1 2 2 2]; the leader of term 3 says index 3 onward is
	// [3 3]: entries 3..5 go, 3..4 are replaced.
	n := newTestNode(t, testConfig(2), stateWithLog(voterIDs(3), 2, 1, 1, 1, 2, 2, 2))
	advance(n)
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 2, LogTerm: 1, Entries: mkEntries(3, 3, 3)})
	rd := advance(n)
	if got := termsOf(logEntries(n)); !slices.Equal(got, []uint64{1, 1, 3, 3}) {
		t.Fatalf("log %v, want [1 1 3 3]", got)
	}
	if !slices.EqualFunc(rd.Entries, mkEntries(3, 3, 3), entryEqual) {
		t.Fatalf("Ready.Entries %v, want the replacements from index 3", rd.Entries)
	}
	if st := n.Status(); st.LastIndex != 4 || st.Stabled != 4 {
		t.Fatalf("status %+v, want last index 4 stabled", st)
	}
}

// §5.3: only a conflicting entry truncates. A delayed or duplicated MsgApp
// whose entries the follower already holds must not cut the log short.
func TestReplication_5_3_MatchingEntriesNotTruncated(t *testing.T) {
	n := newTestNode(t, testConfig(2), stateWithLog(voterIDs(3), 2, 1, 1, 1, 2, 2, 2))
	advance(n)
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 1, LogTerm: 1, Entries: mkEntries(2, 1, 2)})
	rd := advance(n)
	if got := termsOf(logEntries(n)); !slices.Equal(got, []uint64{1, 1, 2, 2, 2}) {
		t.Fatalf("log %v, want [1 1 2 2 2] unchanged", got)
	}
	if len(rd.Entries) != 0 {
		t.Fatalf("nothing new, yet Ready.Entries %v", rd.Entries)
	}
	if resp := msgsOfType(rd.Messages, MsgAppResp); len(resp) != 1 || resp[0].Reject || resp[0].Index != 3 {
		t.Fatalf("answer %+v, want acceptance up to 3 (the last entry the MsgApp vouches for)", resp)
	}
}

// §5.3 (AppendEntries receiver rule 5): commit = min(leaderCommit, index of
// last new entry). Entries after the verified prefix may be stale.
func TestReplication_5_3_FollowerCommitCappedAtLastNewEntry(t *testing.T) {
	// Follower [1 1 1] with commit 0: entries 2..3 come from a deposed leader.
	n := newTestNode(t, testConfig(2), stateWithLog(voterIDs(3), 1, 0, 1, 1, 1))
	advance(n)
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 1, LogTerm: 1, Commit: 3})
	if st := n.Status(); st.Commit != 1 {
		t.Fatalf("commit %d, want 1: only index 1 is vouched for by the leader", st.Commit)
	}
	rd := advance(n)
	if len(rd.CommittedEntries) != 1 || rd.CommittedEntries[0].Index != 1 {
		t.Fatalf("committed entries %v, want only index 1", rd.CommittedEntries)
	}
}

// §5.3 / Leader Completeness: committed entries are never overwritten. A
// MsgApp whose previous entry lies below the commit index (a delayed
// duplicate, or one whose entries disagree with the committed log) leaves
// the committed log alone and is answered with the commit index.
func TestReplication_5_3_CommittedEntriesNeverOverwritten(t *testing.T) {
	n := newTestNode(t, testConfig(1), stateWithLog(voterIDs(3), 2, 3, 1, 1, 2, 2))
	mustStep(t, n, Message{Type: MsgHeartbeat, From: 2, To: 1, Term: 2, Commit: 3})
	advance(n)
	before := n.Status()
	mustStep(t, n, Message{Type: MsgApp, From: 2, To: 1, Term: 2, Index: 2, LogTerm: 1, Entries: mkEntries(3, 1, 1)})
	rd := advance(n)
	if got := termsOf(logEntries(n)); !slices.Equal(got, []uint64{1, 1, 2, 2}) {
		t.Fatalf("log %v, want [1 1 2 2]", got)
	}
	if st := n.Status(); !reflect.DeepEqual(st, before) || len(rd.Entries) != 0 {
		t.Fatalf("MsgApp below the commit index changed the node: %+v", st)
	}
	if resp := msgsOfType(rd.Messages, MsgAppResp); len(resp) != 1 || resp[0].Reject || resp[0].Index != 3 {
		t.Fatalf("answer %+v, want an acknowledgement of the commit index 3", resp)
	}
}

// A heartbeat has no consistency check, so the leader caps the commit index
// it carries at what the follower is known to hold.
func TestReplication_5_3_HeartbeatCommitCappedAtMatch(t *testing.T) {
	c := newCluster(t, 3)
	c.elect(1)
	c.tick(1)
	c.isolate(3)
	c.propose(1, "a", "b")
	if st := c.status(1); st.Commit != 3 {
		t.Fatalf("leader commit %d, want 3", st.Commit)
	}
	mark := len(c.sent)
	c.tick(1)
	for _, m := range msgsOfType(c.sent[mark:], MsgHeartbeat) {
		want := uint64(3)
		if m.To == 3 {
			want = 1 // node 3 is known to hold only the no-op
		}
		if m.Commit != want {
			t.Errorf("heartbeat to %d carries commit %d, want %d", m.To, m.Commit, want)
		}
	}
	if k := len(msgsOfType(c.sent[mark:], MsgHeartbeat)); k != 2 {
		t.Fatalf("%d heartbeats, want 2", k)
	}
}

// Figure 7: whatever a follower's log looks like — missing entries, extra
// uncommitted entries, or both — the leader brings it to its own, and the
// fast back-off needs about one rejection per conflicting term, not one per
// entry.
func TestReplication_5_3_Figure7_LeaderRepairsEveryFollower(t *testing.T) {
	leaderLog := []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	for _, tc := range []struct {
		name  string
		terms []uint64
		// naive is how many rejections one-entry-at-a-time back-off takes.
		naive int
	}{
		{"a", []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6}, 1},
		{"b", []uint64{1, 1, 1, 4}, 6},
		{"c", []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 0},
		{"d", []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 0},
		{"e", []uint64{1, 1, 1, 4, 4, 4, 4}, 5},
		{"f", []uint64{1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			followerTerm := tc.terms[len(tc.terms)-1]
			// The leader was elected in term 8 (it saw term 7); node 3 holds
			// the leader's log and votes for it.
			c := newCluster(t, 3,
				withLog(1, 7, 3, leaderLog...),
				withLog(2, followerTerm, 3, tc.terms...),
				withLog(3, 7, 3, leaderLog...),
			)
			c.elect(1)
			c.tick(1)
			if st := c.status(1); st.Term != 8 {
				t.Fatalf("leader term %d, want 8", st.Term)
			}
			want := append(slices.Clone(leaderLog), 8)
			if got := termsOf(logEntries(c.node(1))); !slices.Equal(got, want) {
				t.Fatalf("the leader's log changed: %v, want %v", got, want)
			}
			c.requireSameLog(2, 1)
			if got := c.nodes[2].applied(); got != uint64(len(want)) {
				t.Fatalf("follower applied %d entries, want %d", got, len(want))
			}
			// Fast back-off: bounded by the follower's conflicting terms.
			conflicting := map[uint64]bool{}
			for i, term := range tc.terms {
				if i >= len(want) || want[i] != term {
					conflicting[term] = true
				}
			}
			rejections := count(c.delivered, func(m Message) bool { return m.Type == MsgAppResp && m.From == 2 && m.Reject })
			if rejections > len(conflicting)+1 {
				t.Fatalf("%d rejected MsgAppResp, want at most %d (conflicting terms %v, +1)", rejections, len(conflicting)+1, conflicting)
			}
			if tc.naive > 1 && rejections >= tc.naive {
				t.Fatalf("%d rejections: no better than backing off one entry at a time (%d)", rejections, tc.naive)
			}
			t.Logf("follower (%s) repaired with %d rejections", tc.name, rejections)
		})
	}
}

func TestReplication_5_3_FastBackoffRepairsLongStaleLog(t *testing.T) {
	stale := make([]uint64, 1001)
	stale[0] = 1
	for i := 1; i < len(stale); i++ {
		stale[i] = 2 // 1000 entries of term 2 nobody committed
	}
	for _, tc := range []struct {
		name      string
		leaderLog []uint64
	}{
		{"follower longer", []uint64{1, 3}},
		{"follower as long", append([]uint64{1}, slices.Repeat([]uint64{3}, 1000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3,
				withLog(1, 3, 1, tc.leaderLog...),
				withLog(2, 2, 1, stale...),
				withLog(3, 3, 1, tc.leaderLog...),
			)
			c.elect(1)
			c.tick(1)
			c.requireSameLog(2, 1)
			rejections := count(c.delivered, func(m Message) bool { return m.Type == MsgAppResp && m.From == 2 && m.Reject })
			apps := count(c.delivered, func(m Message) bool { return m.Type == MsgApp && m.To == 2 })
			if rejections > 2 {
				t.Fatalf("%d rejections to repair 1000 stale entries, want at most 2", rejections)
			}
			if apps > 10 {
				t.Fatalf("%d MsgApp to repair the follower, want a handful", apps)
			}
			t.Logf("%d rejections, %d MsgApp", rejections, apps)
		})
	}
}

// ---------------------------------------------------------------------------
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
// it durable.
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

// ---------------------------------------------------------------------------
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
		for i := range 5 {
			if err := c.node(1).ReadIndex(fmt.Appendf(nil, "r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		// r0 started round 1 as it arrived; r1..r4 came after its
		// heartbeats left, so round 1 cannot vouch for them.
		c.hop() // round-1 heartbeats reach the followers
		c.hop() // their answers reach the leader
		if got := readCtxs(c.nodes[1].reads); !slices.Equal(got, []string{"r0"}) {
			t.Fatalf("after round 1 answered %v, want only r0", got)
		}
		c.stabilize()
		if got := readCtxs(c.nodes[1].reads); !slices.Equal(got, []string{"r0", "r1", "r2", "r3", "r4"}) {
			t.Fatalf("answered %v, want r0..r4", got)
		}
		beats, rounds := heartbeatRounds(c.sent[mark:], 1)
		if len(rounds) != 2 || beats != 4 {
			t.Fatalf("%d confirmation heartbeats in rounds %v for 5 reads, want 2 rounds (4 heartbeats): r0's, and one shared by r1..r4", beats, rounds)
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

// ---------------------------------------------------------------------------
// §7: log compaction and InstallSnapshot.

func TestSnapshot_7_LeaderSendsSnapshotToFollowerBehindCompactedLog(t *testing.T) {
	c := newCluster(t, 3)
	c.elect(1)
	c.tick(1)
	c.isolate(3)
	for i := range 5 {
		c.propose(1, fmt.Sprintf("v%d", i))
	}
	if st := c.status(1); st.Applied != 6 {
		t.Fatalf("leader applied %d, want 6", st.Applied)
	}
	if err := c.compact(1, 5); err != nil {
		t.Fatal(err)
	}
	if st := c.status(1); st.FirstIdx != 6 || st.Snapshot.Index != 5 || st.Snapshot.Term != 1 {
		t.Fatalf("leader after Compact(5): %+v", st)
	}
	c.heal()
	mark := len(c.sent)
	c.tick(1)
	snaps := msgsOfType(c.sent[mark:], MsgSnap)
	if len(snaps) != 1 || snaps[0].To != 3 || snaps[0].Snapshot.Meta.Index != 5 || snaps[0].Snapshot.Meta.Term != 1 {
		t.Fatalf("snapshots sent %+v, want one of index 5 to node 3", snaps)
	}
	if apps := count(c.sent[mark:], func(m Message) bool { return m.Type == MsgApp && m.To == 3 && m.Index < 5 }); apps != 0 {
		t.Fatalf("%d MsgApp to node 3 from before the compacted log start", apps)
	}
	st := c.status(3)
	if st.Snapshot.Index != 5 || st.FirstIdx != 6 || st.Applied != 6 || st.Commit != 6 {
		t.Fatalf("node 3 after the snapshot: %+v, want snapshot 5, log from 6, applied 6", st)
	}
	if c.nodes[3].disk.snap.Meta.Index != 5 {
		t.Fatalf("node 3 did not persist the snapshot: %+v", c.nodes[3].disk.snap.Meta)
	}
	if !slices.EqualFunc(c.nodes[3].sm, c.nodes[1].sm, entryEqual) {
		t.Fatalf("node 3's state machine %v differs from the leader's %v", c.nodes[3].sm, c.nodes[1].sm)
	}
	c.requireSameLog(3, 1)
	// Replication carries on normally.
	c.propose(1, "after")
	c.tick(1)
	if got, want := c.nodes[3].applied(), c.nodes[1].applied(); got != want || got != 7 {
		t.Fatalf("node 3 applied %d, leader %d, want 7", got, want)
	}
}

// Membership change is not supported yet: a snapshot whose configuration
// leaves out the receiver is refused, since the node could not restart
// from it.
func TestSnapshot_7_SnapshotWithoutReceiverRefused(t *testing.T) {
	n := newTestNode(t, testConfig(2), stateWithLog(voterIDs(3), 1, 1, 1))
	advance(n)
	before := n.Status()
	meta := SnapshotMeta{Index: 10, Term: 2, ConfState: ConfState{Voters: []uint64{1, 3}}}
	err := n.Step(Message{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: Snapshot{Meta: meta, Data: []byte("image")}})
	if !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("Step: %v, want ErrInvalidMessage", err)
	}
	if st := n.Status(); !reflect.DeepEqual(st, before) {
		t.Fatalf("a refused snapshot changed the node: %+v, was %+v", st, before)
	}
}

func TestSnapshot_7_FollowerInstallsSnapshot(t *testing.T) {
	voters := voterIDs(3)
	n := newTestNode(t, testConfig(2), stateWithLog(voters, 1, 1, 1, 1, 1))
	advance(n)
	meta := SnapshotMeta{Index: 10, Term: 2, ConfState: ConfState{Voters: voters}}
	mustStep(t, n, Message{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: Snapshot{Meta: meta, Data: []byte("image")}})
	st := n.Status()
	if st.FirstIdx != 11 || st.LastIndex != 10 || st.Commit != 10 || st.Applied != 1 {
		t.Fatalf("after MsgSnap: %+v, want log discarded, commit 10, applied still 1", st)
	}
	rd := n.Ready()
	if !reflect.DeepEqual(rd.Snapshot.Meta, meta) || string(rd.Snapshot.Data) != "image" {
		t.Fatalf("Ready.Snapshot %+v, want the received snapshot", rd.Snapshot)
	}
	if len(rd.Entries) != 0 || len(rd.CommittedEntries) != 0 {
		t.Fatalf("Ready with a snapshot also hands out entries %v / committed %v", rd.Entries, rd.CommittedEntries)
	}
	resp := msgsOfType(rd.Messages, MsgAppResp)
	if len(resp) != 1 || resp[0].Reject || resp[0].Index != 10 {
		t.Fatalf("answer %+v, want acknowledgement of 10", resp)
	}
	n.Advance(rd)
	if st := n.Status(); st.Applied != 10 {
		t.Fatalf("applied %d after the snapshot is installed, want 10", st.Applied)
	}
	if n.HasReady() {
		t.Fatalf("work left after installing: %+v", n.Ready())
	}
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 10, LogTerm: 2, Entries: mkEntries(11, 2), Commit: 11})
	if st := n.Status(); st.LastIndex != 11 || st.Commit != 11 {
		t.Fatalf("appending after the snapshot: %+v", st)
	}
}

func TestSnapshot_7_StaleSnapshotIgnored(t *testing.T) {
	voters := voterIDs(3)
	for _, idx := range []uint64{2, 3} {
		t.Run(fmt.Sprintf("index %d, commit 3", idx), func(t *testing.T) {
			n := newTestNode(t, testConfig(2), stateWithLog(voters, 1, 3, 1, 1, 1, 1, 1))
			advance(n)
			before := logEntries(n)
			mustStep(t, n, Message{Type: MsgSnap, From: 1, To: 2, Term: 1, Snapshot: Snapshot{Meta: SnapshotMeta{Index: idx, Term: 1, ConfState: ConfState{Voters: voters}}}})
			rd := advance(n)
			if !rd.Snapshot.IsEmpty() {
				t.Fatalf("a stale snapshot was handed out: %+v", rd.Snapshot.Meta)
			}
			if st := n.Status(); st.FirstIdx != 1 || st.LastIndex != 5 || st.Commit != 3 || st.Snapshot.Index != 0 {
				t.Fatalf("after a stale snapshot: %+v, want log and commit unchanged", st)
			}
			if !slices.EqualFunc(logEntries(n), before, entryEqual) {
				t.Fatal("a stale snapshot changed the log")
			}
			if resp := msgsOfType(rd.Messages, MsgAppResp); len(resp) != 1 || resp[0].Index != 3 {
				t.Fatalf("answer %+v, want acknowledgement of the commit index 3", resp)
			}
		})
	}
	// A snapshot older than the follower's own log start: installing it
	// would take the log and the state machine backwards.
	t.Run("older than the compacted log", func(t *testing.T) {
		st := InitialState{
			HardState: HardState{Term: 1, Commit: 7},
			Snapshot:  SnapshotMeta{Index: 5, Term: 1, ConfState: ConfState{Voters: voters}},
			Entries:   mkEntries(6, 1, 1),
			Applied:   5,
		}
		n := newTestNode(t, testConfig(2), st)
		mustStep(t, n, Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 1, Commit: 7})
		advance(n)
		before := n.Status()
		mustStep(t, n, Message{Type: MsgSnap, From: 1, To: 2, Term: 1, Snapshot: Snapshot{Meta: SnapshotMeta{Index: 3, Term: 1, ConfState: ConfState{Voters: voters}}}})
		rd := advance(n)
		if !rd.Snapshot.IsEmpty() {
			t.Fatalf("an older snapshot was handed out: %+v", rd.Snapshot.Meta)
		}
		if st := n.Status(); !reflect.DeepEqual(st, before) {
			t.Fatalf("an older snapshot changed the node: %+v, was %+v", st, before)
		}
	})
}

func TestSnapshot_7_SnapshotOfHeldEntryKeepsLog(t *testing.T) {
	voters := voterIDs(3)
	// Follower [1 1 2 2 2], commit 1. The snapshot covers up to 4@2, which
	// the follower holds: by Log Matching it holds everything before too.
	n := newTestNode(t, testConfig(2), stateWithLog(voters, 2, 1, 1, 1, 2, 2, 2))
	advance(n)
	mustStep(t, n, Message{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: Snapshot{Meta: SnapshotMeta{Index: 4, Term: 2, ConfState: ConfState{Voters: voters}}}})
	rd := advance(n)
	if !rd.Snapshot.IsEmpty() {
		t.Fatalf("snapshot handed out although the log holds its last entry: %+v", rd.Snapshot.Meta)
	}
	if got := termsOf(logEntries(n)); !slices.Equal(got, []uint64{1, 1, 2, 2, 2}) {
		t.Fatalf("log %v, want [1 1 2 2 2] kept, including entry 5 after the snapshot", got)
	}
	if st := n.Status(); st.Commit != 4 || st.FirstIdx != 1 {
		t.Fatalf("status %+v, want commit 4 and the log kept", st)
	}
	if resp := msgsOfType(rd.Messages, MsgAppResp); len(resp) != 1 || resp[0].Index != 4 {
		t.Fatalf("answer %+v, want acknowledgement of 4", resp)
	}

	// Contrast: a snapshot whose last entry conflicts with the log (4@3
	// against 4@2) replaces the whole log.
	n = newTestNode(t, testConfig(2), stateWithLog(voters, 2, 1, 1, 1, 2, 2, 2))
	advance(n)
	mustStep(t, n, Message{Type: MsgSnap, From: 1, To: 2, Term: 3, Snapshot: Snapshot{Meta: SnapshotMeta{Index: 4, Term: 3, ConfState: ConfState{Voters: voters}}}})
	rd = advance(n)
	if rd.Snapshot.Meta.Index != 4 {
		t.Fatalf("conflicting snapshot not installed: %+v", rd.Snapshot.Meta)
	}
	if st := n.Status(); st.FirstIdx != 5 || st.LastIndex != 4 || st.Applied != 4 {
		t.Fatalf("after a conflicting snapshot: %+v, want the log discarded", st)
	}
}

func TestSnapshot_7_CompactRefusals(t *testing.T) {
	n := newTestNode(t, testConfig(1), stateWithLog([]uint64{1}, 0, 0))
	n.Campaign()
	advance(n)
	advance(n)
	if _, _, err := n.Propose([]byte("a"), []byte("b"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	advance(n) // persists 2..4 and commits them
	if st := n.Status(); st.Commit != 4 || st.Applied != 1 {
		t.Fatalf("setup: %+v", st)
	}
	// Committed but not applied.
	before := n.Status()
	if _, err := n.Compact(3); !errors.Is(err, ErrUnapplied) {
		t.Fatalf("Compact(3) with applied 1: %v, want ErrUnapplied", err)
	}
	if st := n.Status(); !reflect.DeepEqual(st, before) {
		t.Fatalf("a refused Compact(3) changed the node: %+v", st)
	}
	advance(n) // applies 2..4
	for _, tc := range []struct {
		index uint64
		want  error
	}{
		{5, ErrUnapplied},
		{0, ErrCompacted},
	} {
		before = n.Status()
		if _, err := n.Compact(tc.index); !errors.Is(err, tc.want) {
			t.Fatalf("Compact(%d): %v, want %v", tc.index, err, tc.want)
		}
		if st := n.Status(); !reflect.DeepEqual(st, before) {
			t.Fatalf("a refused Compact(%d) changed the node: %+v", tc.index, st)
		}
	}
	meta, err := n.Compact(2)
	if err != nil || meta.Index != 2 || meta.Term != 1 || !slices.Equal(meta.ConfState.Voters, []uint64{1}) {
		t.Fatalf("Compact(2): %+v, %v", meta, err)
	}
	if st := n.Status(); st.FirstIdx != 3 || st.LastIndex != 4 {
		t.Fatalf("after Compact(2): %+v", st)
	}
	for _, idx := range []uint64{1, 2} {
		if _, err := n.Compact(idx); !errors.Is(err, ErrCompacted) {
			t.Fatalf("Compact(%d) at or below the log start 2: %v, want ErrCompacted", idx, err)
		}
	}
	if _, err := n.Compact(4); err != nil {
		t.Fatalf("Compact(4) = applied: %v", err)
	}
}

func TestSnapshot_7_RestartFromSnapshotAndLog(t *testing.T) {
	c := newCluster(t, 3)
	c.elect(1)
	c.propose(1, "a", "b", "c")
	c.tick(1)
	if err := c.compact(2, 2); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(c.nodes[2].sm)
	c.restart(2)
	if st := c.status(2); st.FirstIdx != 3 || st.LastIndex != 4 || st.Applied != 2 {
		t.Fatalf("restarted node: %+v, want log (2, 4] and applied 2 from the snapshot", st)
	}
	c.stabilize()
	if !slices.EqualFunc(c.nodes[2].sm, want, entryEqual) {
		t.Fatalf("restarted state machine %v, want %v", c.nodes[2].sm, want)
	}
}

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// Input validation: what no correct peer or driver does is refused with an
// error and changes nothing.

func TestStep_RefusesInvalidMessages(t *testing.T) {
	voters := voterIDs(3)
	snap := func(index, term uint64, voters ...uint64) Snapshot {
		return Snapshot{Meta: SnapshotMeta{Index: index, Term: term, ConfState: ConfState{Voters: voters}}}
	}
	// Messages carry term 5, above the node's 2, so a message processed
	// before being refused would show in the term.
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"from an unknown node", Message{Type: MsgApp, From: 9, To: 1, Term: 5}, ErrUnknownPeer},
		{"from no node", Message{Type: MsgVote, From: None, To: 1, Term: 5}, ErrUnknownPeer},
		{"from itself", Message{Type: MsgVote, From: 1, To: 1, Term: 5}, ErrUnknownPeer},
		{"addressed to another node", Message{Type: MsgApp, From: 2, To: 3, Term: 5}, ErrInvalidMessage},
		{"addressed to no node", Message{Type: MsgHeartbeat, From: 2, To: None, Term: 5}, ErrInvalidMessage},
		{"term 0", Message{Type: MsgApp, From: 2, To: 1, Term: 0}, ErrInvalidMessage},
		{"type 0", Message{Type: 0, From: 2, To: 1, Term: 5}, ErrInvalidMessage},
		{"unknown type", Message{Type: MsgTimeoutNow + 1, From: 2, To: 1, Term: 5}, ErrInvalidMessage},
		{"snapshot at index 0", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: snap(0, 1, voters...)}, ErrInvalidMessage},
		{"snapshot of term 0", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: snap(9, 0, voters...)}, ErrInvalidMessage},
		{"snapshot of a later term than its message", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: snap(9, 6, voters...)}, ErrInvalidMessage},
		{"snapshot without voters", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: snap(9, 5)}, ErrInvalidMessage},
		{"snapshot with a zero voter", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: snap(9, 5, 1, 2, 0)}, ErrInvalidMessage},
		{"snapshot with a repeated voter", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: snap(9, 5, 1, 2, 2)}, ErrInvalidMessage},
		{"entries not following the prev index", Message{Type: MsgApp, From: 2, To: 1, Term: 5, Index: 2, LogTerm: 1, Entries: mkEntries(4, 5)}, ErrInvalidMessage},
		{"entries with a gap", Message{Type: MsgApp, From: 2, To: 1, Term: 5, Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 5}, {Index: 5, Term: 5}}}, ErrInvalidMessage},
		{"entry of a later term than its message", Message{Type: MsgApp, From: 2, To: 1, Term: 5, Index: 2, LogTerm: 1, Entries: mkEntries(3, 9)}, ErrInvalidMessage},
		{"entry terms going down", Message{Type: MsgApp, From: 2, To: 1, Term: 5, Index: 2, LogTerm: 1, Entries: mkEntries(3, 5, 4)}, ErrInvalidMessage},
		{"entry of an earlier term than the prev entry", Message{Type: MsgApp, From: 2, To: 1, Term: 5, Index: 2, LogTerm: 3, Entries: mkEntries(3, 2)}, ErrInvalidMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Node 1 follows leader 2 in term 2 with log [1 1], commit 1.
			n := newTestNode(t, testConfig(1), stateWithLog(voters, 2, 1, 1, 1))
			mustStep(t, n, Message{Type: MsgHeartbeat, From: 2, To: 1, Term: 2, Commit: 1})
			advance(n)
			before, log := n.Status(), logEntries(n)
			err := n.Step(tc.m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Step: %v, want %v", err, tc.want)
			}
			if st := n.Status(); !reflect.DeepEqual(st, before) {
				t.Fatalf("a refused message changed the node:\n got %+v\nwant %+v", st, before)
			}
			if !slices.EqualFunc(logEntries(n), log, entryEqual) {
				t.Fatalf("a refused message changed the log to %v", termsOf(logEntries(n)))
			}
			if n.HasReady() {
				t.Fatalf("a refused message left work: %+v", n.Ready())
			}
		})
	}
}

func validates(cfg Config, st InitialState) bool {
	_, err := NewNode(cfg, st)
	return err == nil
}

func TestNewNode_RefusesInvalidConfigOrState(t *testing.T) {
	voters := voterIDs(3)
	valid := func() (Config, InitialState) {
		return testConfig(1), InitialState{
			HardState: HardState{Term: 3, Vote: 2, Commit: 4},
			Snapshot:  SnapshotMeta{Index: 2, Term: 1, ConfState: ConfState{Voters: slices.Clone(voters)}},
			Entries:   mkEntries(3, 1, 2, 3),
			Applied:   3,
		}
	}
	// Control: the base case every row changes is accepted.
	if cfg, st := valid(); !validates(cfg, st) {
		t.Fatal("the valid base case is refused")
	}
	for _, tc := range []struct {
		name   string
		change func(*Config, *InitialState)
	}{
		{"ID 0", func(c *Config, _ *InitialState) { c.ID = 0 }},
		{"ID not a voter", func(c *Config, _ *InitialState) { c.ID = 4 }},
		{"no voters", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Voters = nil }},
		{"zero voter id", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Voters = []uint64{1, 0, 3} }},
		{"repeated voter id", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Voters = []uint64{1, 2, 2} }},
		{"HeartbeatTick 0", func(c *Config, _ *InitialState) { c.HeartbeatTick = 0 }},
		{"HeartbeatTick negative", func(c *Config, _ *InitialState) { c.HeartbeatTick = -1 }},
		{"HeartbeatTick == ElectionTick", func(c *Config, _ *InitialState) { c.HeartbeatTick = c.ElectionTick }},
		{"HeartbeatTick > ElectionTick", func(c *Config, _ *InitialState) { c.HeartbeatTick = c.ElectionTick + 1 }},
		{"ElectionTick 0", func(c *Config, _ *InitialState) { c.ElectionTick = 0 }},
		{"negative MaxInflightMsgs", func(c *Config, _ *InitialState) { c.MaxInflightMsgs = -1 }},
		{"negative MaxEntriesPerMsg", func(c *Config, _ *InitialState) { c.MaxEntriesPerMsg = -1 }},
		{"negative MaxBytesPerMsg", func(c *Config, _ *InitialState) { c.MaxBytesPerMsg = -1 }},
		{"log not starting after the snapshot", func(_ *Config, s *InitialState) { s.Entries = mkEntries(4, 1, 2) }},
		{"log overlapping the snapshot", func(_ *Config, s *InitialState) { s.Entries = mkEntries(2, 1, 1, 2) }},
		{"log with a gap", func(_ *Config, s *InitialState) { s.Entries = append(mkEntries(3, 1), mkEntries(5, 2)...) }},
		{"log terms going down", func(_ *Config, s *InitialState) { s.Entries = mkEntries(3, 2, 1) }},
		{"log term below the snapshot's", func(_ *Config, s *InitialState) { s.Snapshot.Term = 2; s.Entries = mkEntries(3, 1) }},
		{"log term above the stored term", func(_ *Config, s *InitialState) { s.HardState.Term = 2 }},
		{"applied beyond the log", func(_ *Config, s *InitialState) { s.Applied = 6 }},
		{"applied below the snapshot", func(_ *Config, s *InitialState) { s.Applied = 1 }},
		{"commit beyond the log", func(_ *Config, s *InitialState) { s.HardState.Commit = 6 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, st := valid()
			tc.change(&cfg, &st)
			n, err := NewNode(cfg, st)
			if !errors.Is(err, ErrInvalidConfig) || n != nil {
				t.Fatalf("NewNode: (%v, %v), want (nil, ErrInvalidConfig)", n, err)
			}
		})
	}
}

func TestRequests_FollowerRefusesNamingLeader(t *testing.T) {
	c := newCluster(t, 3)
	c.elect(1)
	f := c.node(2)
	before := f.Status()
	_, _, err := f.Propose([]byte("x"))
	requireNotLeaderError(t, err, 1)
	requireNotLeaderError(t, f.TransferLeadership(3), 1)
	if st := f.Status(); !reflect.DeepEqual(st, before) || f.HasReady() {
		t.Fatalf("refused requests changed the follower: %+v", st)
	}
	// A leader refuses a transfer to a node outside the configuration.
	if err := c.node(1).TransferLeadership(7); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("TransferLeadership(7): %v, want ErrUnknownPeer", err)
	}
	if st := c.status(1); st.Transferee != None {
		t.Fatalf("refused transfer recorded: %+v", st)
	}
}
