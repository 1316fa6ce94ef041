package actors

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// These tests play the leader against a real node actor: they send it the
// chunks of a snapshot image the way a replication actor does and watch
// what it answers, what it writes to its snapshot directory and what it
// tells its peers (probes standing in for nodes 2 and 3).

// testImage is a snapshot image in a file, made by a real state machine.
type testImage struct {
	path        string
	size        int64
	index, term uint64
}

// openState opens a state machine on a Badger database of its own in dir.
// It is closed at the end of the test, or earlier by calling done.
func openState(t *testing.T, dir string) (sm *kvstate.State, done func()) {
	t.Helper()
	db, err := persist.OpenDB(dir, persist.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	done = func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { db.Close() })
	if sm, err = kvstate.Open(db, kvstate.Options{}); err != nil {
		t.Fatal(err)
	}
	return sm, done
}

// fillState writes keys keys of valueSize bytes each, at term term, into
// the state machine in dir and closes it (which also flushes Badger's
// memtables, so a later open starts settled).
func fillState(t *testing.T, dir string, keys, valueSize int, term uint64) {
	t.Helper()
	sm, done := openState(t, dir)
	defer done()
	value := strings.Repeat("v", valueSize)
	for i := 0; i < keys; {
		var ents []raftlogic.Entry
		for ; i < keys && len(ents)*valueSize < 1<<20; i++ {
			ents = append(ents, cmdEntry(uint64(i+1), term, putCmd(fmt.Sprintf("key-%05d", i), value)))
		}
		if _, err := sm.Apply(ents, nil); err != nil {
			t.Fatal(err)
		}
		if err := sm.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// newTestImage writes the image of a state machine holding keys keys of
// valueSize bytes each (written at term term).
func newTestImage(t *testing.T, keys, valueSize int, term uint64) testImage {
	t.Helper()
	dir := t.TempDir()
	fillState(t, filepath.Join(dir, "db"), keys, valueSize, term)
	sm, done := openState(t, filepath.Join(dir, "db"))
	defer done()
	im := testImage{path: filepath.Join(dir, "image")}
	f, err := os.Create(im.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if im.index, im.term, err = sm.Snapshot(f); err != nil {
		t.Fatal(err)
	}
	if im.size, err = f.Seek(0, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	return im
}

// bytes returns the whole image (for small images).
func (im testImage) bytes(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(im.path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chunker cuts an image into the chunks node from sends at raftTerm.
type chunker struct {
	from, raftTerm  uint64
	index, snapTerm uint64
	chunkSize       int
	data            func(off, n int64) []byte
	size            int64
}

func (im testImage) chunker(t *testing.T, from, raftTerm uint64, chunkSize int) *chunker {
	f, err := os.Open(im.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &chunker{
		from: from, raftTerm: raftTerm, index: im.index, snapTerm: im.term, chunkSize: chunkSize, size: im.size,
		data: func(off, n int64) []byte {
			b := make([]byte, n)
			if _, err := f.ReadAt(b, off); err != nil {
				t.Errorf("read image: %v", err)
			}
			return b
		},
	}
}

// fromBytes cuts data (perhaps not a valid image) into chunks that claim
// to carry an image of index and snapTerm.
func fromBytes(data []byte, from, raftTerm, index, snapTerm uint64, chunkSize int) *chunker {
	return &chunker{
		from: from, raftTerm: raftTerm, index: index, snapTerm: snapTerm, chunkSize: chunkSize, size: int64(len(data)),
		data: func(off, n int64) []byte { return slices.Clone(data[off : off+n]) },
	}
}

// chunk returns the k-th chunk.
func (c *chunker) chunk(k int) *raftpb.SnapshotChunk {
	off := int64(k) * int64(c.chunkSize)
	n := min(int64(c.chunkSize), c.size-off)
	return &raftpb.SnapshotChunk{
		ClusterId: testCluster, From: c.from, To: 1, Term: c.raftTerm, Index: c.index, SnapTerm: c.snapTerm,
		Voters: []uint64{1, 2, 3}, Offset: uint64(off), Data: c.data(off, n), Last: off+n == c.size,
	}
}

func (c *chunker) count() int { return int((c.size + int64(c.chunkSize) - 1) / int64(c.chunkSize)) }

// sendChunk sends c to the node as a peer would and returns the answer.
func (n *testNode) sendChunk(c *raftpb.SnapshotChunk) *raftpb.SnapshotChunkAck {
	n.t.Helper()
	ack := n.request(c).(*raftpb.SnapshotChunkAck)
	if ack.GetIndex() != c.GetIndex() || ack.GetTo() != c.GetFrom() || ack.GetFrom() != c.GetTo() {
		n.t.Fatalf("ack %v does not answer chunk from %d of index %d", ack, c.GetFrom(), c.GetIndex())
	}
	return ack
}

func (n *testNode) mustAccept(c *raftpb.SnapshotChunk) {
	n.t.Helper()
	want := c.GetOffset() + uint64(len(c.GetData()))
	if ack := n.sendChunk(c); ack.GetReject() || ack.GetOffset() != want {
		n.t.Fatalf("chunk from %d at offset %d (term %d): ack %v, want offset %d", c.GetFrom(), c.GetOffset(), c.GetTerm(), ack, want)
	}
}

func (n *testNode) mustRefuse(c *raftpb.SnapshotChunk, why string) {
	n.t.Helper()
	if ack := n.sendChunk(c); !ack.GetReject() {
		n.t.Fatalf("%s: chunk from %d at offset %d (term %d) accepted: %v", why, c.GetFrom(), c.GetOffset(), c.GetTerm(), ack)
	}
}

// sendAll sends every chunk from the k-th on, each accepted but perhaps the
// last, and returns the last one's answer.
func (n *testNode) sendAll(c *chunker, k int) *raftpb.SnapshotChunkAck {
	n.t.Helper()
	for ; k < c.count()-1; k++ {
		n.mustAccept(c.chunk(k))
	}
	return n.sendChunk(c.chunk(k))
}

// snapFiles lists the files in the node's snapshot directory.
func (n *testNode) snapFiles() []string {
	entries, err := os.ReadDir(filepath.Join(n.cfg.DataDir, snapshotDirName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		n.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// startFollower starts node 1 of members 1, 2 and 3 on dir; probes stand in
// for nodes 2 and 3 and record what node 1 sends them.
func startFollower(t *testing.T, sys *actor.ActorSystem, dir string, tune func(*NodeConfig)) (n *testNode, peers map[uint64]*recorder) {
	t.Helper()
	peers = map[uint64]*recorder{}
	for _, id := range []uint64{2, 3} {
		_, _, peers[id] = spawnProbe(t, sys, NodeName(id), probeOpts{})
	}
	cfg := nodeConfig(sys, dir, 1, 2, 3)
	cfg.ElectionTicks = 50 // no campaign of its own during a short test
	if tune != nil {
		tune(&cfg)
	}
	n = startNode(t, sys, cfg)
	if err := n.startErr(); err != nil {
		t.Fatal(err)
	}
	return n, peers
}

// installedAck waits for node 1's acknowledgement of a snapshot at index,
// sent to the leader once the image is installed and recorded.
func installedAck(t *testing.T, leader *recorder, index uint64) {
	t.Helper()
	expect(t, leader, func(e *raftpb.RaftEnvelope) bool {
		m, err := remote.OpenEnvelope(testCluster, e)
		return err == nil && m.Type == raftlogic.MsgAppResp && !m.Reject && m.Index == index
	})
}

// A snapshot image comes only from a member of the cluster, to this node,
// in this cluster, at a term no older than the node's; anything else is
// refused before a byte is stored.
func TestSnapshotChunksOnlyFromMembers(t *testing.T) {
	sys := newSystem(t)
	n, peers := startFollower(t, sys, t.TempDir(), nil)
	im := newTestImage(t, 20, 100, 2)

	first := func(from uint64) *raftpb.SnapshotChunk { return im.chunker(t, from, 5, 512).chunk(0) }
	n.mustRefuse(first(9), "sender 9 is not a member")
	n.mustRefuse(first(1), "a chunk claiming to come from the node itself")
	other := first(2)
	other.ClusterId = "another"
	n.mustRefuse(other, "another cluster")
	misaddressed := first(2)
	misaddressed.To = 3
	n.mustRefuse(misaddressed, "addressed to node 3")
	if files := n.snapFiles(); len(files) != 0 {
		t.Fatalf("refused chunks left files %v", files)
	}

	// A member's transfer goes through and is installed.
	if ack := n.sendAll(im.chunker(t, 2, 5, 512), 0); ack.GetReject() {
		t.Fatalf("the member's last chunk: %v", ack)
	}
	installedAck(t, peers[2], im.index)
	// Now at term 5, the node refuses a transfer of an older term.
	n.mustRefuse(im.chunker(t, 3, 4, 512).chunk(0), "a chunk of term 4 after term 5")
}

// A transfer its sender abandoned is dropped once no chunk has extended it
// for the idle timeout: its file is deleted and its next chunk refused.
// Abandoned starts, however many, never hold more than one file.
func TestSnapshotIdleTransferDropped(t *testing.T) {
	sys := newSystem(t)
	n, _ := startFollower(t, sys, t.TempDir(), func(c *NodeConfig) { c.SnapshotIdleTimeout = 100 * time.Millisecond })
	im := newTestImage(t, 20, 100, 2)

	c := im.chunker(t, 2, 5, 512)
	n.mustAccept(c.chunk(0))
	eventually(t, "the abandoned transfer's file to go", func() bool { return len(n.snapFiles()) == 0 })
	n.mustRefuse(c.chunk(1), "the next chunk of a dropped transfer")

	// Many abandoned starts from the members, each at a newer term: each
	// replaces the one before.
	for term := uint64(6); term < 26; term++ {
		n.mustAccept(im.chunker(t, 2+term%2, term, 512).chunk(0))
		if files := n.snapFiles(); len(files) > 1 {
			t.Fatalf("after a start at term %d the node holds %v, want at most one partial image", term, files)
		}
	}
	eventually(t, "the last abandoned transfer's file to go", func() bool { return len(n.snapFiles()) == 0 })
}

// One transfer at a time: a first chunk from another sender of the same
// term is refused while a transfer is in progress, which goes on; a newer
// term replaces it; a resend of the same image resumes where it stopped.
func TestSnapshotOneTransferAtATime(t *testing.T) {
	sys := newSystem(t)
	n, peers := startFollower(t, sys, t.TempDir(), nil)
	im := newTestImage(t, 40, 100, 2)

	a := im.chunker(t, 2, 5, 512)
	n.mustAccept(a.chunk(0))
	n.mustRefuse(im.chunker(t, 3, 5, 512).chunk(0), "node 3 starts at the same term while node 2 sends")
	n.mustRefuse(im.chunker(t, 3, 4, 512).chunk(0), "node 3 starts at an older term while node 2 sends")
	n.mustAccept(a.chunk(1))
	// Node 2 sends the same image again from the start (say its
	// acknowledgement was lost): the node has two chunks already.
	if ack := n.sendChunk(a.chunk(0)); ack.GetReject() || ack.GetOffset() != 2*512 {
		t.Fatalf("a resend of the first chunk: %v, want offset %d", ack, 2*512)
	}
	n.mustAccept(a.chunk(2))

	// Node 3 at a newer term replaces it.
	b := im.chunker(t, 3, 6, 512)
	n.mustAccept(b.chunk(0))
	n.mustRefuse(a.chunk(3), "node 2's transfer after node 3 replaced it")
	if files := n.snapFiles(); len(files) != 1 {
		t.Fatalf("snapshot directory %v, want one partial image", files)
	}
	if ack := n.sendAll(b, 1); ack.GetReject() {
		t.Fatalf("node 3's last chunk: %v", ack)
	}
	installedAck(t, peers[3], im.index)
	eventually(t, "the installed image to be deleted", func() bool { return len(n.snapFiles()) == 0 })
	if st := n.status(); st.GetSnapshotIndex() != im.index || st.GetApplied() != im.index || st.GetTerm() != 6 {
		t.Fatalf("status after the install: %v", st)
	}
}

// A received image is verified before Raft sees it: a corrupted, truncated
// or mislabelled image is refused at its last chunk, and the node's state,
// its log and the node itself carry on as before.
func TestSnapshotBadImageRefused(t *testing.T) {
	sys := newSystem(t)
	dir := t.TempDir()
	n, peers := startFollower(t, sys, dir, nil)
	// The node's state before: a first image, installed.
	before := newTestImage(t, 10, 100, 1)
	if ack := n.sendAll(before.chunker(t, 2, 4, 512), 0); ack.GetReject() {
		t.Fatalf("first image: %v", ack)
	}
	installedAck(t, peers[2], before.index)
	eventually(t, "the first image to be recorded", func() bool { return n.status().GetSnapshotIndex() == before.index })

	im := newTestImage(t, 40, 100, 2)
	good := im.bytes(t)
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0x20
	for name, c := range map[string]*chunker{
		"a flipped bit":                fromBytes(flipped, 2, 5, im.index, im.term, 512),
		"truncated":                    fromBytes(good[:len(good)-7], 2, 5, im.index, im.term, 512),
		"another index than announced": fromBytes(good, 2, 5, im.index+1, im.term, 512),
		"another term than announced":  fromBytes(good, 2, 5, im.index, im.term+1, 512),
	} {
		if ack := n.sendAll(c, 0); !ack.GetReject() {
			t.Fatalf("%s: the last chunk was accepted: %v", name, ack)
		}
		st := n.status()
		if st.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK || st.GetApplied() != before.index || st.GetSnapshotIndex() != before.index {
			t.Fatalf("%s: status after the refusal: %v", name, st)
		}
		if files := n.snapFiles(); len(files) != 0 {
			t.Fatalf("%s: left %v behind", name, files)
		}
	}
	if err := sys.Root.StopFuture(n.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	<-n.stopped
	s := openStoreAt(t, dir)
	if idx, _ := s.sm.Applied(); idx != before.index {
		t.Fatalf("applied %d after refused images, want %d", idx, before.index)
	}
	mustGet(t, s.sm, "key-00009", strings.Repeat("v", 100))
	if v, err := s.sm.Get("key-00010"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Fatalf("key-00010 = %q, %v: a refused image's key is in the state", v, err)
	}
}

// gate is a restore hook: reads wait until it opens, while still noticing
// that the node gave the install up (a zero-length read fails then).
type gate struct {
	started chan struct{} // closed at the first read
	open    chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) hooks() *testHooks {
	return &testHooks{restoreReader: func(r io.Reader) io.Reader {
		first := true
		return readerFunc(func(p []byte) (int, error) {
			if first {
				first = false
				close(g.started)
			}
			for {
				if _, err := r.Read(p[:0]); err != nil {
					return 0, err
				}
				select {
				case <-g.open:
					return r.Read(p)
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	}}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// While the apply actor restores a large image, the node actor goes on:
// it answers status queries, its clock runs (with no leader heard from, it
// starts a pre-vote campaign), and it refuses a second image. Once the
// restore ends, the snapshot is recorded and acknowledged to the leader.
func TestSnapshotInstallDoesNotBlockNode(t *testing.T) {
	sys := newSystem(t)
	g := newGate()
	t.Cleanup(func() {
		select {
		case <-g.open:
		default:
			close(g.open)
		}
	})
	n, peers := startFollower(t, sys, t.TempDir(), func(c *NodeConfig) {
		c.ElectionTicks = 10
		c.hooks = g.hooks()
	})
	im := newTestImage(t, 40, 100, 2)
	if ack := n.sendAll(im.chunker(t, 2, 5, 512), 0); ack.GetReject() {
		t.Fatalf("last chunk: %v", ack)
	}
	select {
	case <-g.started:
	case <-time.After(waitTimeout):
		t.Fatal("the install did not start")
	}

	for range 5 {
		if st := n.status(); st.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK || st.GetTerm() != 5 || st.GetApplied() != 0 {
			t.Fatalf("status during the install: %v", st)
		}
	}
	eventually(t, "the node's clock to run out its election timeout", func() bool {
		return n.status().GetRole() == raftlogic.PreCandidate.String()
	})
	n.mustRefuse(im.chunker(t, 3, 7, 512).chunk(0), "a new transfer while an image installs")
	// Whatever it sent at term 5 or later (the acknowledgement, its
	// pre-votes) waits for the install.
	for _, id := range []uint64{2, 3} {
		if r, ok := take(peers[id], func(e *raftpb.RaftEnvelope) bool { return e.GetMsg().GetTerm() >= 5 }); ok {
			t.Fatalf("the node sent %v to node %d before its install was done", r, id)
		}
	}

	close(g.open)
	installedAck(t, peers[2], im.index)
	eventually(t, "the install to be recorded", func() bool {
		st := n.status()
		return st.GetSnapshotIndex() == im.index && st.GetApplied() == im.index
	})
	eventually(t, "the installed image to be deleted", func() bool { return len(n.snapFiles()) == 0 })
}

// An install that makes no progress for the idle timeout stops the node
// (its state machine is in an unknown condition); the data left behind
// starts again with the state it had before the install.
func TestSnapshotStalledInstallStopsNode(t *testing.T) {
	sys := newSystem(t)
	dir := t.TempDir()
	g := newGate() // never opens
	n, _ := startFollower(t, sys, dir, func(c *NodeConfig) {
		c.SnapshotIdleTimeout = 200 * time.Millisecond
		c.hooks = g.hooks()
	})
	im := newTestImage(t, 40, 100, 2)
	if ack := n.sendAll(im.chunker(t, 2, 5, 512), 0); ack.GetReject() {
		t.Fatalf("last chunk: %v", ack)
	}
	n.waitStopped()

	again := startNode(t, sys, nodeConfig(sys, dir, 1, 2, 3))
	if err := again.startErr(); err != nil {
		t.Fatalf("restart after the stalled install: %v", err)
	}
	if st := again.status(); st.GetApplied() != 0 || st.GetSnapshotIndex() != 0 {
		t.Fatalf("status after the restart: %v, want nothing installed", st)
	}
}

// liveHeap is the bytes the Go heap holds after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A follower receiving an image many times the chunk size holds no more
// than a chunk or so of it in memory: it writes the image to a file.
func TestSnapshotReceiveMemoryBounded(t *testing.T) {
	sys := newSystem(t)
	n, peers := startFollower(t, sys, t.TempDir(), nil)
	const chunkSize = 64 << 10
	im := newTestImage(t, 256, 128<<10, 2) // 32 MiB: 512 chunks
	c := im.chunker(t, 2, 5, chunkSize)

	base := liveHeap()
	var peak uint64
	for k := 0; k < c.count()-1; k++ {
		n.mustAccept(c.chunk(k))
		if k%32 == 31 {
			peak = max(peak, liveHeap())
		}
	}
	growth := int64(peak) - int64(base)
	t.Logf("image %d bytes in %d chunks of %d: live heap %d before, peak %d while receiving (growth %d)", im.size, c.count(), chunkSize, base, peak, growth)
	if limit := im.size / 4; growth > limit {
		t.Fatalf("the live heap grew by %d bytes while receiving a %d-byte image; want under %d", growth, im.size, limit)
	}
	if ack := n.sendChunk(c.chunk(c.count() - 1)); ack.GetReject() {
		t.Fatalf("last chunk: %v", ack)
	}
	installedAck(t, peers[2], im.index)
}

// A leader sending an image many times the chunk size holds no more than a
// chunk or so of it in memory: it streams the image from a file.
func TestSnapshotSendMemoryBounded(t *testing.T) {
	sys := newSystem(t)
	const chunkSize = 64 << 10
	// 32 MiB: 512 chunks. Filled, closed and opened again, so Badger does
	// not flush or compact during the measurement; its caches are warmed
	// the way the image's read will.
	stateDir, dir := t.TempDir(), t.TempDir()
	fillState(t, stateDir, 256, 128<<10, 2)
	sm, _ := openState(t, stateDir)
	if _, _, err := sm.Snapshot(io.Discard); err != nil {
		t.Fatal(err)
	}

	var received, peak uint64
	chunks := 0
	done := make(chan struct{})
	peer, _, _ := spawnProbe(t, sys, NodeName(2), probeOpts{handle: func(ctx actor.Context) bool {
		c, ok := ctx.Message().(*raftpb.SnapshotChunk)
		if !ok {
			return false
		}
		received += uint64(len(c.GetData()))
		if chunks++; chunks%32 == 0 {
			peak = max(peak, liveHeap())
		}
		if c.GetLast() {
			close(done)
		}
		ctx.Respond(&raftpb.SnapshotChunkAck{ClusterId: testCluster, From: 2, To: 1, Term: c.GetTerm(), Index: c.GetIndex(), SnapTerm: c.GetSnapTerm(), Offset: c.GetOffset() + uint64(len(c.GetData()))})
		return true
	}})
	_, repl, rec := spawnProbe(t, sys, "", probeOpts{
		child: func() actor.Actor {
			return &replicationActor{self: 1, peer: 2, peerPID: peer, clusterID: testCluster, sm: sm, dir: dir, chunkSize: chunkSize, log: quietLogger()}
		},
		childName: "replicate-2",
	})
	base := liveHeap()
	sys.Root.Send(repl, &outbound{msgs: []raftlogic.Message{snapMsg()}})
	if d := expect[*snapshotDone](t, rec, nil); !d.ok {
		t.Fatalf("snapshotDone = %+v", d)
	}
	<-done
	growth := int64(peak) - int64(base)
	t.Logf("image %d bytes in %d chunks of %d: live heap %d before, peak %d while sending (growth %d)", received, chunks, chunkSize, base, peak, growth)
	if limit := int64(received) / 4; growth > limit {
		t.Fatalf("the live heap grew by %d bytes while sending a %d-byte image; want under %d", growth, received, limit)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the sent image was not deleted: %v", entries)
	}
}

// Snapshot images share the filesystem with Badger, whose writes through
// memory maps kill the process when the disk is full: neither receiving
// nor writing an image may eat into the node's disk reserve.
func TestSnapshotFilesRespectDiskReserve(t *testing.T) {
	t.Run("receiver", func(t *testing.T) {
		sys := newSystem(t)
		dir := t.TempDir()
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
			return &snapshotReceiver{dir: dir, idle: time.Minute, log: quietLogger(), reserve: 1 << 60}
		}))
		c := newTestImage(t, 20, 100, 2).chunker(t, 2, 5, 512).chunk(0)
		res, err := sys.Root.RequestFuture(pid, c, 5*time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ack := res.(*raftpb.SnapshotChunkAck); !ack.GetReject() {
			t.Fatalf("a chunk was accepted with no room above the reserve: %v", ack)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("the refused transfer left %d files", len(entries))
		}
	})
	t.Run("sender", func(t *testing.T) {
		w := &spaceCheckedWriter{w: io.Discard, dir: t.TempDir(), reserve: 1 << 60}
		var err error
		for i := 0; i < 4 && err == nil; i++ {
			_, err = w.Write(make([]byte, spaceCheckEvery/2))
		}
		if !errors.Is(err, persist.ErrDiskFull) {
			t.Fatalf("writing 2 MiB of image with no room above the reserve: %v, want ErrDiskFull", err)
		}
	})
}
