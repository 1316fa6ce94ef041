package actors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

const testCluster = "test-cluster"

// How the stand-in peer answers snapshot chunks.
const (
	ackChunks int32 = iota
	rejectChunks
	ignoreChunks
)

// spawnPeer spawns a probe named like node 2 that records what reaches it
// and answers snapshot chunks as mode says.
func spawnPeer(t *testing.T, sys *actor.ActorSystem, mode *atomic.Int32) (*actor.PID, *recorder) {
	t.Helper()
	rec := newRecorder()
	pid, _, _ := spawnProbe(t, sys, NodeName(2), probeOpts{rec: rec, handle: func(ctx actor.Context) bool {
		c, ok := ctx.Message().(*raftpb.SnapshotChunk)
		if !ok {
			return false
		}
		rec.add(c)
		ack := &raftpb.SnapshotChunkAck{ClusterId: c.GetClusterId(), From: c.GetTo(), To: c.GetFrom(), Term: c.GetTerm(), Index: c.GetIndex(), SnapTerm: c.GetSnapTerm()}
		switch mode.Load() {
		case ackChunks:
			ack.Offset = c.GetOffset() + uint64(len(c.GetData()))
		case rejectChunks:
			ack.Reject = true
		case ignoreChunks:
			return true
		}
		ctx.Respond(ack)
		return true
	}})
	return pid, rec
}

// spawnReplicator runs a replication actor from node 1 to peerPID, under a
// probe standing in for node 1, over a state machine holding enough data
// for several 64-byte chunks. Its images go to the store's snapshot
// directory (see noImages).
func spawnReplicator(t *testing.T, sys *actor.ActorSystem, peerPID *actor.PID, ackTimeout time.Duration) (*store, *actor.PID, *recorder) {
	t.Helper()
	s := openStore(t)
	var ents []raftlogic.Entry
	for i := uint64(1); i <= 20; i++ {
		ents = append(ents, cmdEntry(i, 2, putCmd(fmt.Sprintf("key-%02d", i), fmt.Sprintf("value number %d", i))))
	}
	if _, err := s.sm.Apply(ents, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.sm.Flush(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.dir, snapshotDirName)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, child, rec := spawnProbe(t, sys, "", probeOpts{
		child: func() actor.Actor {
			return &replicationActor{self: 1, peer: 2, peerPID: peerPID, clusterID: testCluster, sm: s.sm, dir: dir, chunkSize: 64, log: quietLogger(), ackTimeout: ackTimeout}
		},
		childName: "replicate-2",
	})
	return s, child, rec
}

// noImages fails the test if an image is left in s's snapshot directory:
// a transfer deletes its image when it ends, however it ends.
func noImages(t *testing.T, s *store) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.dir, snapshotDirName))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("images left behind: %v", entries)
	}
}

func snapMsg() raftlogic.Message {
	return raftlogic.Message{Type: raftlogic.MsgSnap, From: 1, To: 2, Term: 5, Snapshot: raftlogic.Snapshot{
		Meta: raftlogic.SnapshotMeta{Index: 15, Term: 2, ConfState: raftlogic.ConfState{Voters: []uint64{1, 2, 3}}},
	}}
}

func TestReplicationActorForwardsEnvelopes(t *testing.T) {
	sys := newSystem(t)
	var mode atomic.Int32
	peer, peerRec := spawnPeer(t, sys, &mode)
	_, repl, _ := spawnReplicator(t, sys, peer, 0)

	msgs := []raftlogic.Message{
		{Type: raftlogic.MsgApp, From: 1, To: 2, Term: 3, Index: 4, LogTerm: 2, Commit: 4, Entries: []raftlogic.Entry{cmdEntry(5, 3, putCmd("a", "b"))}},
		{Type: raftlogic.MsgHeartbeat, From: 1, To: 2, Term: 3, Commit: 5, Context: 7},
		{Type: raftlogic.MsgVoteResp, From: 1, To: 2, Term: 3, Reject: true},
	}
	sys.Root.Send(repl, &outbound{msgs: msgs})
	for i, want := range msgs {
		env := expect[*raftpb.RaftEnvelope](t, peerRec, nil)
		got, err := remote.OpenEnvelope(testCluster, env)
		if err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
		if got.Type != want.Type || got.From != 1 || got.To != 2 || got.Term != want.Term || got.Commit != want.Commit ||
			got.Context != want.Context || got.Reject != want.Reject || len(got.Entries) != len(want.Entries) {
			t.Fatalf("envelope %d = %+v, want %+v (in order)", i, got, want)
		}
	}
}

func TestReplicationActorStreamsSnapshotInChunks(t *testing.T) {
	sys := newSystem(t)
	var mode atomic.Int32
	peer, peerRec := spawnPeer(t, sys, &mode)
	s, repl, rec := spawnReplicator(t, sys, peer, 0)
	image, index, term, err := snapshotBytes(s.sm)
	if err != nil {
		t.Fatal(err)
	}

	// Two MsgSnap at once: one transfer at a time.
	sys.Root.Send(repl, &outbound{msgs: []raftlogic.Message{snapMsg(), snapMsg()}})
	if d := expect[*snapshotDone](t, rec, nil); d.peer != 2 || !d.ok {
		t.Fatalf("snapshotDone = %+v, want peer 2 ok", d)
	}
	var got []byte
	chunks := 0
	for {
		c, ok := take[*raftpb.SnapshotChunk](peerRec, nil)
		if !ok {
			break
		}
		chunks++
		if c.GetOffset() != uint64(len(got)) {
			t.Fatalf("chunk %d at offset %d, want %d (a second transfer?)", chunks, c.GetOffset(), len(got))
		}
		if len(c.GetData()) == 0 || len(c.GetData()) > 64 {
			t.Fatalf("chunk %d holds %d bytes; chunk size is 64", chunks, len(c.GetData()))
		}
		if c.GetClusterId() != testCluster || c.GetFrom() != 1 || c.GetTo() != 2 || c.GetTerm() != 5 ||
			c.GetIndex() != index || c.GetSnapTerm() != term || !slices.Equal(c.GetVoters(), []uint64{1, 2, 3}) {
			t.Fatalf("chunk %d header %v", chunks, c)
		}
		got = append(got, c.GetData()...)
		if last := len(got) == len(image); c.GetLast() != last {
			t.Fatalf("chunk %d: Last = %v at %d of %d bytes", chunks, c.GetLast(), len(got), len(image))
		}
	}
	if chunks < 3 {
		t.Fatalf("%d chunks for a %d-byte image; the test wants several", chunks, len(image))
	}
	if !bytes.Equal(got, image) {
		t.Fatalf("the chunks (%d bytes) are not the state machine's image (%d bytes)", len(got), len(image))
	}
	noImages(t, s)

	// A marker behind everything: no second transfer started meanwhile.
	sys.Root.Send(repl, &outbound{msgs: []raftlogic.Message{{Type: raftlogic.MsgHeartbeat, From: 1, To: 2, Term: 5}}})
	expect[*raftpb.RaftEnvelope](t, peerRec, nil)
	if n := count[*raftpb.SnapshotChunk](peerRec); n != 0 {
		t.Fatalf("%d chunks of a second transfer", n)
	}
	if n := count[*snapshotDone](rec); n != 0 {
		t.Fatalf("%d extra snapshotDone", n)
	}
}

func TestReplicationActorSnapshotFailures(t *testing.T) {
	t.Run("peer rejects", func(t *testing.T) {
		sys := newSystem(t)
		var mode atomic.Int32
		mode.Store(rejectChunks)
		peer, peerRec := spawnPeer(t, sys, &mode)
		s, repl, rec := spawnReplicator(t, sys, peer, 0)
		sys.Root.Send(repl, &outbound{msgs: []raftlogic.Message{snapMsg()}})
		if d := expect[*snapshotDone](t, rec, nil); d.peer != 2 || d.ok {
			t.Fatalf("snapshotDone = %+v, want a failure", d)
		}
		if n := count[*raftpb.SnapshotChunk](peerRec); n != 1 {
			t.Fatalf("%d chunks sent after a rejection, want only the first", n)
		}
		noImages(t, s)
	})
	t.Run("peer dead", func(t *testing.T) {
		sys := newSystem(t)
		dead := actor.NewPID(sys.Address(), NodeName(9))
		s, repl, rec := spawnReplicator(t, sys, dead, 0)
		sys.Root.Send(repl, &outbound{msgs: []raftlogic.Message{snapMsg()}})
		if d := expect[*snapshotDone](t, rec, nil); d.peer != 2 || d.ok {
			t.Fatalf("snapshotDone = %+v, want a failure", d)
		}
		noImages(t, s)
	})
	t.Run("ack times out, then a retry succeeds", func(t *testing.T) {
		sys := newSystem(t)
		var mode atomic.Int32
		mode.Store(ignoreChunks)
		peer, peerRec := spawnPeer(t, sys, &mode)
		s, repl, rec := spawnReplicator(t, sys, peer, 50*time.Millisecond)
		sys.Root.Send(repl, &outbound{msgs: []raftlogic.Message{snapMsg()}})
		if d := expect[*snapshotDone](t, rec, nil); d.ok {
			t.Fatalf("snapshotDone = %+v, want a failure after the ack timeout", d)
		}
		expect[*raftpb.SnapshotChunk](t, peerRec, nil)
		noImages(t, s)

		mode.Store(ackChunks)
		sys.Root.Send(repl, &outbound{msgs: []raftlogic.Message{snapMsg()}})
		if d := expect[*snapshotDone](t, rec, nil); !d.ok {
			t.Fatalf("snapshotDone = %+v on the retry, want ok", d)
		}
		image, _, _, _ := snapshotBytes(s.sm)
		var got []byte
		for {
			c, ok := take[*raftpb.SnapshotChunk](peerRec, nil)
			if !ok {
				break
			}
			got = append(got, c.GetData()...)
		}
		if !bytes.Equal(got, image) {
			t.Fatalf("the retry sent %d bytes, not the %d-byte image from the start", len(got), len(image))
		}
	})
}
