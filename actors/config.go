package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// NodeConfig is everything a node actor needs to run.
type NodeConfig struct {
	// ID is this node's id; Peers maps every voter's id (this node's too)
	// to the PID its node actor answers at.
	ID        uint64
	Peers     map[uint64]*actor.PID
	ClusterID string
	// DataDir holds this node's Badger database.
	DataDir string
	// TickInterval is the length of one Raft tick; ElectionTicks and
	// HeartbeatTicks count in it.
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries is how many applied entries the log keeps behind a
	// snapshot before it is compacted.
	SnapshotEntries uint64
	// SnapshotChunkSize bounds one snapshot message (default 256 KiB); it
	// must stay well under the transport's message limit.
	SnapshotChunkSize int
	// SessionTTL is the state machine's kvstate.Options.SessionTTL (0: the
	// default). It must be the same on every node; only tests change it.
	SessionTTL uint64
	// Logger receives the node's structured logs.
	Logger *slog.Logger
	// OnStart, when set, is called from the node's goroutine each time the
	// node has opened its storage (err nil) or failed to (the node then
	// stops). Open uses it to report a node that cannot start.
	OnStart func(err error)
	// OnStopped, when set, is called once the node has stopped and closed
	// its storage, so its data directory may be opened again.
	OnStopped func()
	// OnLeader, when set, is told each leader this node learns of, with
	// the term it leads (called from the node's goroutine; keep it cheap).
	// The DB routes to it, and stops waiting on a leader in another process
	// that has been replaced.
	OnLeader func(leader, term uint64)
	// ReadIndexLatency, when set, is told how long each ReadIndex took to
	// confirm (called from the node's goroutine; keep it cheap).
	ReadIndexLatency func(time.Duration)
	// SenderMiddleware, when set, wraps every send of the node and its
	// children; tests use it to inject network faults.
	SenderMiddleware []actor.SenderMiddleware
}

// ErrWrongCluster refuses to start a node on data written by a node of a
// different cluster membership.
var ErrWrongCluster = errors.New("actors: data directory belongs to another cluster")

// NodeName is the actor name of node id; a node is reached at
// actor.NewPID(address, NodeName(id)).
func NodeName(id uint64) string { return fmt.Sprintf("n%d", id) }

func (c *NodeConfig) validate() error {
	switch {
	case c.ID == 0:
		return fmt.Errorf("actors: node id must be non-zero")
	case c.Peers[c.ID] == nil:
		return fmt.Errorf("actors: node %d is not among its peers", c.ID)
	case c.TickInterval <= 0:
		return fmt.Errorf("actors: tick interval must be positive, got %v", c.TickInterval)
	case c.DataDir == "":
		return fmt.Errorf("actors: node %d has no data directory", c.ID)
	}
	if c.SnapshotChunkSize <= 0 {
		c.SnapshotChunkSize = 256 << 10
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
