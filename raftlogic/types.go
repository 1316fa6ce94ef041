package raftlogic

import "fmt"

// None is the node id meaning "no node": no vote cast, no leader known.
const None uint64 = 0

// Role is the part a node plays in its current term.
type Role uint8

// The roles of the Raft paper, plus the PreCandidate of the PreVote extension
// (Raft thesis 9.6): a node that asks whether it could win before it disturbs
// anyone by raising its term.
const (
	Follower Role = iota
	PreCandidate
	Candidate
	Leader
)

// String names the role in lower case, as logs and status show it.
func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// EntryType says how the state machine must read an entry's Data.
type EntryType uint8

const (
	// EntryNormal carries an opaque command for the state machine.
	// An EntryNormal with no Data is the no-op a new leader appends.
	EntryNormal EntryType = iota
	// EntryConfChange carries a membership change and the configuration it
	// results in; read it with DecodeConfChange. It takes effect when
	// appended (see "Membership" in the package documentation).
	EntryConfChange
)

// Entry is one record of the replicated log.
type Entry struct {
	// Index is the entry's position in the log, from 1.
	Index uint64
	// Term is the term of the leader that created the entry.
	Term uint64
	// Type says how to read Data.
	Type EntryType
	// Data is the command, opaque to raftlogic.
	Data []byte
}

// HardState is what a node must have on stable storage before it answers any
// message: its current term, whom it voted for in that term, and the highest
// index it knows committed (commit is persisted to apply faster after a
// restart; safety does not depend on it).
type HardState struct {
	// Term is the latest term the node has seen.
	Term uint64
	// Vote is the node voted for in Term, or None.
	Vote uint64
	// Commit is the highest index known committed.
	Commit uint64
}

// IsEmpty reports whether h is the zero HardState.
func (h HardState) IsEmpty() bool { return h == HardState{} }

// ConfState is a cluster configuration: who votes and who only receives
// the log. Each id is non-zero and appears once within a list; a learner is
// never also a voter.
type ConfState struct {
	// Voters are the ids of the voting members; in a joint configuration,
	// the incoming half.
	Voters []uint64
	// VotersOutgoing is empty except while a joint configuration is in
	// force (Raft thesis 4.3): then it holds the voters of the
	// configuration being left, and every quorum decision needs a majority
	// of both halves.
	VotersOutgoing []uint64
	// Learners are the ids of the non-voting members: they receive the log
	// and snapshots but never vote or count toward a quorum.
	Learners []uint64
}

// SnapshotMeta says what a snapshot covers: every entry up to Index, whose
// term is Term, under configuration ConfState.
type SnapshotMeta struct {
	// Index is the last entry the snapshot covers.
	Index uint64
	// Term is the term of the entry at Index.
	Term uint64
	// ConfState is the configuration as of Index.
	ConfState ConfState
}

// Snapshot is a state machine image. Its Data belongs to the state machine;
// raftlogic only carries it. A transport may send Data in chunks or fill it
// in at send time, as long as the receiver gets the image Meta describes.
type Snapshot struct {
	// Meta says what the image covers.
	Meta SnapshotMeta
	// Data is the image, or what the driver uses to find it.
	Data []byte
}

// IsEmpty reports whether s covers nothing.
func (s Snapshot) IsEmpty() bool { return s.Meta.Index == 0 }

// MessageType names a Raft message.
type MessageType uint8

// The messages nodes exchange. Local inputs (ticks, proposals, reads) are
// methods on Node, not messages, so nothing local can be confused with
// something that arrived from the network.
const (
	MsgApp           MessageType = iota + 1 // AppendEntries
	MsgAppResp                              // AppendEntries response
	MsgVote                                 // RequestVote
	MsgVoteResp                             // RequestVote response
	MsgPreVote                              // PreVote request (term is the term the sender would campaign in)
	MsgPreVoteResp                          // PreVote response
	MsgHeartbeat                            // empty AppendEntries that also confirms leadership for reads
	MsgHeartbeatResp                        // heartbeat response
	MsgSnap                                 // InstallSnapshot
	MsgTimeoutNow                           // leadership transfer: campaign now
)

var msgNames = [...]string{
	MsgApp: "MsgApp", MsgAppResp: "MsgAppResp", MsgVote: "MsgVote", MsgVoteResp: "MsgVoteResp",
	MsgPreVote: "MsgPreVote", MsgPreVoteResp: "MsgPreVoteResp", MsgHeartbeat: "MsgHeartbeat",
	MsgHeartbeatResp: "MsgHeartbeatResp", MsgSnap: "MsgSnap", MsgTimeoutNow: "MsgTimeoutNow",
}

// String returns the constant's name, as traces and logs show it.
func (t MessageType) String() string {
	if int(t) < len(msgNames) && msgNames[t] != "" {
		return msgNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is one Raft RPC or response. Fields a type does not use are zero.
type Message struct {
	// Type says which RPC or response this is.
	Type MessageType
	// From is the sender; raftlogic sets it on every message it sends.
	From uint64
	// To is the receiver; Step refuses a message addressed to another node.
	To uint64
	// Term is the sender's term, or for MsgPreVote the term it would
	// campaign in. Step refuses a zero term.
	Term uint64

	// MsgApp: Index and LogTerm identify the entry preceding Entries.
	// MsgVote/MsgPreVote: Index and LogTerm are the candidate's last entry.
	// MsgAppResp: Index is the highest index known to match (accept) or the
	// index the leader probed (reject).
	Index   uint64
	LogTerm uint64
	Entries []Entry
	// Commit is the leader's commit index (MsgApp, MsgHeartbeat).
	Commit uint64

	// Reject marks a refused MsgApp, vote or prevote.
	Reject bool
	// RejectHint and LogTerm on a rejected MsgAppResp let the leader skip a
	// whole conflicting term at once: the follower's largest index at or
	// below the probe whose term is at most the probe's term, and that term.
	RejectHint uint64

	// Snapshot rides on MsgSnap.
	Snapshot Snapshot

	// Context carries the read-round number on MsgHeartbeat and its
	// response (ReadIndex), and campaignTransfer on MsgVote.
	Context uint64
}

// ReadState answers a ReadIndex request: once the local state machine has
// applied Index, a read of it is linearizable. Err is non-nil when the read
// can no longer be served (the node lost leadership); Index is then zero.
type ReadState struct {
	// Index is the commit index the read must wait for.
	Index uint64
	// RequestCtx is what the driver passed to ReadIndex, to match the answer
	// to its request.
	RequestCtx []byte
	// Err, when set, refuses the read (a *NotLeaderError).
	Err error
}

// SoftState is volatile information a node reports when it changes.
type SoftState struct {
	// Lead is the leader this node knows of, or None.
	Lead uint64
	// Role is the part this node plays now.
	Role Role
}
