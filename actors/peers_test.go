package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// sendVia is an actor that sends what it is given through links, as the
// node and the log writer do.
type sendVia struct{ links peerLinks }

func (s *sendVia) Receive(ctx actor.Context) {
	if msgs, ok := ctx.Message().([]raftlogic.Message); ok {
		s.links.send(ctx, testCluster, msgs)
	}
}

// Raft messages go straight to the peer's node actor as envelopes, in
// order; a snapshot goes to the peer's replication actor; a message to a
// node without a link goes nowhere.
func TestPeerLinksSend(t *testing.T) {
	sys := newSystem(t)
	peer, _, peerRec := spawnProbe(t, sys, "", probeOpts{})
	repl, _, replRec := spawnProbe(t, sys, "", probeOpts{})
	sender := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &sendVia{links: peerLinks{2: {node: peer, replicator: repl}}}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(sender).Wait() })

	direct := []raftlogic.Message{
		{Type: raftlogic.MsgApp, From: 1, To: 2, Term: 3, Index: 4, LogTerm: 2, Commit: 4, Entries: []raftlogic.Entry{cmdEntry(5, 3, putCmd("a", "b"))}},
		{Type: raftlogic.MsgHeartbeat, From: 1, To: 2, Term: 3, Commit: 5, Context: 7},
		{Type: raftlogic.MsgAppResp, From: 1, To: 2, Term: 3, Index: 5},
	}
	msgs := append([]raftlogic.Message{direct[0], snapMsg(), {Type: raftlogic.MsgHeartbeat, From: 1, To: 9, Term: 3}}, direct[1:]...)
	sys.Root.Send(sender, msgs)

	for i, want := range direct {
		env := expect[*raftpb.RaftEnvelope](t, peerRec, nil)
		got, err := remote.OpenEnvelope(testCluster, env)
		if err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
		if got.Type != want.Type || got.Index != want.Index || got.Commit != want.Commit || len(got.Entries) != len(want.Entries) {
			t.Fatalf("envelope %d: %+v, want %+v", i, got, want)
		}
	}
	out := expect[*outbound](t, replRec, nil)
	if len(out.msgs) != 1 || out.msgs[0].Type != raftlogic.MsgSnap {
		t.Fatalf("the replication actor got %+v, want the snapshot alone", out.msgs)
	}
	if n := count[*raftpb.RaftEnvelope](replRec) + count[*outbound](peerRec); n != 0 {
		t.Fatalf("%d messages went the wrong way", n)
	}
}
