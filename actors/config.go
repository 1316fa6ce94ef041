package actors

import (
	"errors"
	"fmt"
	"github.com/raftkv/raftkv/raftlogic"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
)

// NodeConfig is everything a node actor needs to run.
type NodeConfig struct {
	// ID is this node's id; Peers maps the ids of the members config.yaml
	// lists (this node's too) to the PIDs their node actors answer at.
	// They are the members of a new cluster; once a node has data, its
	// configuration comes from its log, and Peers only supplies addresses
	// its member table lacks (see members.go).
	ID        uint64
	Peers     map[uint64]*actor.PID
	ClusterID string
	// Members gives the peer and client addresses of the members in Peers,
	// recorded in the member table when a new cluster starts. Optional:
	// without it the table records the PIDs' addresses and no client
	// address.
	Members []kvstate.Member
	// Join starts a node that is not a member yet: it records no
	// configuration of its own, never campaigns, and waits to be added by
	// the cluster (as a learner), which then sends it a snapshot or the
	// log. Its Peers are the cluster's members, so it can answer them.
	Join bool
	// PeerPID, when set, resolves a member to the PID of its node actor
	// (embedded mode: every node is local). Nil: the node actor named
	// NodeName(id) at the member's peer address.
	PeerPID func(kvstate.Member) *actor.PID
	// StrictMembers makes a start refuse data whose configuration is not
	// the configured members (ErrWrongCluster) instead of following it
	// with a warning. The embedded mode sets it: there the configuration
	// file is the only description of the cluster, and a changed
	// serversNum would otherwise be silently ignored.
	StrictMembers bool
	// OnMembers, when set, is told the members the node knows an address
	// for, each time it learns of more (called from the node's goroutine;
	// keep it cheap). The DB routes requests to members added at run time
	// with it.
	OnMembers func([]kvstate.Member)
	// DataDir holds this node's Badger database.
	DataDir string
	// TickInterval is the length of one Raft tick; ElectionTicks and
	// HeartbeatTicks count in it.
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// SnapshotEntries is how many applied entries the log keeps behind a
	// snapshot before it is compacted (config's snapshotEntries; required).
	SnapshotEntries uint64
	// SnapshotBytes bounds the log's entry data (it is held in memory):
	// past it the log is compacted even before SnapshotEntries, and the
	// entries kept for catching up weigh at most half of it (config's
	// snapshotBytes; required).
	SnapshotBytes int64
	// CatchUpEntries is how many of the newest applied entries a compaction
	// keeps, so a follower briefly behind catches up from the log instead
	// of a snapshot. It must be below SnapshotEntries.
	CatchUpEntries uint64
	// DiskReserve is the free space, in bytes, the node keeps on the
	// filesystems of its data: a write that would go below it is refused
	// and the node stops with an error wrapping persist.ErrDiskFull. 0
	// turns the check off.
	DiskReserve int64
	// SnapshotChunkSize bounds one snapshot message; it must stay well
	// under the transport's message limit. Zero means
	// limits.SnapshotChunkSize (256 KiB), which Open passes too.
	SnapshotChunkSize int
	// SnapshotIdleTimeout bounds how long a snapshot may make no progress
	// (zero: defaultSnapshotIdleTimeout, 30 s; only tests shorten it): a partly received image that no chunk has extended
	// for this long is dropped, and an install that has read or written
	// nothing for this long stops the node. It bounds idleness, not
	// duration, so an image of any size may take as long as it needs.
	SnapshotIdleTimeout time.Duration
	// MaxBytesPerMsg and MaxEntriesPerMsg bound the entries in one MsgApp
	// (raftlogic.Config; zero means raftlogic's defaults, 1 MiB and 512).
	// An entry larger than MaxBytesPerMsg still travels, alone, so the
	// transport's message limit must cover the largest entry as well.
	MaxBytesPerMsg   int
	MaxEntriesPerMsg int
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
	// its storage, so its data directory may be opened again. err is why it
	// stopped on its own (a failed start, a storage error: fail-stop), nil
	// when it was asked to stop.
	OnStopped func(err error)
	// OnLeader, when set, is told each leader this node learns of, with
	// the term it leads (called from the node's goroutine; keep it cheap).
	// The DB routes to it, and stops waiting on a leader in another process
	// that has been replaced.
	OnLeader func(leader, term uint64)
	// ReadIndexLatency, when set, is told how long each ReadIndex took to
	// confirm (called from the node's goroutine; keep it cheap).
	ReadIndexLatency func(time.Duration)
	// MaxStoredEntry is the largest record the node stores under one key
	// (a log entry carrying the largest value the cluster accepts, as
	// internal/limits derives it); the node's databases are sized for it.
	// Zero leaves them at persist.OpenDB's smallest value-log files (16 MiB),
	// which hold the entries of config's default value limit (1 MiB).
	MaxStoredEntry int
	// StorageOptions are passed to persist.OpenDB for both of the node's
	// databases, after the node's own; tests use them to shrink Badger's
	// files.
	StorageOptions []persist.Option
	// SenderMiddleware, when set, wraps every send of the node and its
	// children; tests use it to inject network faults (internal/faults).
	SenderMiddleware []actor.SenderMiddleware

	// hooks lets this package's tests reach into the snapshot paths; nil
	// outside tests.
	hooks *testHooks
}

// testHooks are the points where this package's tests observe or slow a
// node. Production code only checks them for nil.
type testHooks struct {
	// restoreReader, when set, wraps the reader an install restores from
	// (a test makes a restore slow, or stall, with it).
	restoreReader func(io.Reader) io.Reader
	// beforeApply, when set, sees every batch the apply actor is about to
	// apply (a test makes it panic there).
	beforeApply func(ents []raftlogic.Entry)
	// stateFlushInterval, when set, replaces stateFlushInterval (a test
	// holds applied entries uncommitted with a long one).
	stateFlushInterval time.Duration
}

// defaultSnapshotIdleTimeout is how long a snapshot transfer or install may
// make no progress. It is no operator setting (config has no key for it):
// this is its only home, and tests shorten it through NodeConfig.
const defaultSnapshotIdleTimeout = 30 * time.Second

// ErrWrongCluster refuses to start a node on data written by a node of a
// different cluster membership.
var ErrWrongCluster = errors.New("actors: data directory belongs to another cluster")

// ErrNotMember refuses to start a node with no data that is neither among
// the configured members (a new cluster's) nor joining a running cluster.
var ErrNotMember = errors.New("actors: node is not a member")

// NodeName is the actor name of node id; a node is reached at
// actor.NewPID(address, NodeName(id)).
func NodeName(id uint64) string { return fmt.Sprintf("n%d", id) }

func (c *NodeConfig) validate() error {
	switch {
	case c.ID == 0:
		return fmt.Errorf("actors: node id must be non-zero")
	case c.TickInterval <= 0:
		return fmt.Errorf("actors: tick interval must be positive, got %v", c.TickInterval)
	case c.DataDir == "":
		return fmt.Errorf("actors: node %d has no data directory", c.ID)
	}
	// The operator's settings come from package config, the one home of
	// their defaults: a node takes them as given and invents none.
	switch {
	case c.SnapshotEntries == 0:
		return fmt.Errorf("actors: node %d: snapshot entries (config's snapshotEntries) must be at least 1", c.ID)
	case c.SnapshotBytes <= 0:
		return fmt.Errorf("actors: node %d: snapshot bytes (config's snapshotBytes) must be positive, got %d", c.ID, c.SnapshotBytes)
	}
	if c.SnapshotChunkSize <= 0 {
		c.SnapshotChunkSize = limits.SnapshotChunkSize
	}
	if c.SnapshotIdleTimeout <= 0 {
		c.SnapshotIdleTimeout = defaultSnapshotIdleTimeout
	}
	if c.CatchUpEntries >= c.SnapshotEntries {
		return fmt.Errorf("actors: catch-up entries (%d) must be below snapshot entries (%d)", c.CatchUpEntries, c.SnapshotEntries)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
