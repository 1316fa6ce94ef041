// Package actors runs Raft nodes as protoactor-go actors. It owns the
// concurrency, time and I/O around the pure algorithm in raftlogic: each
// node is a supervisor actor holding a raftlogic.Node, its Badger storage
// (persist for the log, kvstate for the state machine) and its children:
//
//   - log-writer: writes the Raft log, one synced batch at a time, off the
//     node's goroutine (raftlogic's AsyncStorageWrites; see logwriter.go).
//   - election: the node's clock; it sends a tick every TickInterval.
//   - replicate-<peer>-<gen>: one per member of the configuration in force
//     (and per node outside it the node must answer); streams snapshots in
//     chunks. Every other Raft message goes from the node, or the log
//     writer, straight to the peer's node actor (peers.go). They start and
//     stop as the configuration changes.
//   - apply: applies committed entries in order, answers the clients waiting
//     for them, serves reads at their read index, and installs received
//     snapshots. Every proposal it
//     waits for gets exactly one answer: its result, DROPPED (overwritten),
//     or TIMEOUT (outcome unknown) when the node steps down as leader,
//     installs a snapshot over it, or apply stops or restarts. Senders wait
//     for that answer rather than re-propose on a timer. It commits the
//     state machine on a timer rather than per batch (stateFlushInterval),
//     and the log is compacted only behind what it committed.
//   - snapshot-recv: writes an incoming snapshot to a file and verifies it
//     before the node hands it to Raft (see snapshot.go).
//
// The node and its children run their mailboxes on a pool of reused
// goroutines (dispatch.go).
//
// Snapshots travel and install through files in the node's snapshot
// directory, so memory does not grow with the state, and a snapshot installs
// while the node actor keeps taking input (see install.go).
//
// The node handles raftlogic's Ready in one place (handleReady), once per
// burst of input (group commit): a leader first sends its appends (its own
// fsync may follow, Raft thesis 10.2.1); committed entries, already durable
// locally, go to apply (batched while apply is busy); the Ready's log changes
// go to the log writer, merged with every other Ready that arrives while a
// batch is being written; the remaining messages (votes, acknowledgements)
// leave once their batch is durable, and raftlogic learns of it through
// StableTo. A change of the commit index alone is not written.
//
// A node's lifecycle is explicit (lifecycle.go): it is starting, running,
// installing a snapshot, or stopping, each state one receive function, so
// what a node does with a message in a given state is decided in one
// place. Its storage is opened and recovered in one tested function,
// openNodeStorage (storage.go).
//
// Nodes find each other only by PID (address + NodeName(id)), so a node
// cannot tell whether a peer lives in its process or on another host.
// Membership changes at run time (members.go): the configuration in force
// is raftlogic's, the addresses come from the replicated member table
// (kvstate), the configuration entries the node appends, and the
// configured peers. A node with data follows its data; a joining node
// (NodeConfig.Join) waits to be added.
//
// This package is part of RaftKV's implementation and carries no
// compatibility promise: it exports only what the root package uses to
// host nodes (NewNodeProps, NodeConfig, NodeName, HasData), ErrWrongCluster,
// which raftkv.Open's error wraps when a data directory belongs to another
// node or cluster, and ErrNotMember.
// Applications import the root package, github.com/raftkv/raftkv. Test
// support (network fault injection) lives in internal/faults.
//
// This package must never make a Raft decision (that is raftlogic's), never
// define wire formats (remote's) or storage layouts (persist's, kvstate's),
// and never keep state outside an actor: every field here is owned by one
// actor's goroutine.
package actors
