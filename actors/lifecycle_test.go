package actors

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// stuckRestore is a restore hook whose reads wait until release is closed,
// whether or not the node gave the install up: it keeps the apply actor
// busy, so a node told to stop stays in its stopping state (protoactor
// delivers Stopped only once every child is gone).
func stuckRestore(started, release chan struct{}) *testHooks {
	return &testHooks{restoreReader: func(r io.Reader) io.Reader {
		first := true
		return readerFunc(func(p []byte) (int, error) {
			if first {
				first = false
				close(started)
			}
			<-release
			return r.Read(p)
		})
	}}
}

// A stopping node (here: told to stop while its apply actor is busy)
// answers every request with SHUTTING_DOWN, refuses snapshot chunks,
// deletes an image handed to it, takes no Raft input, and closes its
// storage only once its children are gone.
func TestStoppingNodeRefusesEverything(t *testing.T) {
	sys := newSystem(t)
	failures := supervisorEvents(t, sys)
	dir := t.TempDir()
	started, release := make(chan struct{}), make(chan struct{})
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	onStopped := make(chan error, 1)
	n, _ := startFollower(t, sys, dir, func(c *NodeConfig) {
		c.hooks = stuckRestore(started, release)
		c.OnStopped = func(err error) { onStopped <- err }
	})
	im := newTestImage(t, 20, 100, 2)
	if ack := n.sendAll(im.chunker(t, 2, 5, 512), 0); ack.GetReject() {
		t.Fatalf("last chunk: %v", ack)
	}
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("the install did not start")
	}

	sys.Root.Stop(n.pid)
	eventually(t, "the node to stop taking requests", func() bool {
		return n.status().GetErrorCode() == raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN
	})
	if st := n.status(); st.GetId() != 1 {
		t.Fatalf("a stopping node's status %v does not name it", st)
	}
	if r := n.propose(putCmd("k", "v")); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN {
		t.Fatalf("propose to a stopping node: %v", r)
	}
	if r := n.get("k"); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN {
		t.Fatalf("get from a stopping node: %v", r)
	}
	if r := n.request(&raftpb.TransferRequest{To: 2}).(*raftpb.TransferResponse); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN {
		t.Fatalf("transfer at a stopping node: %v", r)
	}
	n.mustRefuse(im.chunker(t, 3, 9, 512).chunk(0), "a chunk to a stopping node")

	// Raft input and children's reports are dropped: a node without Raft
	// that handled them would fail (and protoactor report it).
	hb := remote.NewEnvelope(testCluster, raftlogic.Message{Type: raftlogic.MsgHeartbeat, From: 2, To: 1, Term: 9})
	for _, m := range []any{&tick{}, &flushReady{}, hb, &snapshotDone{peer: 2, ok: true}, &appliedUpTo{index: 99},
		&failStop{err: os.ErrClosed}, &installCheck{gen: 1}} {
		sys.Root.Send(n.pid, m)
	}
	// An image handed to it is deleted, not installed.
	image := filepath.Join(dir, snapshotDirName, "recv-late.img")
	if err := os.WriteFile(image, []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	sys.Root.Send(n.pid, &imageReceived{path: image, from: 2, raftTerm: 9, meta: raftlogic.SnapshotMeta{Index: 50, Term: 9}})
	n.status() // after everything above, in mailbox order
	if _, err := os.Stat(image); !os.IsNotExist(err) {
		t.Fatalf("the image handed to a stopping node is still there: %v", err)
	}
	select {
	case <-n.stopped:
		t.Fatal("the node stopped (and closed its storage) while its apply actor still ran")
	case err := <-onStopped:
		t.Fatalf("OnStopped(%v) while the apply actor still ran", err)
	default:
	}
	if evs := failures.snapshot(); len(evs) > 0 {
		t.Fatalf("a stopping node failed: %+v", evs[0])
	}

	released = true
	close(release)
	n.waitStopped()
	if err := <-onStopped; err != nil {
		t.Fatalf("OnStopped(%v), want nil: the node was asked to stop", err)
	}
	// Its storage was closed: the data directory opens again.
	again := startNode(t, sys, nodeConfig(sys, dir, 1, 2, 3))
	if err := again.startErr(); err != nil {
		t.Fatalf("restart after stopping: %v", err)
	}
}

// A running node gets reports of installs that have ended (a timer or a
// progress report sent just before the install finished) and stray input;
// only the installing state acts on install reports, so these are ignored
// and the node goes on serving.
func TestRunningNodeIgnoresStaleReports(t *testing.T) {
	sys := newSystem(t)
	failures := supervisorEvents(t, sys)
	n := startLeader(t, sys)
	hb := remote.NewEnvelope(testCluster, raftlogic.Message{Type: raftlogic.MsgHeartbeatResp, From: 1, To: 1, Term: 1})
	for _, m := range []any{&tick{}, &flushReady{}, hb, &appliedUpTo{index: 1},
		&installProgress{gen: 7}, &installCheck{gen: 7}, &snapshotInstalled{gen: 7}, &actor.DeadLetterResponse{}} {
		sys.Root.Send(n.pid, m)
	}
	n.mustPropose(putCmd("k", "v"))
	n.mustGet("k", "v")
	if evs := failures.snapshot(); len(evs) > 0 {
		t.Fatalf("the node failed: %+v", evs[0])
	}
}
