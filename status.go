package raftkv

import (
	"context"

	"github.com/raftkv/raftkv/remote/raftpb"
)

// NodeStatus describes one node as it answered a status request.
type NodeStatus struct {
	ID uint64
	// Reachable is false when the node did not answer; the other fields
	// are then zero.
	Reachable     bool
	Role          string
	Term          uint64
	Leader        uint64
	Commit        uint64
	Applied       uint64
	FirstIndex    uint64
	LastIndex     uint64
	SnapshotIndex uint64
	// LSMBytes and VlogBytes are the node's Badger sizes on disk.
	LSMBytes, VlogBytes uint64
	// LeaderChanges and Proposals count since the node last started.
	LeaderChanges, Proposals uint64
}

// Status asks every node of the cluster for its state, in id order. A node
// that does not answer within the context (or a second) is reported
// unreachable rather than failing the call.
func (db *DB) Status(ctx context.Context) ([]NodeStatus, error) {
	return db.statusOf(ctx, db.ids)
}

func (db *DB) statusOf(ctx context.Context, ids []uint64) ([]NodeStatus, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	out := make([]NodeStatus, len(ids))
	for i, id := range ids {
		out[i].ID = id
		res, err := db.sys.Root.RequestFuture(db.pids[id], &raftpb.StatusRequest{}, tryTimeout).Result()
		if err != nil {
			continue
		}
		r, ok := res.(*raftpb.StatusResponse)
		if !ok || r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
			continue
		}
		out[i] = NodeStatus{
			ID: id, Reachable: true, Role: r.GetRole(), Term: r.GetTerm(), Leader: r.GetLeader(),
			Commit: r.GetCommit(), Applied: r.GetApplied(), FirstIndex: r.GetFirstIndex(),
			LastIndex: r.GetLastIndex(), SnapshotIndex: r.GetSnapshotIndex(),
			LSMBytes: r.GetLsmBytes(), VlogBytes: r.GetVlogBytes(),
			LeaderChanges: r.GetLeaderChanges(), Proposals: r.GetProposals(),
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}
