package raftkv

import (
	"context"
	"sync"

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
	// LSMBytes and VlogBytes are the node's Badger sizes as Badger last
	// estimated them (it refreshes them about once a minute).
	LSMBytes, VlogBytes uint64
	// DiskBytes is the space the node's data directory takes on disk now;
	// DiskFreeBytes is the free space left on its filesystem (a node stops
	// writing below the configured diskReserve).
	DiskBytes, DiskFreeBytes uint64
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
	// Ask every node at once, so an unreachable node costs one timeout for
	// the whole call, not one each.
	out := make([]NodeStatus, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		out[i].ID = id
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := db.ask(ctx, db.pids[id], &raftpb.StatusRequest{}, false)
			if err != nil {
				return
			}
			r, ok := res.(*raftpb.StatusResponse)
			if !ok || r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
				return
			}
			out[i] = NodeStatus{
				ID: id, Reachable: true, Role: r.GetRole(), Term: r.GetTerm(), Leader: r.GetLeader(),
				Commit: r.GetCommit(), Applied: r.GetApplied(), FirstIndex: r.GetFirstIndex(),
				LastIndex: r.GetLastIndex(), SnapshotIndex: r.GetSnapshotIndex(),
				LSMBytes: r.GetLsmBytes(), VlogBytes: r.GetVlogBytes(),
				DiskBytes: r.GetDiskBytes(), DiskFreeBytes: r.GetDiskFreeBytes(),
				LeaderChanges: r.GetLeaderChanges(), Proposals: r.GetProposals(),
			}
		}()
	}
	wg.Wait()
	return out, ctx.Err()
}
