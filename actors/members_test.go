package actors

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// memberNode is node id of a cluster whose bootstrap members are members,
// in a local actor system, keeping its data in dir. A joining node (join)
// is told the members' addresses but records no configuration.
func memberNode(sys *actor.ActorSystem, dir string, id uint64, join bool, members ...uint64) NodeConfig {
	cfg := nodeConfig(sys, dir, members...)
	cfg.ID, cfg.Join = id, join
	// Small snapshots, so a late member catches up from an image.
	cfg.SnapshotEntries, cfg.CatchUpEntries = 20, 5
	return cfg
}

// startMember starts a node with cfg and fails the test unless it starts.
func startMember(t *testing.T, sys *actor.ActorSystem, cfg NodeConfig) *testNode {
	t.Helper()
	n := startNode(t, sys, cfg)
	if err := n.startErr(); err != nil {
		t.Fatalf("node %d: %v", cfg.ID, err)
	}
	return n
}

// changeMembers asks node n for a membership change and returns its answer.
func (n *testNode) changeMembers(t raftpb.ConfChangeType, id uint64) *raftpb.ProposeResponse {
	n.t.Helper()
	req := &raftpb.ConfChangeRequest{ClusterId: testCluster, Changes: []*raftpb.ConfChangeSingle{{Type: t, NodeId: id}}}
	if t == raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER {
		req.Members = []*raftpb.Member{{Id: id, PeerAddress: n.sys.Address(), ClientAddress: fmt.Sprintf("client-%d:1", id)}}
	}
	return n.request(req).(*raftpb.ProposeResponse)
}

func (n *testNode) changeMembersWithin(t raftpb.ConfChangeType, id uint64) *raftpb.ProposeResponse {
	req := &raftpb.ConfChangeRequest{ClusterId: testCluster, Changes: []*raftpb.ConfChangeSingle{{Type: t, NodeId: id}}}
	res, err := n.sys.Root.RequestFuture(n.pid, req, 2*time.Second).Result()
	if err != nil {
		return nil
	}
	return res.(*raftpb.ProposeResponse)
}

func (n *testNode) mustChange(t raftpb.ConfChangeType, id uint64) {
	n.t.Helper()
	if r := n.changeMembers(t, id); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
		n.t.Fatalf("%v %d: %v", t, id, r)
	}
}

// roles is the configuration as the node reports it: role by member id.
func (n *testNode) roles() map[uint64]string {
	out := map[uint64]string{}
	for _, m := range n.status().GetMembers() {
		out[m.GetId()] = m.GetRole()
	}
	return out
}

const (
	addLearner = raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER
	promote    = raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_VOTER
	removeNode = raftpb.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE
)

// A node started empty with Join catches up by snapshot once it is added
// as a learner, serves nothing toward a quorum until promoted, and counts
// once it is: with two voters, a write needs it.
func TestLearnerJoinsBySnapshotAndCountsOncePromoted(t *testing.T) {
	sys := newSystem(t)
	one := startMember(t, sys, memberNode(sys, t.TempDir(), 1, false, 1))
	one.waitLeader()
	for i := range 60 { // past SnapshotEntries: the log is compacted
		one.mustPropose(putCmd(fmt.Sprint("k", i), fmt.Sprint("v", i)))
	}
	eventually(t, "node 1 to compact its log", func() bool { return one.status().GetSnapshotIndex() > 0 })

	dir2 := t.TempDir()
	two := startMember(t, sys, memberNode(sys, dir2, 2, true, 1, 2))
	// A joining node has no configuration: it does not campaign.
	if r := two.status(); r.GetRole() == raftlogic.Leader.String() || len(r.GetMembers()) != 0 {
		t.Fatalf("a joining node reports role %s, members %v", r.GetRole(), r.GetMembers())
	}
	one.mustChange(addLearner, 2)
	if got := one.roles(); got[2] != "learner" || got[1] != "voter" {
		t.Fatalf("after adding node 2 the leader reports %v", got)
	}
	lead := one.status()
	eventually(t, "node 2 to catch up", func() bool { return two.status().GetApplied() >= lead.GetCommit() })
	if two.status().GetSnapshotIndex() == 0 {
		t.Fatal("node 2 caught up without a snapshot, though node 1 had compacted its log")
	}
	// Node 2's state machine got the member table with the image and the
	// entries after it.
	if got := two.roles(); got[2] != "learner" || got[1] != "voter" {
		t.Fatalf("node 2 reports %v; status %v; leader %v", got, two.status(), one.status())
	}

	// A learner does not count: node 1 alone still commits.
	one.mustPropose(putCmd("while-learner", "x"))
	one.mustChange(promote, 2)
	if got := one.roles(); got[2] != "voter" {
		t.Fatalf("after promotion the leader reports %v", got)
	}
	// Two voters: with node 2 stopped, nothing commits.
	if err := sys.Root.StopFuture(two.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	<-two.stopped
	// The leader steps down (CheckQuorum: its only other voter is gone)
	// or the write waits; either way it does not commit.
	res, err := sys.Root.RequestFuture(one.pid, &raftpb.ProposeRequest{ClusterId: testCluster, Payload: putCmd("needs-2", "x").Encode()}, waitTimeout/5).Result()
	if r, ok := res.(*raftpb.ProposeResponse); err == nil && ok && r.GetErrorCode() == raftpb.ErrorCode_ERROR_CODE_OK {
		t.Fatalf("a write committed without node 2, a voter: %v", r)
	}
	waiting := one.status().GetLastIndex()
	// Node 2 restarted from its data (without Join, configured with the
	// old member list) takes part again, and the write commits.
	two = startMember(t, sys, memberNode(sys, dir2, 2, false, 1))
	eventually(t, "the write waiting for node 2 to commit", func() bool { return one.status().GetCommit() >= waiting })
}

// Removing a member stops the leader's replication to it: the removed node
// hears nothing more, and does not disturb the cluster.
func TestRemovedMemberIsNoLongerReplicatedTo(t *testing.T) {
	sys := newSystem(t)
	one := startMember(t, sys, memberNode(sys, t.TempDir(), 1, false, 1))
	one.waitLeader()
	two := startMember(t, sys, memberNode(sys, t.TempDir(), 2, true, 1, 2))
	one.mustChange(addLearner, 2)
	one.mustPropose(putCmd("a", "1"))
	eventually(t, "node 2 to apply", func() bool { return two.status().GetApplied() >= one.status().GetCommit() })

	if r := one.changeMembersWithin(removeNode, 2); r == nil {
		t.Fatalf("removal unanswered; leader status %v", one.status())
	}
	if got := one.roles(); len(got) != 1 || got[1] != "voter" {
		t.Fatalf("after removing node 2 the leader reports %v; %v", got, one.status())
	}
	applied := two.status().GetApplied()
	term := one.status().GetTerm()
	for i := range 30 {
		one.mustPropose(putCmd(fmt.Sprint("b", i), "x"))
	}
	if got := two.status().GetApplied(); got > applied+1 {
		// The removal entry itself may still reach it.
		t.Fatalf("node 2 applied %d entries after its removal", got-applied)
	}
	if got := one.status(); got.GetTerm() != term || got.GetRole() != raftlogic.Leader.String() {
		t.Fatalf("the removed node disturbed the leader: term %d -> %d, role %s", term, got.GetTerm(), got.GetRole())
	}
}

// A restarted node takes its configuration from its log (a change not yet
// in a snapshot), not from its configured member list, and replicates to
// the members it names.
func TestRestartTakesConfigurationFromTheLog(t *testing.T) {
	sys := newSystem(t)
	dir1 := t.TempDir()
	cfg1 := memberNode(sys, dir1, 1, false, 1)
	cfg1.SnapshotEntries, cfg1.CatchUpEntries = 10000, 0 // keep the change in the log
	one := startMember(t, sys, cfg1)
	one.waitLeader()
	two := startMember(t, sys, memberNode(sys, t.TempDir(), 2, true, 1, 2))
	one.mustChange(addLearner, 2)
	if err := sys.Root.StopFuture(one.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	<-one.stopped

	one = startMember(t, sys, cfg1)
	one.waitLeader()
	if got := one.status(); got.GetSnapshotIndex() != 0 {
		t.Fatalf("the change went into a snapshot (index %d); this test needs it in the log", got.GetSnapshotIndex())
	}
	if got := one.roles(); got[2] != "learner" {
		t.Fatalf("after a restart node 1 reports %v", got)
	}
	index := one.mustPropose(putCmd("after-restart", "y")).GetIndex()
	eventually(t, "node 2 to get the write made after node 1's restart", func() bool { return two.status().GetApplied() >= index })
	ms := one.status().GetMembers()
	if i := slices.IndexFunc(ms, func(m *raftpb.MemberStatus) bool { return m.GetId() == 2 }); i < 0 || ms[i].GetClientAddress() != "client-2:1" {
		t.Fatalf("node 2's addresses were not kept across the restart: %v", ms)
	}
}

// Refusals come back as codes naming the reason, and change nothing.
func TestMembershipChangeRefusals(t *testing.T) {
	sys := newSystem(t)
	one := startMember(t, sys, memberNode(sys, t.TempDir(), 1, false, 1))
	one.waitLeader()
	one.mustPropose(putCmd("a", "1")) // a new leader changes nothing before an entry of its term commits
	for _, c := range []struct {
		t    raftpb.ConfChangeType
		id   uint64
		want raftpb.ErrorCode
	}{
		{addLearner, 1, raftpb.ErrorCode_ERROR_CODE_ALREADY_MEMBER},
		{promote, 7, raftpb.ErrorCode_ERROR_CODE_INVALID_CONF_CHANGE},
		{removeNode, 7, raftpb.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER},
		{removeNode, 1, raftpb.ErrorCode_ERROR_CODE_LAST_VOTER},
		{raftpb.ConfChangeType_CONF_CHANGE_TYPE_UNSPECIFIED, 3, raftpb.ErrorCode_ERROR_CODE_INVALID_CONF_CHANGE},
	} {
		if r := one.changeMembers(c.t, c.id); r.GetErrorCode() != c.want {
			t.Errorf("%v %d: %v, want %v", c.t, c.id, r, c.want)
		}
	}
	if got := one.roles(); len(got) != 1 || got[1] != "voter" {
		t.Fatalf("refused changes changed the configuration: %v", got)
	}
	// A learner far behind is not promoted: node 9 never answers.
	one.mustChange(addLearner, 9)
	// Nor can it be handed leadership.
	if r := one.request(&raftpb.TransferRequest{ClusterId: testCluster, To: 9}).(*raftpb.TransferResponse); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TRANSFER_TARGET {
		t.Fatalf("transfer to a learner: %v, want TRANSFER_TARGET", r)
	}
	for i := range 600 {
		one.mustPropose(putCmd(fmt.Sprint("k", i), "v"))
	}
	if r := one.changeMembers(promote, 9); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_LEARNER_BEHIND {
		t.Fatalf("promoting a learner that never answered: %v", r)
	}
}

// A node with no data that is neither a configured member nor joining is
// refused: it would bootstrap a cluster it is not part of.
func TestNewNodeOutsideTheMembersMustJoin(t *testing.T) {
	sys := newSystem(t)
	n := startNode(t, sys, memberNode(sys, t.TempDir(), 7, false, 1, 2, 3))
	if err := n.startErr(); !errors.Is(err, ErrNotMember) {
		t.Fatalf("OnStart: %v, want ErrNotMember", err)
	}
	n.waitStopped()
}

// A node started as a joining node and restarted without Join before it
// was added still waits to be added: it must not start a cluster of the
// configured members on its own.
func TestJoiningNodeRestartedWithoutJoinStillWaits(t *testing.T) {
	sys := newSystem(t)
	dir := t.TempDir()
	n := startMember(t, sys, memberNode(sys, dir, 2, true, 1, 2))
	if err := sys.Root.StopFuture(n.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	<-n.stopped

	// Configured as a member of a new two-node cluster with node 1, which
	// is not running: bootstrapping would record voters {1, 2}.
	n = startMember(t, sys, memberNode(sys, dir, 2, false, 1, 2))
	time.Sleep(3 * time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval) // several election timeouts
	if st := n.status(); len(st.GetMembers()) != 0 || st.GetRole() != raftlogic.Follower.String() {
		t.Fatalf("a joining node restarted without Join reports role %s, members %v; want a follower with no configuration", st.GetRole(), st.GetMembers())
	}
}
