package raftlogic

import "fmt"

// Step hands the node a message from a peer. Messages from no node or from
// this node itself, to another node, or malformed are refused with an error
// and change nothing; stale messages are ignored (or answered so a stale
// sender catches up). A message from a node outside the configuration this
// node knows is taken: it may come from a leader whose addition this node's
// log does not hold yet; what a non-voter says never counts toward a vote,
// a commit or a read.
func (n *Node) Step(m Message) error {
	if err := n.checkMessage(m); err != nil {
		return err
	}
	switch {
	case m.Term > n.term:
		if (m.Type == MsgVote || m.Type == MsgPreVote) && m.Context != campaignTransfer && n.inLease() {
			// §6 of the thesis (4.2.3): a node with a live leader does not
			// let a removed or partitioned node raise the term.
			return nil
		}
		switch {
		case m.Type == MsgPreVote:
			// A pre-vote never changes our term.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote carries the term we would campaign in.
		case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
			n.becomeFollower(m.Term, m.From)
		default:
			n.becomeFollower(m.Term, None)
		}
	case m.Term < n.term:
		n.answerStale(m)
		return nil
	}

	switch m.Type {
	case MsgVote, MsgPreVote:
		n.handleVote(m)
		return nil
	}
	switch n.role {
	case Leader:
		n.stepLeader(m)
	case Candidate, PreCandidate:
		return n.stepCandidate(m)
	default:
		return n.stepFollower(m)
	}
	return nil
}

func (n *Node) checkMessage(m Message) error {
	if m.To != n.id {
		return fmt.Errorf("%w: %v addressed to node %d reached node %d", ErrInvalidMessage, m.Type, m.To, n.id)
	}
	// Any other node may send: a leader this node does not know as a member
	// yet (a node that is joining, or whose log lags behind a change) must
	// be heard, and a removed node's answers are ignored further on.
	if m.From == n.id || m.From == None {
		return fmt.Errorf("%w: %v from node %d", ErrUnknownPeer, m.Type, m.From)
	}
	if m.Type < MsgApp || m.Type > MsgTimeoutNow {
		return fmt.Errorf("%w: unknown type %d from node %d", ErrInvalidMessage, m.Type, m.From)
	}
	if m.Term == 0 {
		return fmt.Errorf("%w: %v from node %d has term 0", ErrInvalidMessage, m.Type, m.From)
	}
	switch m.Type {
	case MsgApp:
		// Entries follow the previous entry without a gap, in term order,
		// and none is of a later term than the sender's: a log built
		// otherwise breaks the log's invariants and NewNode refuses it.
		prevTerm := m.LogTerm
		for i, e := range m.Entries {
			if e.Index != m.Index+1+uint64(i) || e.Term < prevTerm || e.Term > m.Term {
				return fmt.Errorf("%w: %v from node %d (term %d, after index %d term %d) holds entry (index %d, term %d) out of order", ErrInvalidMessage, m.Type, m.From, m.Term, m.Index, m.LogTerm, e.Index, e.Term)
			}
			prevTerm = e.Term
			if e.Type == EntryConfChange {
				if _, _, err := DecodeConfChange(e.Data); err != nil {
					return fmt.Errorf("%w: %v from node %d holds conf change entry %d: %w", ErrInvalidMessage, m.Type, m.From, e.Index, err)
				}
			}
		}
	case MsgSnap:
		s := m.Snapshot.Meta
		if s.Index == 0 || s.Term == 0 || s.Term > m.Term || len(s.ConfState.Voters) == 0 {
			return fmt.Errorf("%w: snapshot (index %d, term %d) from node %d", ErrInvalidMessage, s.Index, s.Term, m.From)
		}
		// A snapshot's configuration need not hold this node: a learner, or
		// a node being removed, adopts it like any other.
		if err := validateConfState(s.ConfState); err != nil {
			return fmt.Errorf("%w: snapshot from node %d: %w", ErrInvalidMessage, m.From, err)
		}
	}
	return nil
}

// answerStale handles a message from an older term. Most are dropped; a
// stale leader is told the new term so it steps down, and a (pre-)candidate
// stuck on an old term learns the current one. The candidate needs that
// answer when membership changes: a voter whose log lags behind the change
// that added the candidate does not know it and never asks it for its
// vote, so the candidate would otherwise never learn that voter's term,
// and the two could campaign past each other for ever.
func (n *Node) answerStale(m Message) {
	switch m.Type {
	case MsgApp, MsgHeartbeat:
		if n.cfg.CheckQuorum || n.cfg.PreVote {
			n.send(Message{Type: MsgAppResp, To: m.From})
		}
	case MsgPreVote:
		n.send(Message{Type: MsgPreVoteResp, To: m.From, Reject: true})
	case MsgVote:
		n.send(Message{Type: MsgVoteResp, To: m.From, Reject: true})
	}
}

func (n *Node) stepFollower(m Message) error {
	switch m.Type {
	case MsgApp:
		n.electionElapsed = 0
		n.lead = m.From
		return n.handleAppend(m)
	case MsgHeartbeat:
		n.electionElapsed = 0
		n.lead = m.From
		n.handleHeartbeat(m)
	case MsgSnap:
		n.electionElapsed = 0
		n.lead = m.From
		n.handleSnapshot(m)
	case MsgTimeoutNow:
		n.hup(true)
	}
	return nil
}

func (n *Node) stepCandidate(m Message) error {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		// A leader exists in our term (§5.2): give up the campaign.
		n.becomeFollower(m.Term, m.From)
		return n.stepFollower(m)
	case MsgVoteResp, MsgPreVoteResp:
		n.handleVoteResp(m)
	}
	return nil
}

func (n *Node) stepLeader(m Message) {
	pr := n.prs[m.From]
	if pr == nil {
		// A node outside the configuration (removed, or an answer that
		// outlived its removal): nothing it says counts.
		return
	}
	pr.recentActive = true
	switch m.Type {
	case MsgAppResp:
		n.handleAppendResp(m, pr)
	case MsgHeartbeatResp:
		n.handleHeartbeatResp(m, pr)
	}
}

func (n *Node) tickLeader() {
	n.heartbeatElapsed++
	n.electionElapsed++
	if n.electionElapsed >= n.cfg.ElectionTick {
		n.electionElapsed = 0
		// quorumActive runs without CheckQuorum too: membership changes
		// read the activity it records (Node.reachable).
		if !n.quorumActive() && n.cfg.CheckQuorum {
			// §6.2 of the thesis: a leader cut off from a quorum steps
			// down, so clients go looking for the real leader.
			n.becomeFollower(n.term, None)
			return
		}
		// A transfer that did not finish in an election timeout has failed;
		// take proposals again.
		n.leadTransferee = None
	}
	// A leader that removed itself retries handing over; a joint
	// configuration left pending by a transfer is left now.
	n.maybeHandOff()
	if n.role != Leader {
		return
	}
	if n.conf.IsJoint() && n.leadTransferee == None {
		before := n.log.lastIndex()
		n.maybeLeaveJoint()
		if n.log.lastIndex() != before {
			n.bcastAppend()
		}
	}
	// In member order, not map order: what a node sends must follow from
	// its inputs alone, so that a simulated run replays from its seed.
	for _, id := range n.peers {
		if pr := n.prs[id]; pr.state == snapshotState {
			pr.snapshotElapsed++
			if pr.snapshotElapsed >= 2*n.cfg.ElectionTick {
				// The snapshot or its answer was lost; start over.
				pr.becomeProbe()
				n.sendAppend(id, false)
			}
		}
	}
	if n.heartbeatElapsed >= n.cfg.HeartbeatTick {
		n.heartbeatElapsed = 0
		n.bcastHeartbeat()
	}
}
