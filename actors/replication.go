package actors

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// replicationActor streams a node's snapshots to one peer, in acknowledged
// chunks, so a large image never travels as one message; the node sends
// every other message to the peer itself (peers.go). It forwards any other
// message it is given, as an envelope. Pipelining, the in-flight window and
// retries are decided by raftlogic (per-peer progress with probe and
// replicate states).
type replicationActor struct {
	self, peer uint64
	peerPID    *actor.PID
	clusterID  string
	sm         *kvstate.State
	// dir holds the image being sent (the node's snapshot directory); the
	// image is written there whole, then read a chunk at a time, so memory
	// does not grow with the state.
	dir       string
	chunkSize int
	log       *slog.Logger
	// reserve is the node's disk reserve; writing an image stops before
	// it eats into it.
	reserve int64
	// ackTimeout bounds the wait for a chunk's acknowledgement; zero means
	// snapshotAckTimeout (tests shorten it).
	ackTimeout time.Duration

	snap *outgoingSnapshot
	gen  uint64
}

type outgoingSnapshot struct {
	file            *os.File
	size, offset    int64
	index, snapTerm uint64
	conf            raftlogic.ConfState
	raftTerm        uint64
	chunkSize       int
	timer           *time.Timer
}

// snapshotAckTimeout bounds the wait for one chunk's acknowledgement; after
// it the transfer is reported failed and Raft tries again later.
const snapshotAckTimeout = 10 * time.Second

// snapshotVerifyRate is the slowest rate, in bytes per second, at which a
// receiver is expected to sync and verify a whole image before it answers
// the last chunk: the wait for that answer grows with the image.
const snapshotVerifyRate = 8 << 20

type snapshotTimeout struct{ gen uint64 }

func (r *replicationActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *outbound:
		r.forward(ctx, msg.msgs)
	case *raftpb.SnapshotChunkAck:
		r.chunkAcked(ctx, msg)
	case *snapshotTimeout:
		if r.snap != nil && msg.gen == r.gen {
			r.finishSnapshot(ctx, false)
		}
	case *actor.Stopping, *actor.Restarting:
		r.dropSnapshot()
	case *actor.DeadLetterResponse:
		if r.snap != nil {
			r.finishSnapshot(ctx, false)
		}
	}
}

func (r *replicationActor) forward(ctx actor.Context, msgs []raftlogic.Message) {
	for _, m := range msgs {
		if m.Type == raftlogic.MsgSnap {
			r.startSnapshot(ctx, m)
			continue
		}
		ctx.Send(r.peerPID, remote.NewEnvelope(r.clusterID, m))
	}
}

// startSnapshot streams a fresh image of the state machine. It may cover
// more than the snapshot raftlogic named (the state machine has moved on
// since the log was compacted); any committed prefix is a valid snapshot,
// and the follower reports the index it installed.
func (r *replicationActor) startSnapshot(ctx actor.Context, m raftlogic.Message) {
	if r.snap != nil {
		return // one transfer at a time; raftlogic waits for its outcome
	}
	f, size, meta, err := r.writeImage()
	if err != nil {
		r.log.Error("snapshot for peer", "peer", r.peer, "err", err)
		ctx.Send(ctx.Parent(), &snapshotDone{peer: r.peer, ok: false})
		return
	}
	// The image's own configuration is as of its index; raftlogic's is as
	// of the last compaction, older. Data written before the state kept a
	// configuration has none: membership never changed there, so
	// raftlogic's is the same.
	conf := meta.ConfState
	if len(conf.Voters) == 0 {
		conf = m.Snapshot.Meta.ConfState
	}
	r.gen++
	r.snap = &outgoingSnapshot{
		file: f, size: size, index: meta.Index, snapTerm: meta.Term, conf: conf,
		raftTerm: m.Term, chunkSize: r.chunkSize,
	}
	r.log.Info("sending snapshot", "peer", r.peer, "index", meta.Index, "bytes", size)
	r.sendChunk(ctx)
}

// writeImage writes an image of the state machine to this peer's file in
// the snapshot directory and returns it open for reading. The file is not
// synced: nothing relies on it after a crash, and a node clears the
// directory when it starts.
func (r *replicationActor) writeImage() (f *os.File, size int64, meta raftlogic.SnapshotMeta, err error) {
	path := r.imagePath()
	if f, err = os.Create(path); err != nil {
		return nil, 0, meta, fmt.Errorf("create snapshot image: %w", err)
	}
	meta, err = r.sm.SnapshotMeta(&spaceCheckedWriter{w: f, dir: r.dir, reserve: r.reserve})
	if err == nil {
		size, err = f.Seek(0, io.SeekCurrent)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, 0, meta, fmt.Errorf("write snapshot image %s: %w", path, err)
	}
	return f, size, meta, nil
}

func (r *replicationActor) imagePath() string {
	return filepath.Join(r.dir, fmt.Sprintf("send-%d.img", r.peer))
}

func (r *replicationActor) sendChunk(ctx actor.Context) {
	s := r.snap
	// A fresh buffer per chunk: the message may still be on its way (or
	// duplicated) when the next chunk is read.
	data := make([]byte, min(int64(s.chunkSize), s.size-s.offset))
	if _, err := s.file.ReadAt(data, s.offset); err != nil {
		r.log.Error("read snapshot image", "peer", r.peer, "offset", s.offset, "err", err)
		r.finishSnapshot(ctx, false)
		return
	}
	last := s.offset+int64(len(data)) == s.size
	ctx.Request(r.peerPID, &raftpb.SnapshotChunk{
		ClusterId: r.clusterID, From: r.self, To: r.peer, Term: s.raftTerm,
		Index: s.index, SnapTerm: s.snapTerm,
		Voters: s.conf.Voters, VotersOutgoing: s.conf.VotersOutgoing, Learners: s.conf.Learners,
		Offset: uint64(s.offset), Data: data, Last: last,
	})
	gen, root, self := r.gen, ctx.ActorSystem().Root, ctx.Self()
	if s.timer != nil {
		s.timer.Stop()
	}
	wait := r.ackTimeout
	if wait <= 0 {
		wait = snapshotAckTimeout
	}
	if last {
		// The receiver syncs and verifies the whole image before it
		// answers the last chunk.
		wait += time.Duration(s.size/snapshotVerifyRate) * time.Second
	}
	s.timer = time.AfterFunc(wait, func() { root.Send(self, &snapshotTimeout{gen: gen}) })
}

func (r *replicationActor) chunkAcked(ctx actor.Context, ack *raftpb.SnapshotChunkAck) {
	s := r.snap
	if s == nil || ack.GetIndex() != s.index {
		return
	}
	if ack.GetReject() {
		r.finishSnapshot(ctx, false)
		return
	}
	next := ack.GetOffset()
	if next <= uint64(s.offset) || next > uint64(s.size) {
		return // a duplicate or stale acknowledgement
	}
	s.offset = int64(next)
	if s.offset == s.size {
		r.finishSnapshot(ctx, true)
		return
	}
	r.sendChunk(ctx)
}

func (r *replicationActor) finishSnapshot(ctx actor.Context, ok bool) {
	r.log.Info("snapshot transfer ended", "peer", r.peer, "index", r.snap.index, "ok", ok)
	r.dropSnapshot()
	ctx.Send(ctx.Parent(), &snapshotDone{peer: r.peer, ok: ok})
}

// dropSnapshot ends the transfer in progress, if any, and deletes its image.
func (r *replicationActor) dropSnapshot() {
	s := r.snap
	if s == nil {
		return
	}
	r.snap = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.file.Close()
	if err := os.Remove(s.file.Name()); err != nil {
		r.log.Warn("remove sent snapshot image", "err", err)
	}
}

// spaceCheckedWriter fails with persist.ErrDiskFull once writing more to
// dir would leave less than reserve free. It checks every megabyte, so an
// image cannot fill the disk Badger shares with it.
type spaceCheckedWriter struct {
	w         io.Writer
	dir       string
	reserve   int64
	unchecked int64
}

const spaceCheckEvery = 1 << 20

func (s *spaceCheckedWriter) Write(p []byte) (int, error) {
	if s.unchecked += int64(len(p)); s.unchecked >= spaceCheckEvery {
		if err := persist.CheckSpace(s.dir, s.reserve, s.unchecked); err != nil {
			return 0, err
		}
		s.unchecked = 0
	}
	return s.w.Write(p)
}
