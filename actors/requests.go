package actors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/nodestatus"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// This file holds the node's side of client requests: proposals and reads
// arrive as proto messages (from the embedded DB in this process or from a
// forwarding node elsewhere) and are answered to their sender.

func (n *nodeActor) propose(ctx actor.Context, req *raftpb.ProposeRequest) {
	if !n.admitted(ctx, req, proposeRefusal) {
		return
	}
	index, term, err := n.raft.Propose(req.GetPayload())
	if err != nil {
		code, leader := notLeaderCode(err)
		ctx.Respond(&raftpb.ProposeResponse{ErrorCode: code, LeaderId: leader, Message: err.Error()})
		return
	}
	n.proposals++
	// Registered before the entry can commit: the apply actor learns of the
	// waiter before it sees the entry.
	ctx.Send(n.apply, &awaitProposal{index: index, term: term, replyTo: ctx.Sender()})
	n.scheduleFlush(ctx)
}

func (n *nodeActor) get(ctx actor.Context, req *raftpb.GetRequest) {
	if !n.admitted(ctx, req, getRefusal) {
		return
	}
	n.nextReadID++
	id := n.nextReadID
	if err := n.raft.ReadIndex(binary.BigEndian.AppendUint64(nil, id)); err != nil {
		code, leader := notLeaderCode(err)
		ctx.Respond(&raftpb.GetResponse{ErrorCode: code, LeaderId: leader, Message: err.Error()})
		return
	}
	n.reads[id] = pendingGet{key: req.GetKey(), replyTo: ctx.Sender(), asked: time.Now()}
	n.scheduleFlush(ctx)
}

// clusterRequest is a request that names the cluster it is meant for.
type clusterRequest interface{ GetClusterId() string }

// admitted reports whether the node should handle req: it names a sender
// to answer (else it is dropped, see unanswerable) and this node's cluster
// (else it is answered with refusal's CLUSTER_MISMATCH).
func (n *nodeActor) admitted(ctx actor.Context, req clusterRequest, refusal func(raftpb.ErrorCode, string) any) bool {
	if n.unanswerable(ctx, req) {
		return false
	}
	if why := n.foreignCluster(req.GetClusterId()); why != "" {
		ctx.Respond(refusal(raftpb.ErrorCode_ERROR_CODE_CLUSTER_MISMATCH, why))
		return false
	}
	return true
}

// The refusals of each kind of request, for admitted.
func proposeRefusal(code raftpb.ErrorCode, msg string) any {
	return &raftpb.ProposeResponse{ErrorCode: code, Message: msg}
}
func getRefusal(code raftpb.ErrorCode, msg string) any {
	return &raftpb.GetResponse{ErrorCode: code, Message: msg}
}
func membersRefusal(code raftpb.ErrorCode, msg string) any {
	return &raftpb.MembersResponse{ErrorCode: code, Message: msg}
}
func transferRefusal(code raftpb.ErrorCode, msg string) any {
	return &raftpb.TransferResponse{ErrorCode: code, Message: msg}
}

// unanswerable drops a request that names no sender (sent with Send, not
// Request): its answer would go to a nil PID, which panics in protoactor,
// and anyone on the network can send one.
func (n *nodeActor) unanswerable(ctx actor.Context, req any) bool {
	if ctx.Sender() != nil {
		return false
	}
	n.log.Warn("dropped a request without a sender to answer", "request", fmt.Sprintf("%T", req))
	return true
}

// readReady passes a confirmed read to the apply actor, which answers it
// once it has applied the read's index.
func (n *nodeActor) readReady(ctx actor.Context, rs raftlogic.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	id := binary.BigEndian.Uint64(rs.RequestCtx)
	g, ok := n.reads[id]
	if !ok {
		return
	}
	delete(n.reads, id)
	if n.cfg.ReadIndexLatency != nil {
		n.cfg.ReadIndexLatency(time.Since(g.asked))
	}
	if rs.Err != nil {
		code, leader := notLeaderCode(rs.Err)
		ctx.Send(g.replyTo, &raftpb.GetResponse{ErrorCode: code, LeaderId: leader, Message: rs.Err.Error()})
		return
	}
	ctx.Send(n.apply, &readAt{index: rs.Index, key: g.key, replyTo: g.replyTo})
}

func (n *nodeActor) status(ctx actor.Context, req *raftpb.StatusRequest) {
	st := n.raft.Status()
	lsm, vlog := n.storage.size()
	// Read at each request (a walk of a few dozen files), so that status
	// and metrics show space as it is, not as Badger last estimated it.
	disk, err := persist.DiskUsage(n.cfg.DataDir)
	if err != nil {
		n.log.Warn("disk usage", "err", err)
	}
	free, _, err := persist.DiskFree(n.cfg.DataDir)
	if err != nil {
		n.log.Warn("free disk space", "err", err)
	}
	res := apiwire.StatusToWire(nodestatus.Status{
		ID: n.cfg.ID, Role: st.Role.String(), Term: st.Term, Leader: st.Lead,
		Commit: st.Commit, Applied: n.applied, FirstIndex: st.FirstIdx, LastIndex: st.LastIndex,
		SnapshotIndex: st.Snapshot.Index, LSMBytes: lsm, VlogBytes: vlog,
		LeaderChanges: n.leaderChanges, Proposals: n.proposals,
		DiskBytes: uint64(max(disk, 0)), DiskFreeBytes: uint64(max(free, 0)),
		Members: n.memberStatus(st),
	})
	res.ClusterId = n.cfg.ClusterID
	ctx.Respond(res)
}

// foreignCluster says why a request meant for clusterID is refused here,
// or "" when it is this node's cluster. (A stopping node refuses every
// request before this; see lifecycle.go.)
func (n *nodeActor) foreignCluster(clusterID string) string {
	if clusterID != n.cfg.ClusterID {
		return "request for cluster " + clusterID + " reached cluster " + n.cfg.ClusterID
	}
	return ""
}

// notLeaderCode turns raftlogic's refusal into a wire code naming the leader.
func notLeaderCode(err error) (raftpb.ErrorCode, uint64) {
	var nl *raftlogic.NotLeaderError
	if errors.As(err, &nl) {
		if nl.Transferring {
			return raftpb.ErrorCode_ERROR_CODE_TRANSFERRING, nl.Leader
		}
		return raftpb.ErrorCode_ERROR_CODE_NOT_LEADER, nl.Leader
	}
	return raftpb.ErrorCode_ERROR_CODE_INTERNAL, 0
}
