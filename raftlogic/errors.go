package raftlogic

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is: the errors returned may wrap them
// with detail (a NotLeaderError names the leader it knows).
var (
	// ErrNotLeader refuses a proposal, read or transfer on a node that is not
	// the leader. The returned error is a *NotLeaderError naming the leader.
	ErrNotLeader = errors.New("raftlogic: not the leader")
	// ErrTransferInProgress refuses a proposal while leadership is being
	// handed to another node; the client should retry at the new leader.
	ErrTransferInProgress = errors.New("raftlogic: leadership transfer in progress")
	// ErrUnknownPeer refuses a request naming a node that is not a member of
	// the configuration (a leadership transfer, promoting or removing a
	// node), and a message claiming to come from no node or from the
	// receiver itself.
	ErrUnknownPeer = errors.New("raftlogic: unknown peer")
	// ErrInvalidMessage refuses a message that no correct peer sends.
	ErrInvalidMessage = errors.New("raftlogic: invalid message")
	// ErrInvalidConfig refuses a Config or InitialState that cannot be run.
	ErrInvalidConfig = errors.New("raftlogic: invalid config")
	// ErrCompacted refuses a Compact below the log's current start.
	ErrCompacted = errors.New("raftlogic: index already compacted")
	// ErrUnapplied refuses a Compact beyond what the state machine applied.
	ErrUnapplied = errors.New("raftlogic: index not yet applied")
	// ErrConfUnknown refuses a Compact at an index whose configuration the
	// node does not know: a node that joined by receiving the log from its
	// start (not a snapshot) learns the configuration only from the first
	// conf change entry it appends, and a snapshot must name one. The
	// driver compacts later, at or after that entry.
	ErrConfUnknown = errors.New("raftlogic: configuration not known at index")

	// ErrInvalidConfChange refuses a membership change that is malformed
	// whatever the configuration (no changes, an unknown type, node 0, a
	// node named twice), that adds a voter which is not a learner yet, and
	// conf change entry bytes that DecodeConfChange cannot read.
	ErrInvalidConfChange = errors.New("raftlogic: invalid conf change")
	// ErrConfChangeInProgress refuses a membership change while another
	// is not done: a conf change entry is in the log but not committed, a
	// joint configuration has not been left, or the leader has not yet
	// committed an entry of its own term (until then an uncommitted change
	// of an earlier leader may still win). One change at a time is what
	// keeps the majorities of consecutive configurations overlapping.
	ErrConfChangeInProgress = errors.New("raftlogic: conf change in progress")
	// ErrAlreadyMember refuses adding a node that is already a member (as
	// a learner, or as a voter).
	ErrAlreadyMember = errors.New("raftlogic: already a member")
	// ErrLastVoter refuses a change that would leave no voter.
	ErrLastVoter = errors.New("raftlogic: no voter left")
	// ErrLearnerBehind refuses promoting a learner whose log is more than
	// Config.MaxLearnerLag entries behind the leader's: as a voter it would
	// hold up commitment until it caught up.
	ErrLearnerBehind = errors.New("raftlogic: learner too far behind")
	// ErrWouldLoseQuorum refuses a change after which the voters the
	// leader heard from recently would not form a quorum of the new
	// configuration (of each half, if joint): the cluster would stall.
	ErrWouldLoseQuorum = errors.New("raftlogic: change would lose quorum")
	// ErrNotVoter refuses a leadership transfer to a node that is a member
	// but cannot lead: a learner, or a voter that is being removed.
	ErrNotVoter = errors.New("raftlogic: not a voter")
)

// NotLeaderError is returned when a request needs the leader. Leader is the
// leader this node knows of, or None.
type NotLeaderError struct {
	// Leader is where to retry: the known leader, or during a transfer the
	// transferee; None when no leader is known.
	Leader uint64
	// Transferring is set when this node is the leader but is handing
	// leadership to Leader (the transferee).
	Transferring bool
}

// Error names the leader to try instead, or says that none is known.
func (e *NotLeaderError) Error() string {
	if e.Transferring {
		return fmt.Sprintf("%v: handing leadership to node %d", ErrTransferInProgress, e.Leader)
	}
	if e.Leader == None {
		return fmt.Sprintf("%v: no leader known", ErrNotLeader)
	}
	return fmt.Sprintf("%v: leader is node %d", ErrNotLeader, e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) and, during a transfer,
// errors.Is(err, ErrTransferInProgress) hold.
func (e *NotLeaderError) Is(target error) bool {
	if target == ErrNotLeader {
		return !e.Transferring
	}
	return target == ErrTransferInProgress && e.Transferring
}
