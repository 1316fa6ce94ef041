package raftkv

import (
	"context"

	"github.com/raftkv/raftkv/nodestatus"
)

// NodeStatus is one node's state as it answered a status request (see
// nodestatus.Status for its fields: id, addresses, whether it answered,
// role, term, leader, commit and applied indexes, log bounds, snapshot
// index, storage and disk sizes, counters). DB.Status and Client.Status
// report it, the metrics are read from it, and `raftkv status --json`
// prints it.
type NodeStatus = nodestatus.Status

// Status asks every node of the cluster for its state, in id order. A node
// that does not answer within the context (or a second) is reported
// unreachable rather than failing the call.
func (db *DB) Status(ctx context.Context) ([]NodeStatus, error) {
	return db.gw.status(ctx, db.route.ids())
}
