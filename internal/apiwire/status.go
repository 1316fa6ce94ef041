package apiwire

import (
	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/nodestatus"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// The conversions of a node's status to and from the wires: the only code
// besides the node actor (which fills a Status from its state) and the
// .proto files that names every field. A field added to nodestatus.Status
// is added to StatusResponse in raft.proto and to both functions below.

// StatusToWire is s as a node answers a status request. The addresses and
// Reachable are the asker's to fill in; StatusResponse has no room for them.
func StatusToWire(s nodestatus.Status) *raftpb.StatusResponse {
	return &raftpb.StatusResponse{
		Id: s.ID, Role: s.Role, Term: s.Term, Leader: s.Leader,
		Commit: s.Commit, Applied: s.Applied,
		FirstIndex: s.FirstIndex, LastIndex: s.LastIndex, SnapshotIndex: s.SnapshotIndex,
		LsmBytes: s.LSMBytes, VlogBytes: s.VlogBytes,
		DiskBytes: s.DiskBytes, DiskFreeBytes: s.DiskFreeBytes,
		LeaderChanges: s.LeaderChanges, Proposals: s.Proposals,
		Members: MembersToWire(s.Members),
	}
}

// MembersToWire is the wire form of a configuration's members.
func MembersToWire(ms []nodestatus.Member) []*raftpb.MemberStatus {
	out := make([]*raftpb.MemberStatus, 0, len(ms))
	for _, m := range ms {
		out = append(out, &raftpb.MemberStatus{Id: m.ID, Role: m.Role, Match: m.Match, PeerAddress: m.PeerAddress, ClientAddress: m.ClientAddress})
	}
	return out
}

// MembersFromWire reads the members a node reported; Lag is derived from
// the reporting node's last index.
func MembersFromWire(ms []*raftpb.MemberStatus, lastIndex uint64) []nodestatus.Member {
	var out []nodestatus.Member
	for _, m := range ms {
		nm := nodestatus.Member{ID: m.GetId(), Role: m.GetRole(), Match: m.GetMatch(), PeerAddress: m.GetPeerAddress(), ClientAddress: m.GetClientAddress()}
		if nm.Match > 0 {
			nm.Lag = lastIndex - min(lastIndex, nm.Match)
		}
		out = append(out, nm)
	}
	return out
}

// StatusFromWire is the status a node answered (Reachable, since it did).
// It never fails: a nil or partial message gives zeros.
func StatusFromWire(r *raftpb.StatusResponse) nodestatus.Status {
	return nodestatus.Status{
		ID: r.GetId(), Reachable: true, Role: r.GetRole(), Term: r.GetTerm(), Leader: r.GetLeader(),
		Commit: r.GetCommit(), Applied: r.GetApplied(),
		FirstIndex: r.GetFirstIndex(), LastIndex: r.GetLastIndex(), SnapshotIndex: r.GetSnapshotIndex(),
		LSMBytes: r.GetLsmBytes(), VlogBytes: r.GetVlogBytes(),
		DiskBytes: r.GetDiskBytes(), DiskFreeBytes: r.GetDiskFreeBytes(),
		LeaderChanges: r.GetLeaderChanges(), Proposals: r.GetProposals(),
		Members: MembersFromWire(r.GetMembers(), r.GetLastIndex()),
	}
}

// NodeToClient is s as the client API's Status reports it.
func NodeToClient(s nodestatus.Status) *clientpb.NodeStatus {
	return &clientpb.NodeStatus{
		Id: s.ID, Address: s.Address, ClientAddress: s.ClientAddress, Reachable: s.Reachable,
		Status: StatusToWire(s),
	}
}

// NodeFromClient is the status the client API reported for one node. It
// never fails: a nil or partial message gives zeros.
func NodeFromClient(n *clientpb.NodeStatus) nodestatus.Status {
	s := nodestatus.Status{}
	if n.GetReachable() {
		s = StatusFromWire(n.GetStatus())
	}
	s.ID, s.Address, s.ClientAddress, s.Reachable = n.GetId(), n.GetAddress(), n.GetClientAddress(), n.GetReachable()
	return s
}
