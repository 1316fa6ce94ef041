package actors

import (
	"bytes"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// replicationActor carries a node's messages to one peer. Pipelining, the
// in-flight window and retries are decided by raftlogic (per-peer progress
// with probe and replicate states); this actor turns messages into proto
// envelopes and streams snapshots in acknowledged chunks, so a large image
// never travels as one message.
type replicationActor struct {
	self, peer uint64
	peerPID    *actor.PID
	clusterID  string
	sm         *kvstate.State
	chunkSize  int
	log        *slog.Logger
	// ackTimeout bounds the wait for a chunk's acknowledgement; zero means
	// snapshotAckTimeout (tests shorten it).
	ackTimeout time.Duration

	snap *outgoingSnapshot
	gen  uint64
}

type outgoingSnapshot struct {
	data              []byte
	index, snapTerm   uint64
	voters            []uint64
	raftTerm          uint64
	offset, chunkSize int
	timer             *time.Timer
}

// snapshotAckTimeout bounds the wait for one chunk's acknowledgement; after
// it the transfer is reported failed and Raft tries again later.
const snapshotAckTimeout = 10 * time.Second

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
		if r.snap != nil && r.snap.timer != nil {
			r.snap.timer.Stop()
		}
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
	var buf bytes.Buffer
	index, term, err := r.sm.Snapshot(&buf)
	if err != nil {
		r.log.Error("snapshot for peer", "peer", r.peer, "err", err)
		ctx.Send(ctx.Parent(), &snapshotDone{peer: r.peer, ok: false})
		return
	}
	r.gen++
	r.snap = &outgoingSnapshot{
		data: buf.Bytes(), index: index, snapTerm: term, voters: m.Snapshot.Meta.ConfState.Voters,
		raftTerm: m.Term, chunkSize: r.chunkSize,
	}
	r.log.Info("sending snapshot", "peer", r.peer, "index", index, "bytes", buf.Len())
	r.sendChunk(ctx)
}

func (r *replicationActor) sendChunk(ctx actor.Context) {
	s := r.snap
	end := min(s.offset+s.chunkSize, len(s.data))
	ctx.Request(r.peerPID, &raftpb.SnapshotChunk{
		ClusterId: r.clusterID, From: r.self, To: r.peer, Term: s.raftTerm,
		Index: s.index, SnapTerm: s.snapTerm, Voters: s.voters,
		Offset: uint64(s.offset), Data: s.data[s.offset:end], Last: end == len(s.data),
	})
	gen, root, self := r.gen, ctx.ActorSystem().Root, ctx.Self()
	if s.timer != nil {
		s.timer.Stop()
	}
	wait := r.ackTimeout
	if wait <= 0 {
		wait = snapshotAckTimeout
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
	next := int(ack.GetOffset())
	if next <= s.offset || next > len(s.data) {
		return // a duplicate or stale acknowledgement
	}
	s.offset = next
	if s.offset == len(s.data) {
		r.finishSnapshot(ctx, true)
		return
	}
	r.sendChunk(ctx)
}

func (r *replicationActor) finishSnapshot(ctx actor.Context, ok bool) {
	if r.snap.timer != nil {
		r.snap.timer.Stop()
	}
	r.log.Info("snapshot transfer ended", "peer", r.peer, "index", r.snap.index, "ok", ok)
	r.snap = nil
	ctx.Send(ctx.Parent(), &snapshotDone{peer: r.peer, ok: ok})
}
