package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// incomingSnapshot assembles a snapshot a peer streams in chunks.
type incomingSnapshot struct {
	index uint64
	data  []byte
}

// maxSnapshotBytes bounds an assembled snapshot, so a broken or hostile
// peer cannot make this node allocate without limit.
const maxSnapshotBytes = 4 << 30

// receiveChunk takes one chunk of a snapshot. Chunks arrive in order (one
// outstanding at a time); anything else is refused and the sender starts
// over. The last chunk hands the whole image to Raft as one MsgSnap.
func (n *nodeActor) receiveChunk(ctx actor.Context, c *raftpb.SnapshotChunk) {
	ack := &raftpb.SnapshotChunkAck{ClusterId: n.cfg.ClusterID, From: n.cfg.ID, To: c.GetFrom(), Term: c.GetTerm(), Index: c.GetIndex(), SnapTerm: c.GetSnapTerm()}
	in := n.incoming[c.GetFrom()]
	if c.GetOffset() == 0 {
		in = &incomingSnapshot{index: c.GetIndex()}
		n.incoming[c.GetFrom()] = in
	}
	ok := n.raft != nil && c.GetClusterId() == n.cfg.ClusterID && c.GetTo() == n.cfg.ID &&
		in != nil && in.index == c.GetIndex() && c.GetOffset() == uint64(len(in.data)) &&
		len(in.data)+len(c.GetData()) <= maxSnapshotBytes
	if !ok {
		delete(n.incoming, c.GetFrom())
		ack.Reject = true
		ctx.Respond(ack)
		return
	}
	in.data = append(in.data, c.GetData()...)
	ack.Offset = uint64(len(in.data))
	ctx.Respond(ack)
	if !c.GetLast() {
		return
	}
	delete(n.incoming, c.GetFrom())
	m := raftlogic.Message{
		Type: raftlogic.MsgSnap, From: c.GetFrom(), To: n.cfg.ID, Term: c.GetTerm(),
		Snapshot: raftlogic.Snapshot{
			Meta: raftlogic.SnapshotMeta{Index: c.GetIndex(), Term: c.GetSnapTerm(), ConfState: raftlogic.ConfState{Voters: c.GetVoters()}},
			Data: in.data,
		},
	}
	if err := n.raft.Step(m); err != nil {
		n.log.Warn("dropped a snapshot", "from", c.GetFrom(), "err", err)
		return
	}
	n.scheduleFlush(ctx)
}
