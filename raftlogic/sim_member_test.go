package raftlogic

import (
	"errors"
	"slices"
)

// The simulation's membership part. Three runs in four change the
// membership at random while every fault of the simulation goes on: a
// fresh, empty node added as a learner, a learner promoted, a voter or a
// learner removed, the leader removing itself, several voters changed at
// once (a joint configuration), and a lost voter replaced by a fresh node
// with a new id (remove and add in one change). Ids come from a pool and
// are never used twice.
//
// The checker knows configurations independently of the nodes' own
// bookkeeping: it decodes the conf change entries of a node's log (or the
// entries every node applied) itself, and checks after every step, and at
// every commit of a leader:
//   - at most one leader per term, across all configurations, and each
//     leader elected by a majority of each half of its configuration (the
//     durable votes only voters gave: a learner's vote never counts);
//   - every entry a leader commits is on the disks of a majority of each
//     half of the configuration in force in its log at that moment (a
//     learner's acknowledgement never counts), and every index any node
//     takes as committed was committed so by a leader, with the same term;
//   - a leader never holds two uncommitted conf change entries (one change
//     in flight);
//   - snapshots (sent or compacted) carry the configuration as of their
//     index;
//   - after healing: a leader, a configuration that is not joint, and
//     every acknowledged proposal applied on every member of the latest
//     committed configuration.
//
// A removed node stops for good once its removal commits (as its operator
// would stop it), at once or, in half the cases, at heal; in runs with
// PreVote or CheckQuorum it keeps running through the liveness phase
// instead, which then shows it does not disrupt the cluster.

// simSpareIDs is how many ids beyond the starting cluster a run may add.
const simSpareIDs = 6

// confFromLog is the configuration in force in a node's log: its
// snapshot's, changed by every conf change entry up to index upto, each
// decoded here. It is how the checker knows a node's configuration
// without trusting the node's own bookkeeping.
func (s *sim) confFromLog(sn *simNode, upto uint64) ConfState {
	l := sn.node.log
	cs := normConf(l.snap.ConfState)
	for _, e := range l.ents {
		if e.Index > upto {
			break
		}
		if e.Type != EntryConfChange {
			continue
		}
		_, c, err := DecodeConfChange(e.Data)
		if err != nil {
			s.failf("node %d holds conf change entry %d that does not decode: %v", sn.id, e.Index, err)
		}
		cs = normConf(c)
	}
	return cs
}

// confAsOf is the configuration as of index i by the conf change entries
// applied anywhere (the starting one before the first).
func (s *sim) confAsOf(i uint64) ConfState {
	best := uint64(0)
	for idx := range s.confs {
		if idx <= i && idx >= best {
			best = idx
		}
	}
	return s.confs[best]
}

// quorumHolds reports whether a majority of every half of cs has entry
// (index, term) on disk (or under its snapshot).
func (s *sim) quorumHolds(cs ConfState, index, term uint64) bool {
	return cs.hasQuorum(func(id uint64) bool {
		d := &s.nodes[id-1].disk
		return d.snap.Meta.Index >= index || d.holds(Entry{Index: index, Term: term})
	})
}

// checkLeaderCommit runs inside the leader the moment it commits index: a
// majority of each half of the configuration in force in its log holds
// the entry durably. It records the term of every index newly committed.
func (s *sim) checkLeaderCommit(sn *simNode, index uint64) {
	l := sn.node.log
	t, _ := l.term(index)
	cs := s.confFromLog(sn, l.lastIndex())
	if !s.quorumHolds(cs, index, t) {
		s.failf("Durable Commit: leader %d (term %d) committed index %d (term %d), which no majority of each half of its configuration %+v holds on disk", sn.id, sn.node.term, index, t, cs)
	}
	s.maxCommit = max(s.maxCommit, index)
	for i := index; i > l.snap.Index; i-- {
		ti, _ := l.term(i)
		if old, ok := s.commitTerms[i]; ok {
			if old != ti {
				s.failf("State Machine Safety: leader %d committed index %d with term %d, an earlier leader with term %d", sn.id, i, ti, old)
			}
			break
		}
		s.commitTerms[i] = ti
	}
}

// checkCommitted: an index a node takes as committed was committed by a
// leader, with the same entry.
func (s *sim) checkCommitted(sn *simNode) {
	l := sn.node.log
	c := l.committed
	if c <= l.snap.Index {
		return // under a snapshot: checked when its leader committed it
	}
	t, _ := l.term(c)
	if want, ok := s.commitTerms[c]; !ok || want != t {
		s.failf("node %d (%v, term %d) takes index %d (term %d) as committed, which no leader committed (recorded term %d, %v)", sn.id, sn.node.role, sn.node.term, c, t, want, ok)
	}
}

// checkElected: a new leader holds the durable votes of a majority of
// each half of the configuration in its log. Only voters' votes count.
func (s *sim) checkElected(sn *simNode) {
	term := sn.node.term
	cs := s.confFromLog(sn, sn.node.log.lastIndex())
	if !cs.isVoter(sn.id) && !s.confFromLog(sn, sn.node.log.committed).isVoter(sn.id) {
		s.failf("node %d leads term %d but is not a voter of its configuration %+v, nor of the committed one", sn.id, term, cs)
	}
	if !cs.hasQuorum(func(id uint64) bool { return id == sn.id || s.votes[id][term] == sn.id }) {
		var got []uint64
		for id, v := range s.votes {
			if v[term] == sn.id {
				got = append(got, id)
			}
		}
		slices.Sort(got)
		s.failf("Election Safety: node %d leads term %d with the votes of %v, no majority of each half of %+v", sn.id, term, got, cs)
	}
}

// checkOneChangeInFlight: a leader's log never holds more than one conf
// change entry that no leader has committed. (Its own commit index may lag
// behind: a restarted node learns it from the next leader.)
func (s *sim) checkOneChangeInFlight(sn *simNode) {
	l := sn.node.log
	k := 0
	for i := max(s.maxCommit, l.snap.Index) + 1; i <= l.lastIndex(); i++ {
		if l.ents[i-l.snap.Index-1].Type == EntryConfChange {
			k++
		}
	}
	if k > 1 {
		s.failf("leader %d holds %d conf change entries after index %d, the highest any leader committed", sn.id, k, s.maxCommit)
	}
}

// applyConf follows a conf change entry applied by sn: it returns the
// configuration, records it as the latest committed one if it is, and
// stops the nodes it removed.
func (s *sim) applyConf(sn *simNode, e Entry) ConfState {
	_, cs, err := DecodeConfChange(e.Data)
	if err != nil {
		s.failf("node %d applies conf change entry %d that does not decode: %v", sn.id, e.Index, err)
	}
	cs = normConf(cs)
	if old, ok := s.confs[e.Index]; ok && !confEqual(old, cs) {
		s.failf("conf change entry %d applied as %+v and as %+v", e.Index, old, cs)
	}
	s.confs[e.Index] = cs
	if e.Index <= s.confIndex {
		return cs
	}
	if s.conf.IsJoint() && !cs.IsJoint() {
		s.stats.leftJoint++
	}
	s.conf, s.confIndex = cs, e.Index
	s.tracef("configuration %+v committed at %d", cs, e.Index)
	for _, id := range cs.IDs() {
		s.nodes[id-1].member = true
	}
	for _, o := range s.nodes {
		if o.member && !o.retired && !cs.isMember(o.id) {
			s.removed(o)
		}
	}
	return cs
}

// removed handles a node whose removal committed: it is stopped for good,
// now or at heal; in a run with PreVote or CheckQuorum it may run on
// through the liveness phase, where it must not disturb the cluster.
func (s *sim) removed(sn *simNode) {
	switch {
	case !s.healing && s.r.IntN(2) == 0:
		return // stopped at heal, or kept
	case s.healing && (s.p.preVote || s.p.checkQuorum):
		if !sn.keptRunning {
			s.stats.removedRunning++
			sn.keptRunning = true
		}
		return
	}
	// It stops at the end of the step (retireNodes), not in the middle of
	// another node's Ready.
	sn.retired = true
}

// retireNodes stops the nodes marked retired that still run.
func (s *sim) retireNodes() {
	for _, sn := range s.nodes {
		if sn.retired && sn.node != nil {
			s.tracef("node %d retires", sn.id)
			s.stats.retired++
			sn.node = nil
			sn.writes = nil
			sn.reports = nil
		}
	}
}

// membershipStep asks the leader for a random membership change.
func (s *sim) membershipStep() {
	var ld *simNode
	for _, sn := range s.alive() {
		if sn.node.role == Leader && (ld == nil || sn.node.term > ld.node.term) {
			ld = sn
		}
	}
	if ld == nil {
		return
	}
	cs := ld.node.Status().Conf
	pick := func(ids []uint64) uint64 {
		if len(ids) == 0 {
			return None
		}
		return ids[s.r.IntN(len(ids))]
	}
	var fresh *simNode
	freshID := func() uint64 {
		for _, sn := range s.nodes {
			if !sn.joined {
				fresh = sn
				return sn.id
			}
		}
		return None
	}
	var cc ConfChange
	var kind *int
	var lost uint64
	switch k := s.r.IntN(12); {
	case k < 3: // add a fresh learner
		if len(cs.Learners) < 3 {
			if id := freshID(); id != None {
				cc.Changes = []ConfChangeSingle{{ConfChangeAddLearner, id}}
				kind = &s.stats.learnersAdded
			}
		}
	case k < 6: // promote a learner
		if id := pick(cs.Learners); id != None && len(cs.Voters) < 7 {
			cc.Changes = []ConfChangeSingle{{ConfChangeAddVoter, id}}
			kind = &s.stats.promotions
		}
	case k < 8: // remove a voter (perhaps the leader) or a learner
		ids := cs.Voters
		if s.r.IntN(3) == 0 {
			ids = cs.Learners
		}
		if id := pick(ids); id != None && (len(cs.Voters) > 2 || !slices.Contains(cs.Voters, id)) {
			cc.Changes = []ConfChangeSingle{{ConfChangeRemoveNode, id}}
			kind = &s.stats.removals
			if id == ld.id {
				kind = &s.stats.leaderRemovals
			}
		}
	case k < 10: // several voters at once: a joint change
		var ch []ConfChangeSingle
		learners := slices.Clone(cs.Learners)
		s.r.Shuffle(len(learners), func(i, j int) { learners[i], learners[j] = learners[j], learners[i] })
		for _, id := range learners[:min(len(learners), s.r.IntN(3))] {
			ch = append(ch, ConfChangeSingle{ConfChangeAddVoter, id})
		}
		voters := slices.Clone(cs.Voters)
		s.r.Shuffle(len(voters), func(i, j int) { voters[i], voters[j] = voters[j], voters[i] })
		for _, id := range voters[:min(len(voters)-1, s.r.IntN(3))] {
			ch = append(ch, ConfChangeSingle{ConfChangeRemoveNode, id})
		}
		if len(ch) >= 2 {
			cc.Changes = ch
			kind = &s.stats.joints
		}
	default: // replace a lost voter by a fresh node with a new id
		var down []uint64
		for _, id := range cs.Voters {
			if sn := s.nodes[id-1]; sn.node == nil && !sn.retired && len(cs.Voters) > 2 {
				down = append(down, id)
			}
		}
		if lost = pick(down); lost != None {
			if id := freshID(); id != None {
				cc.Changes = []ConfChangeSingle{{ConfChangeRemoveNode, lost}, {ConfChangeAddLearner, id}}
				kind = &s.stats.replaces
			}
		}
	}
	if kind == nil {
		return
	}
	if fresh != nil {
		// The new node runs, empty, before it is added.
		fresh.joined = true
		s.start(fresh)
	}
	idx, _, err := ld.node.ProposeConfChange(cc)
	switch {
	case err == nil:
		s.tracef("leader %d proposes %v at %d", ld.id, cc.Changes, idx)
		s.stats.confChanges++
		*kind++
		if lost != None {
			s.nodes[lost-1].lost = true
		}
	case errors.Is(err, ErrConfChangeInProgress), errors.Is(err, ErrTransferInProgress),
		errors.Is(err, ErrLearnerBehind), errors.Is(err, ErrWouldLoseQuorum), errors.Is(err, ErrLastVoter):
		s.tracef("leader %d refuses %v: %v", ld.id, cc.Changes, err)
	default:
		s.failf("leader %d refuses %v: %v", ld.id, cc.Changes, err)
	}
	s.handleReady(ld, true)
}
