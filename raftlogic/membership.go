package raftlogic

import (
	"fmt"
	"slices"
)

// This file holds a node's side of membership change (Raft thesis chapter
// 4): proposing a change, adopting the configuration its log holds,
// leaving a joint configuration, and a leader handing over when it has
// removed itself.

// ProposeConfChange appends a membership change to the log if this node is
// the leader, and returns its index and term as Propose does. The change
// takes effect on every node as soon as the node appends the entry (Raft
// thesis 4.1), on the leader at once.
//
// It is validated first, and refused with an error that changes nothing:
//   - *NotLeaderError (ErrNotLeader, or ErrTransferInProgress during a
//     leadership transfer) on a node that is not the leader;
//   - ErrInvalidConfChange for no changes, an unknown type, node 0, a node
//     named twice, or AddVoter of a node that is not a learner;
//   - ErrConfChangeInProgress while an earlier change is not committed,
//     while the configuration is joint, or before the leader has committed
//     an entry of its own term;
//   - ErrAlreadyMember for AddLearner (or AddVoter) of a member that
//     already has that role, ErrUnknownPeer for promoting or removing a
//     non-member;
//   - ErrLastVoter when no voter would be left;
//   - ErrLearnerBehind for promoting a learner whose match index is more
//     than Config.MaxLearnerLag below the leader's last index;
//   - ErrWouldLoseQuorum when the voters the leader heard from within the
//     last one to two election timeouts (itself included, if it stays a
//     voter) would not be a majority of the resulting configuration (of
//     each half, if joint).
//
// A change that alters the voters by more than one node (two promotions, a
// promotion and a removal, ...) enters a joint configuration: its entry's
// ConfState has the old voters as VotersOutgoing. Once that entry commits,
// the leader appends the entry that leaves it (a ConfChange with no
// Changes) by itself. Changes of one voter or of learners only take effect
// in one step.
func (n *Node) ProposeConfChange(cc ConfChange) (index, term uint64, err error) {
	if err := n.leaderOnly(true); err != nil {
		return 0, 0, err
	}
	if len(cc.Changes) == 0 {
		return 0, 0, fmt.Errorf("%w: no changes (the leader leaves a joint configuration by itself)", ErrInvalidConfChange)
	}
	if err := checkChanges(cc.Changes); err != nil {
		return 0, 0, err
	}
	if err := n.confChangeAllowed(); err != nil {
		return 0, 0, err
	}
	next, err := applyChanges(n.conf, cc.Changes)
	if err != nil {
		return 0, 0, err
	}
	last := n.log.lastIndex()
	for _, c := range cc.Changes {
		if c.Type != ConfChangeAddVoter {
			continue
		}
		if m := n.prs[c.NodeID].match; m+uint64(n.cfg.MaxLearnerLag) < last {
			return 0, 0, fmt.Errorf("%w: node %d matches up to %d, the leader's log ends at %d (allowed lag %d)", ErrLearnerBehind, c.NodeID, m, last, n.cfg.MaxLearnerLag)
		}
	}
	if !next.hasQuorum(n.reachable) {
		return 0, 0, fmt.Errorf("%w: the configuration %+v would not have a quorum of recently active voters", ErrWouldLoseQuorum, next)
	}
	index = n.appendConf(cc, next)
	return index, n.term, nil
}

// confChangeAllowed refuses a change while another may be in flight. The
// leader must also have committed an entry of its own term: otherwise an
// uncommitted change of an earlier leader, which this leader's log does
// not hold, could still commit, and this change and that one together
// would differ from the committed configuration by two voters.
func (n *Node) confChangeAllowed() error {
	if t, _ := n.log.term(n.log.committed); t != n.term {
		return fmt.Errorf("%w: the leader has not yet committed an entry of its term", ErrConfChangeInProgress)
	}
	if i := n.log.lastConfIndex(); i > n.log.committed {
		return fmt.Errorf("%w: the change at index %d is not committed (commit index %d)", ErrConfChangeInProgress, i, n.log.committed)
	}
	if n.conf.IsJoint() {
		return fmt.Errorf("%w: the joint configuration %+v is not left yet", ErrConfChangeInProgress, n.conf)
	}
	return nil
}

// reachable reports whether the leader counts id as up: itself, or a
// follower it heard from in this or the previous election timeout.
func (n *Node) reachable(id uint64) bool {
	if id == n.id {
		return true
	}
	pr := n.prs[id]
	return pr != nil && (pr.recentActive || pr.wasActive)
}

// appendConf appends a conf change entry resulting in cs, adopts cs and
// sends the entry. It returns the entry's index.
func (n *Node) appendConf(cc ConfChange, cs ConfState) uint64 {
	index := n.log.lastIndex() + 1
	n.log.append(Entry{Index: index, Term: n.term, Type: EntryConfChange, Data: encodeConfChange(cc, cs)})
	n.syncConf()
	n.bcastAppend()
	return index
}

// syncConf adopts the configuration of the log, which changes when a conf
// change entry is appended or truncated, or a snapshot installed. A leader
// starts tracking new members, stops tracking removed ones, and counts the
// new configuration toward commit at once.
func (n *Node) syncConf() {
	cs := n.log.confState()
	if confEqual(cs, n.conf) && n.peers != nil {
		return
	}
	n.conf = cs
	n.peers = slices.DeleteFunc(cs.IDs(), func(id uint64) bool { return id == n.id })
	if n.peers == nil {
		n.peers = []uint64{} // marks the configuration as adopted
	}
	if n.role != Leader {
		return
	}
	last := n.log.lastIndex()
	for _, id := range n.peers {
		if n.prs[id] == nil {
			n.prs[id] = &progress{next: last + 1}
		}
	}
	for id := range n.prs {
		if id != n.id && !cs.isMember(id) {
			delete(n.prs, id)
		}
	}
	if n.leadTransferee != None && !slices.Contains(cs.Voters, n.leadTransferee) {
		n.leadTransferee = None
	}
	if n.maybeCommit() {
		n.commitAdvanced()
	}
}

// commitAdvanced follows a leader's commit index moving: it leaves a
// joint configuration whose entry committed, tells the followers, and
// hands leadership over if its own removal committed.
func (n *Node) commitAdvanced() {
	n.maybeLeaveJoint()
	n.bcastAppend()
	n.maybeHandOff()
}

// maybeLeaveJoint appends the entry that leaves a joint configuration once
// the entry that entered it is committed (Raft thesis 4.3), unless a
// leadership transfer is under way (the next leader will).
func (n *Node) maybeLeaveJoint() {
	if n.role != Leader || !n.conf.IsJoint() || n.leadTransferee != None || n.confChangeAllowedIgnoringJoint() != nil {
		return
	}
	n.log.append(Entry{Index: n.log.lastIndex() + 1, Term: n.term, Type: EntryConfChange, Data: encodeConfChange(ConfChange{}, leaveJoint(n.conf))})
	n.syncConf()
}

// confChangeAllowedIgnoringJoint is confChangeAllowed without the joint
// rule: leaving a joint configuration is the one change allowed in it.
func (n *Node) confChangeAllowedIgnoringJoint() error {
	if t, _ := n.log.term(n.log.committed); t != n.term {
		return ErrConfChangeInProgress
	}
	if n.log.lastConfIndex() > n.log.committed {
		return ErrConfChangeInProgress
	}
	return nil
}

// maybeHandOff runs on a leader that is not a voter of its configuration:
// it removed itself. It keeps leading, without counting itself, until the
// removal commits, then hands leadership to the most caught-up voter and
// steps down (sendTimeoutNow).
func (n *Node) maybeHandOff() {
	if n.role != Leader || n.conf.isVoter(n.id) || n.log.lastConfIndex() > n.log.committed {
		return
	}
	var to uint64
	for _, id := range n.conf.Voters {
		if to == None || n.prs[id].match > n.prs[to].match {
			to = id
		}
	}
	if to == None {
		return
	}
	if n.leadTransferee != to {
		n.leadTransferee = to
		n.electionElapsed = 0
	}
	n.transferStep(to)
}

// transferStep moves a transfer to `to` on: TimeoutNow once it holds the
// whole log, else the entries it misses first (the TimeoutNow follows when
// it acknowledges them).
func (n *Node) transferStep(to uint64) {
	if n.prs[to].match == n.log.lastIndex() {
		n.sendTimeoutNow(to)
	} else {
		n.sendAppend(to, true)
	}
}

// sendTimeoutNow tells to to campaign at once. A leader that is no longer
// a voter steps down with it: it has handed over, and it must not keep a
// cluster that no longer counts it waiting on it.
func (n *Node) sendTimeoutNow(to uint64) {
	n.send(Message{Type: MsgTimeoutNow, To: to})
	if !n.conf.isVoter(n.id) {
		n.becomeFollower(n.term, None)
	}
}

// termDurable reports whether this leader's term and vote are known
// durable: it won with another node's vote (which answered a request sent
// only once the vote was durable), or an entry of its term is durable
// (writes complete in order, and the one that made the term durable came
// first).
func (n *Node) termDurable() bool {
	if n.wonWithOthers {
		return true
	}
	t, _ := n.log.term(n.log.stabled)
	return t == n.term
}

// promotable reports whether this node may campaign: a voter of the
// configuration in force (of either half), or a node whose removal is in
// its log but not known committed. The latter may still be needed: when a
// leader in the outgoing half of a joint configuration appends the entry
// that leaves it and removes it, and crashes before the others have it,
// they stay joint and need its vote, which it refuses them (its log is
// longer); only it can win, by the votes of its newer configuration. (The
// simulation found that deadlock.) A node that knows its removal
// committed, a learner, and a node not yet added never campaign.
func (n *Node) promotable() bool {
	if n.conf.isVoter(n.id) {
		return true
	}
	l := n.log
	return l.lastConfIndex() > l.committed && l.confAt(l.committed).isVoter(n.id)
}

func cloneConf(cs ConfState) ConfState {
	return ConfState{Voters: slices.Clone(cs.Voters), VotersOutgoing: slices.Clone(cs.VotersOutgoing), Learners: slices.Clone(cs.Learners)}
}
