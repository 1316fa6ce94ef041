package raftlogic

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

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
		{"snapshot with a learner that is a voter", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: Snapshot{Meta: SnapshotMeta{Index: 9, Term: 5, ConfState: ConfState{Voters: voters, Learners: []uint64{2}}}}}, ErrInvalidMessage},
		{"snapshot with a zero learner", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: Snapshot{Meta: SnapshotMeta{Index: 9, Term: 5, ConfState: ConfState{Voters: voters, Learners: []uint64{0}}}}}, ErrInvalidMessage},
		{"snapshot with a repeated outgoing voter", Message{Type: MsgSnap, From: 2, To: 1, Term: 5, Snapshot: Snapshot{Meta: SnapshotMeta{Index: 9, Term: 5, ConfState: ConfState{Voters: voters, VotersOutgoing: []uint64{1, 1}}}}}, ErrInvalidMessage},
		{"conf change entry that does not decode", Message{Type: MsgApp, From: 2, To: 1, Term: 5, Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 5, Type: EntryConfChange, Data: []byte{1, 9}}}}, ErrInvalidMessage},
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
		{"no voters", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Voters = nil }},
		{"zero voter id", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Voters = []uint64{1, 0, 3} }},
		{"repeated voter id", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Voters = []uint64{1, 2, 2} }},
		{"learner also a voter", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Learners = []uint64{3} }},
		{"zero learner id", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.Learners = []uint64{0} }},
		{"learners without voters", func(_ *Config, s *InitialState) { s.Snapshot.ConfState = ConfState{Learners: []uint64{4}} }},
		{"repeated outgoing voter", func(_ *Config, s *InitialState) { s.Snapshot.ConfState.VotersOutgoing = []uint64{1, 1} }},
		{"negative MaxLearnerLag", func(c *Config, _ *InitialState) { c.MaxLearnerLag = -1 }},
		{"conf change entry that does not decode", func(_ *Config, s *InitialState) {
			s.Entries[1].Type = EntryConfChange
			s.Entries[1].Data = []byte{1, 200}
		}},
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
