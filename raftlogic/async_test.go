package raftlogic

import (
	"slices"
	"testing"
)

// Config.AsyncStorageWrites: the driver writes the log off the node's
// critical path and reports durability with StableTo. Raft thesis 10.2.1
// allows a leader to write its log in parallel with its followers, as long
// as it counts itself toward commit only once its copy is durable; the
// rest of these tests check the bookkeeping that makes the order safe
// (§5.3 truncation, §7 snapshots).

func asyncConfig(id uint64) Config {
	cfg := testConfig(id)
	cfg.AsyncStorageWrites = true
	return cfg
}

// requireEntries fails unless ents are the entries (index, term) of want.
func requireEntries(t *testing.T, what string, ents, want []Entry) {
	t.Helper()
	if !slices.EqualFunc(ents, want, entryEqual) {
		t.Fatalf("%s: got %v, want %v", what, ents, want)
	}
}

func TestAsync_10_2_1_LeaderCommitsOwnEntryOnlyAtStableTo(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		n := newTestNode(t, asyncConfig(1), stateWithLog([]uint64{1}, 0, 0))
		n.Campaign()
		rd := n.Ready()
		if len(rd.Entries) != 1 || rd.Entries[0].Index != 1 {
			t.Fatalf("Ready.Entries %v, want the no-op", rd.Entries)
		}
		n.Advance(rd)
		// Handed out is not durable: a single node is its own quorum, and
		// still must not commit.
		if st := n.Status(); st.Commit != 0 || st.Stabled != 0 {
			t.Fatalf("after Advance of an async write: commit %d, stabled %d, want 0, 0", st.Commit, st.Stabled)
		}
		n.StableTo(1, 1)
		if st := n.Status(); st.Commit != 1 || st.Stabled != 1 {
			t.Fatalf("after StableTo(1, 1): commit %d, stabled %d, want 1, 1", st.Commit, st.Stabled)
		}
		rd = advance(n)
		if len(rd.CommittedEntries) != 1 || rd.CommittedEntries[0].Index != 1 {
			t.Fatalf("committed entries %v, want the no-op", rd.CommittedEntries)
		}
	})
	t.Run("three nodes, a follower acknowledges first", func(t *testing.T) {
		c := newCluster(t, 3, withConfig(func(cfg *Config) { cfg.AsyncStorageWrites = true }))
		c.elect(1)
		c.cut(1, 3)
		c.nodes[1].holdWrites = true // the leader's disk is slow
		idx := c.propose(1, "x")
		leader := c.node(1)
		// Node 2 stored the entry and said so; the leader's own copy is
		// still being written. Two copies of three are a quorum, but only
		// one is durable.
		if m := leader.prs[2].match; m != idx {
			t.Fatalf("leader's match for node 2 is %d, want %d (node 2 acknowledged)", m, idx)
		}
		if st := c.status(1); st.Commit != idx-1 || st.LastIndex != idx {
			t.Fatalf("leader commit %d (last index %d) before its own write is durable, want %d", st.Commit, st.LastIndex, idx-1)
		}
		if got := len(c.nodes[1].writes); got != 1 {
			t.Fatalf("leader has %d writes in flight, want 1", got)
		}
		c.completeWrites(1, 1)
		if st := c.status(1); st.Commit != idx {
			t.Fatalf("leader commit %d once its write is durable, want %d", st.Commit, idx)
		}
		c.nodes[1].holdWrites = false
		c.heal()
		c.stabilize()
		for _, id := range c.ids {
			if got := c.nodes[id].applied(); got != idx {
				t.Errorf("node %d applied %d, want %d: the new commit index reached it", id, got, idx)
			}
		}
	})
}

func TestAsync_EntriesHandedOutOnce(t *testing.T) {
	n := newTestNode(t, asyncConfig(1), stateWithLog([]uint64{1}, 0, 0))
	n.Campaign()
	advance(n) // the no-op, still in flight
	if _, _, err := n.Propose([]byte("x")); err != nil {
		t.Fatal(err)
	}
	rd := n.Ready()
	if len(rd.Entries) != 1 || rd.Entries[0].Index != 2 {
		t.Fatalf("Ready.Entries %v, want only the new entry 2 (the no-op was handed out before)", rd.Entries)
	}
	n.Advance(rd)
	if n.HasReady() {
		t.Fatalf("HasReady with nothing new: Ready %+v", n.Ready())
	}
	// A follower sent the same entries twice does not write them twice.
	f := newTestNode(t, asyncConfig(2), stateWithLog(voterIDs(3), 0, 0))
	app := Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1)}
	mustStep(t, f, app)
	rd = f.Ready()
	requireEntries(t, "first MsgApp", rd.Entries, mkEntries(1, 1, 1))
	f.Advance(rd)
	mustStep(t, f, app)
	if rd = advance(f); len(rd.Entries) != 0 {
		t.Fatalf("the repeated MsgApp hands out %v again", rd.Entries)
	}
	if acks := msgsOfType(rd.Messages, MsgAppResp); len(acks) != 1 || acks[0].Index != 2 {
		t.Fatalf("answer to the repeated MsgApp %+v, want an acknowledgement of index 2", rd.Messages)
	}
}

// §5.3: a follower truncates a conflicting suffix. The entries that replace
// it are handed out again, and a late report for the replaced write, whose
// last entry the log no longer holds, marks nothing durable.
func TestAsync_5_3_ReplacedEntriesHandedOutAgainAndStaleStableToIgnored(t *testing.T) {
	n := newTestNode(t, asyncConfig(2), stateWithLog(voterIDs(3), 0, 0))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1, 1)})
	rd := n.Ready()
	requireEntries(t, "term 1's entries", rd.Entries, mkEntries(1, 1, 1, 1))
	n.Advance(rd) // write A: 1@1 2@1 3@1, in flight
	// Leader 3 of term 2 replaces 2..3 and commits through 3.
	mustStep(t, n, Message{Type: MsgApp, From: 3, To: 2, Term: 2, Index: 1, LogTerm: 1, Entries: mkEntries(2, 2, 2), Commit: 3})
	rd = n.Ready()
	requireEntries(t, "the replacing entries", rd.Entries, mkEntries(2, 2, 2))
	if len(rd.CommittedEntries) != 0 {
		t.Fatalf("committed entries %v handed out before any is durable", rd.CommittedEntries)
	}
	n.Advance(rd) // write B: 2@2 3@2, in flight
	// Write A finishes: the log no longer holds 3@1, so the report says
	// nothing about the log as it is (index 3 now holds 3@2, not durable).
	n.StableTo(3, 1)
	if st := n.Status(); st.Stabled != 0 {
		t.Fatalf("stabled %d after a report for the replaced entry 3@1, want 0", st.Stabled)
	}
	if n.HasReady() {
		if rd := n.Ready(); len(rd.CommittedEntries) > 0 {
			t.Fatalf("committed entries %v handed out on a stale report", rd.CommittedEntries)
		}
	}
	n.StableTo(3, 2)
	if st := n.Status(); st.Stabled != 3 {
		t.Fatalf("stabled %d after write B is durable, want 3", st.Stabled)
	}
	rd = advance(n)
	requireEntries(t, "committed entries once durable", rd.CommittedEntries, append(mkEntries(1, 1), mkEntries(2, 2, 2)...))
}

// §5.3: a report may arrive after a truncation is stepped but before the
// Ready that hands out the replacing entries, so no write in flight yet
// overwrites them. The term check alone then keeps the report from
// marking the replacing entries durable.
func TestAsync_5_3_ReportBetweenTruncationAndItsReadyIgnored(t *testing.T) {
	n := newTestNode(t, asyncConfig(2), stateWithLog(voterIDs(3), 0, 0))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1, 1)})
	advance(n) // write A: 1@1 2@1 3@1
	mustStep(t, n, Message{Type: MsgApp, From: 3, To: 2, Term: 2, Index: 1, LogTerm: 1, Entries: mkEntries(2, 2, 2), Commit: 3})
	n.StableTo(3, 1) // write A lands; 3@1 is no longer in the log
	if st := n.Status(); st.Stabled != 0 {
		t.Fatalf("stabled %d after a report for the replaced entry 3@1, want 0", st.Stabled)
	}
	rd := advance(n)
	requireEntries(t, "the replacing entries", rd.Entries, mkEntries(2, 2, 2))
	if len(rd.CommittedEntries) != 0 {
		t.Fatalf("committed entries %v handed out before their write", rd.CommittedEntries)
	}
	n.StableTo(3, 2)
	rd = advance(n)
	requireEntries(t, "committed once durable", rd.CommittedEntries, append(mkEntries(1, 1), mkEntries(2, 2, 2)...))
}

// Ready's contract in async mode: committed entries are handed out for
// apply only as far as the local log is reported durable.
func TestAsync_CommittedEntriesNotAppliedBeyondStabled(t *testing.T) {
	n := newTestNode(t, asyncConfig(2), stateWithLog(voterIDs(3), 0, 0))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1)})
	advance(n) // write A: 1..2
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Index: 2, LogTerm: 1, Entries: mkEntries(3, 1), Commit: 3})
	rd := advance(n) // write B: 3
	if st := n.Status(); st.Commit != 3 || len(rd.CommittedEntries) != 0 {
		t.Fatalf("commit %d, committed entries %v: want commit 3 and nothing to apply", st.Commit, rd.CommittedEntries)
	}
	if n.HasReady() {
		t.Fatalf("HasReady with nothing durable: %+v", n.Ready())
	}
	n.StableTo(2, 1)
	rd = advance(n)
	requireEntries(t, "after write A", rd.CommittedEntries, mkEntries(1, 1, 1))
	n.StableTo(3, 1)
	rd = advance(n)
	requireEntries(t, "after write B", rd.CommittedEntries, mkEntries(3, 1))
	if st := n.Status(); st.Applied != 3 {
		t.Fatalf("applied %d, want 3", st.Applied)
	}
}

// §7 in async mode: a Ready carrying a snapshot is written after every
// earlier write and advanced only once durable, so Advance marks it, and
// the entries written with it, durable; reports for writes the snapshot
// replaced change nothing.
func TestAsync_7_SnapshotReadyDurableAtAdvance(t *testing.T) {
	voters := voterIDs(3)
	n := newTestNode(t, asyncConfig(2), stateWithLog(voters, 0, 0))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1)})
	advance(n) // write A: 1..2, in flight
	snap := Snapshot{Meta: SnapshotMeta{Index: 5, Term: 2, ConfState: ConfState{Voters: voters}}, Data: []byte("image")}
	mustStep(t, n, Message{Type: MsgSnap, From: 3, To: 2, Term: 2, Snapshot: snap})
	// An entry after the snapshot arrives before the driver takes the Ready.
	mustStep(t, n, Message{Type: MsgApp, From: 3, To: 2, Term: 2, Index: 5, LogTerm: 2, Entries: mkEntries(6, 2), Commit: 6})
	rd := n.Ready()
	if rd.Snapshot.Meta.Index != 5 {
		t.Fatalf("Ready snapshot %+v, want snapshot 5", rd.Snapshot.Meta)
	}
	requireEntries(t, "entries with the snapshot", rd.Entries, mkEntries(6, 2))
	// The driver waits for write A, then writes the snapshot and entry 6.
	n.StableTo(2, 1)
	if st := n.Status(); st.Stabled != 5 {
		t.Fatalf("stabled %d, want 5 (the report for a write under the snapshot changes nothing)", st.Stabled)
	}
	n.Advance(rd)
	if st := n.Status(); st.Stabled != 6 || st.Applied != 5 || st.Commit != 6 {
		t.Fatalf("after the snapshot Ready: %+v, want stabled 6, applied 5, commit 6", st)
	}
	rd = advance(n)
	if len(rd.Entries) != 0 {
		t.Fatalf("entries %v handed out again after the snapshot Ready", rd.Entries)
	}
	requireEntries(t, "committed after the snapshot", rd.CommittedEntries, mkEntries(6, 2))
}

// §5.3, the ABA case: a follower's suffix is replaced (term 1 by term 2)
// and then replaced back (term 2 by the original term 1 entries, which a
// later leader still holds) while all three writes are in flight. When the
// first write is reported, the log holds its last entry again, but the
// second write, still to land, will overwrite it on disk: the report may
// not make that entry durable until the third write is reported.
func TestAsync_5_3_ReportBeforeAPendingRewriteIsNotDurable(t *testing.T) {
	n := newTestNode(t, asyncConfig(2), stateWithLog(voterIDs(3), 0, 0))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1, 1)})
	advance(n) // write A: 1@1 2@1 3@1
	mustStep(t, n, Message{Type: MsgApp, From: 3, To: 2, Term: 2, Index: 1, LogTerm: 1, Entries: mkEntries(2, 2)})
	rd := advance(n) // write B: 2@2, replacing 2@1 and 3@1
	requireEntries(t, "write B", rd.Entries, mkEntries(2, 2))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 1, LogTerm: 1, Entries: mkEntries(2, 1, 1), Commit: 4})
	rd = advance(n) // write C: 2@1 3@1 again
	requireEntries(t, "write C", rd.Entries, mkEntries(2, 1, 1))

	n.StableTo(3, 1) // write A is durable; B and C are not
	if st := n.Status(); st.Stabled != 1 {
		t.Fatalf("stabled %d after write A's report, want 1: write B will overwrite index 2 on disk", st.Stabled)
	}
	if rd := advance(n); len(rd.CommittedEntries) != 1 || rd.CommittedEntries[0].Index != 1 {
		t.Fatalf("committed entries %v, want only entry 1", rd.CommittedEntries)
	}
	n.StableTo(2, 2) // write B: its entry is gone from the log
	if st := n.Status(); st.Stabled != 1 {
		t.Fatalf("stabled %d after write B's report, want 1", st.Stabled)
	}
	n.StableTo(3, 1) // write C
	if st := n.Status(); st.Stabled != 3 {
		t.Fatalf("stabled %d after write C's report, want 3", st.Stabled)
	}
	rd = advance(n)
	requireEntries(t, "committed once write C is durable", rd.CommittedEntries, mkEntries(2, 1, 1))
}

// The same ABA with real elections, five nodes (the case etcd-io/raft
// documents for its asynchronous writes). B's writes land but its reports
// lag, as a report is a message to the node that other input may overtake:
// A's entry reaches only B, C (term 2) replaces it on B only, and A, back
// in term 3, replaces it back; that last write is still in flight when
// the first report arrives. What B believes durable must be on its disk
// after each report.
func TestAsync_5_3_ABAAcrossThreeLeaders(t *testing.T) {
	const a, b, cc, d, e = 1, 2, 3, 4, 5
	c := newCluster(t, 5, withConfig(func(cfg *Config) { cfg.AsyncStorageWrites = true }))
	c.elect(a)
	c.nodes[b].holdReports = true
	for _, o := range []uint64{cc, d, e} {
		c.cut(a, o)
	}
	idx := c.propose(a, "x") // 2@1, on A's disk and B's only
	c.crash(a)
	// C wins term 2 with D and E (B's log is ahead of C's), but its
	// entries reach only B.
	noApp := func(m Message) bool { return m.Type == MsgApp }
	c.filter(cc, d, noApp)
	c.filter(cc, e, noApp)
	c.campaign(cc)
	if st := c.status(cc); st.Role != Leader || st.Term != 2 {
		t.Fatalf("C: %+v, want leader of term 2", st)
	}
	if got := termsOf(c.nodes[b].disk.ents); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("B's disk log terms %v, want [1 2]: C's no-op replaced A's entry", got)
	}
	c.crash(cc)
	// A, back, wins term 3 with D and E, and puts its entry back on B;
	// B's disk is slow for that write.
	c.start(a)
	c.heal()
	c.cut(a, cc)
	c.filter(a, b, func(m Message) bool {
		if hasEntryOfTerm(m, 1) {
			c.nodes[b].holdWrites = true
		}
		return false
	})
	c.campaign(a) // term 2: D and E voted for C already
	c.campaign(a)
	if st := c.status(a); st.Role != Leader || st.Term != 3 {
		t.Fatalf("A: %+v, want leader of term 3", st)
	}
	tn := c.nodes[b]
	if got := termsOf(logEntries(tn.n)); !slices.Equal(got, []uint64{1, 1, 3}) {
		t.Fatalf("B's log terms %v, want [1 1 3]: A's entry is back", got)
	}
	if len(tn.reports) < 2 || len(tn.writes) != 1 {
		t.Fatalf("B has %d writes unreported and %d in flight, want at least 2 and 1", len(tn.reports), len(tn.writes))
	}
	for len(tn.reports) > 0 {
		c.reportWrites(b, 1)
		st := tn.n.Status()
		if tt, _ := tn.n.log.term(st.Stabled); st.Stabled > tn.disk.snap.Meta.Index && !tn.disk.holds(Entry{Index: st.Stabled, Term: tt}) {
			t.Fatalf("B believes entry %d (term %d) durable, but its disk log terms are %v", st.Stabled, tt, termsOf(tn.disk.ents))
		}
	}
	if st := tn.n.Status(); st.Stabled != 1 {
		t.Fatalf("B's stabled %d before A's entry is back on its disk, want 1", st.Stabled)
	}
	tn.holdWrites, tn.holdReports = false, false
	c.filter(a, b, nil)
	c.stabilize()
	c.tick(a) // a heartbeat carries the commit index to B
	if st := tn.n.Status(); st.Stabled != 3 || tn.applied() < idx {
		t.Fatalf("B: stabled %d, applied %d; want 3 and at least %d", st.Stabled, tn.applied(), idx)
	}
}

// A driver may merge the writes of several Readies into one (RaftKV's log
// writer does, while a sync runs) and report only the merged write's last
// entry: that covers every write before it, a replaced one included.
func TestAsync_MergedWritesReportedOnce(t *testing.T) {
	n := newTestNode(t, asyncConfig(2), stateWithLog(voterIDs(3), 0, 0))
	mustStep(t, n, Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: mkEntries(1, 1, 1, 1)})
	advance(n) // 1@1 2@1 3@1
	mustStep(t, n, Message{Type: MsgApp, From: 3, To: 2, Term: 2, Index: 1, LogTerm: 1, Entries: mkEntries(2, 2, 2)})
	advance(n) // 2@2 3@2, merged with the above: 1@1 2@2 3@2
	mustStep(t, n, Message{Type: MsgApp, From: 3, To: 2, Term: 2, Index: 3, LogTerm: 2, Entries: mkEntries(4, 2), Commit: 4})
	advance(n) // 4@2, merged too
	n.StableTo(4, 2)
	if st := n.Status(); st.Stabled != 4 {
		t.Fatalf("stabled %d after the merged write's report, want 4", st.Stabled)
	}
	rd := advance(n)
	requireEntries(t, "committed entries", rd.CommittedEntries, append(mkEntries(1, 1), mkEntries(2, 2, 2, 2)...))
}
