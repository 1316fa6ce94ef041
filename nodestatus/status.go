// Package nodestatus defines Status, the state of one RaftKV node as the
// node reports it. It is the one declaration of those fields: DB.Status and
// Client.Status return it (as raftkv.NodeStatus), the metrics read their
// gauges and /healthz from it, and `raftkv status --json` prints it. The
// peer and client wire messages carry it (raftkv.v1.StatusResponse inside
// NodeStatus); the module converts between them in one place.
//
// It owns the meaning of each field and their JSON names, which are stable:
// scripts read `raftkv status --json`. It must never import another package
// of the module (metrics and the root import it) nor hold behaviour beyond
// arithmetic on its own fields.
package nodestatus

// Status is one node's state, as it answered a status request.
type Status struct {
	// ID is the node's id in the cluster's configuration.
	ID uint64 `json:"id"`
	// Address is the node's Raft (peer) address as configured; ClientAddress
	// is where it serves the client API, empty when it serves none.
	Address       string `json:"peer_address"`
	ClientAddress string `json:"client_address"`
	// Reachable is false when the node did not answer; the fields below are
	// then zero.
	Reachable bool `json:"reachable"`
	// Role is "follower", "pre-candidate", "candidate" or "leader".
	Role string `json:"role"`
	// Term is the node's current term; Leader the leader it follows in it
	// (0: none known).
	Term   uint64 `json:"term"`
	Leader uint64 `json:"leader"`
	// Commit is the highest log index the node knows committed; Applied the
	// highest its state machine has applied.
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	// FirstIndex and LastIndex bound the entries in the node's log;
	// SnapshotIndex is the last entry its latest snapshot covers.
	FirstIndex    uint64 `json:"first_index"`
	LastIndex     uint64 `json:"last_index"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	// LSMBytes and VlogBytes are the node's Badger sizes as Badger last
	// estimated them (it refreshes them about once a minute).
	LSMBytes  uint64 `json:"lsm_bytes"`
	VlogBytes uint64 `json:"vlog_bytes"`
	// DiskBytes is the space the node's data directory takes on disk now;
	// DiskFreeBytes is the free space left on its filesystem (a node stops
	// writing below the configured diskReserve).
	DiskBytes     uint64 `json:"disk_bytes"`
	DiskFreeBytes uint64 `json:"disk_free_bytes"`
	// LeaderChanges and Proposals count since the node last started.
	LeaderChanges uint64 `json:"leader_changes"`
	Proposals     uint64 `json:"proposals"`
	// Members is the configuration in force as this node knows it (the
	// leader's is authoritative), by id.
	Members []Member `json:"members"`
}

// The roles of a member in a configuration.
const (
	RoleVoter = "voter"
	// RoleOutgoingVoter is a voter of the configuration being left while a
	// joint configuration is in force (it still votes).
	RoleOutgoingVoter = "outgoing voter"
	RoleLearner       = "learner"
)

// Member is one member of the configuration a node reports.
type Member struct {
	ID uint64 `json:"id"`
	// Role is RoleVoter, RoleOutgoingVoter or RoleLearner.
	Role string `json:"role"`
	// Match is the highest log index known replicated on the member, as
	// the leader tracks it; 0 in a follower's report.
	Match uint64 `json:"match"`
	// Lag is how many entries of the reporting leader's log the member
	// lacks (LastIndex - Match); 0 in a follower's report.
	Lag           uint64 `json:"lag"`
	PeerAddress   string `json:"peer_address"`
	ClientAddress string `json:"client_address"`
}

// LogEntries is the number of entries in the node's log (LastIndex -
// FirstIndex + 1), 0 when the log is empty or the node did not answer.
func (s Status) LogEntries() uint64 {
	if !s.Reachable || s.LastIndex+1 < s.FirstIndex {
		return 0
	}
	return s.LastIndex + 1 - s.FirstIndex
}

// ApplyLag is the number of committed entries the node has not applied yet.
func (s Status) ApplyLag() uint64 {
	return s.Commit - min(s.Commit, s.Applied)
}
