package raftlogic

import (
	"reflect"
	"slices"
	"testing"
)

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
