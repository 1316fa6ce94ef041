package raftlogic

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// campaignTransfer marks (in Message.Context) a MsgVote sent because the
// leader asked this node to take over, so voters skip their leader lease.
const campaignTransfer = 1

// Node is one Raft peer as a deterministic state machine. It is not safe for
// concurrent use: one goroutine (one actor) drives it.
type Node struct {
	cfg Config
	id  uint64
	// conf is the configuration in force (the log's, see raftLog.confs);
	// peers are its members other than this node, sorted; prevConf is the
	// configuration last reported in a Ready.
	conf     ConfState
	peers    []uint64
	prevConf ConfState

	term uint64
	vote uint64
	role Role
	lead uint64

	log *raftLog
	prs map[uint64]*progress
	// votes holds the answers to this node's current (pre-)campaign.
	votes map[uint64]bool

	electionElapsed  int
	heartbeatElapsed int
	// randomizedTimeout is this term's election timeout, drawn from
	// [ElectionTick, 2*ElectionTick) so that split votes resolve.
	randomizedTimeout int
	rng               *rand.Rand

	// leadTransferee is the node a leader is handing leadership to.
	leadTransferee uint64
	// wonWithOthers: this leader's campaign was won with another node's
	// vote, so its term and vote were durable before it led (termDurable).
	wonWithOthers bool

	reads readOnly

	msgs []Message
	// msgsCap is how many messages the last Ready carried: the next
	// Ready's slice starts that large instead of growing to it.
	msgsCap    int
	readStates []ReadState
	prevSoft   SoftState
	prevHard   HardState

	// commitHook, when set (by tests only), is called each time this node
	// as leader advances its commit index, with the new index, before
	// anything else happens: the simulation checks there that the entry
	// is on the disks of a quorum of the configuration in force.
	commitHook func(index uint64)
}

// NewNode starts a node from what it finds on stable storage. It starts as a
// follower; with no leader it campaigns after an election timeout, if it is
// a voter of the configuration in force: that of InitialState.Snapshot
// and the conf change entries in InitialState.Entries after it. A node
// with an empty configuration and no log (one that will join a running
// cluster) never campaigns; it takes the configuration from the log or
// snapshot its leader sends.
func NewNode(cfg Config, st InitialState) (*Node, error) {
	if err := cfg.validate(st); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:  cfg,
		id:   cfg.ID,
		log:  newRaftLog(st),
		term: st.HardState.Term,
		vote: st.HardState.Vote,
		rng:  rand.New(rand.NewPCG(cfg.Seed, cfg.ID)),
	}
	n.syncConf()
	n.prevConf = n.conf
	n.prevHard = n.hardState()
	n.becomeFollower(n.term, None)
	n.prevSoft = n.softState()
	return n, nil
}

// Tick advances the node's clock by one tick.
func (n *Node) Tick() {
	if n.role == Leader {
		n.tickLeader()
		return
	}
	n.electionElapsed++
	// A node that may not campaign lets its clock run on rather than
	// restart it: past the election timeout it no longer counts its last
	// leader as live, so it answers the vote requests of a leader it
	// does not know it must vote for (a learner promoted in the
	// candidate's log, not yet in its own).
	if n.promotable() && n.electionElapsed >= n.randomizedTimeout {
		n.electionElapsed = 0
		n.hup(false)
	}
}

// Propose appends commands to the log if this node is the leader and returns
// the index of the first one and the term. An entry at that index and term
// that is later applied is the command; if the entry applied at that index
// has another term, the command was lost in a leader change.
func (n *Node) Propose(data ...[]byte) (index, term uint64, err error) {
	if err := n.leaderOnly(true); err != nil {
		return 0, 0, err
	}
	first := n.log.lastIndex() + 1
	for i, d := range data {
		n.log.append(Entry{Index: first + uint64(i), Term: n.term, Type: EntryNormal, Data: d})
	}
	n.bcastAppend()
	return first, n.term, nil
}

// ReadIndex asks for a linearizable read. The answer comes as a ReadState
// carrying requestCtx in a later Ready, once leadership is confirmed by a
// quorum. Only the leader serves reads.
func (n *Node) ReadIndex(requestCtx []byte) error {
	if err := n.leaderOnly(false); err != nil {
		return err
	}
	n.reads.add(requestCtx)
	n.serveReads()
	return nil
}

// TransferLeadership hands leadership to node to: the leader stops taking
// proposals, brings to up to date and tells it to campaign at once. The
// transfer is abandoned after an election timeout. to must be a voter of
// the incoming configuration: a learner (or a voter being removed) is
// refused with ErrNotVoter, a non-member with ErrUnknownPeer.
func (n *Node) TransferLeadership(to uint64) error {
	if err := n.leaderOnly(false); err != nil {
		return err
	}
	switch {
	case !n.conf.isMember(to):
		return fmt.Errorf("%w: node %d", ErrUnknownPeer, to)
	case !slices.Contains(n.conf.Voters, to):
		return fmt.Errorf("%w: node %d is a learner or is being removed", ErrNotVoter, to)
	}
	if to == n.id || to == n.leadTransferee {
		return nil
	}
	n.leadTransferee = to
	n.electionElapsed = 0
	n.transferStep(to)
	return nil
}

// Compact discards the log up to and including index, which the state
// machine has applied and captured in a snapshot the driver keeps. Followers
// that need the discarded entries are sent that snapshot. It returns the
// snapshot's metadata, for the driver to persist.
//
// The metadata's ConfState is the configuration as of index, which differs
// from the one in force when a conf change entry after index is in the log.
// A node that knows no configuration as of index (it joined by receiving
// the log from index 1, and index comes before the first conf change entry
// it holds) is refused with ErrConfUnknown.
func (n *Node) Compact(index uint64) (SnapshotMeta, error) {
	if err := n.log.compact(index); err != nil {
		return SnapshotMeta{}, err
	}
	meta := n.log.snap
	meta.ConfState = cloneConf(meta.ConfState)
	return meta, nil
}

// ReportSnapshot tells a leader how sending a snapshot to a follower ended.
// On failure the leader probes the follower again (and so resends).
func (n *Node) ReportSnapshot(to uint64, ok bool) {
	pr := n.prs[to]
	if n.role != Leader || pr == nil || pr.state != snapshotState {
		return
	}
	if !ok {
		pr.pendingSnapshot = 0
	}
	pr.becomeProbe()
	// Wait for the follower's answer (or the next heartbeat) before
	// probing, as after any probe.
	pr.probeSent = true
}

func (n *Node) leaderOnly(proposal bool) error {
	if n.role != Leader {
		return &NotLeaderError{Leader: n.lead}
	}
	if proposal && n.leadTransferee != None {
		return &NotLeaderError{Leader: n.leadTransferee, Transferring: true}
	}
	return nil
}

// HasReady reports whether Ready would return anything to do.
func (n *Node) HasReady() bool {
	if n.softState() != n.prevSoft || (n.hardState() != n.prevHard) || !confEqual(n.conf, n.prevConf) {
		return true
	}
	l := n.log
	return l.pendingSnap != nil || len(l.unhanded()) > 0 || len(n.msgs) > 0 ||
		len(n.readStates) > 0 || len(l.applicable(1, 0)) > 0
}

// Ready returns what the driver must do now. The driver must call Advance
// with it before the next call to Ready; Tick, Step and the other inputs may
// be called in between.
func (n *Node) Ready() Ready {
	rd := Ready{
		Entries:          n.log.unhanded(),
		Messages:         n.msgs,
		CommittedEntries: n.log.applicable(n.cfg.MaxEntriesPerMsg, n.cfg.MaxBytesPerMsg),
		ReadStates:       n.readStates,
	}
	if s := n.softState(); s != n.prevSoft {
		rd.SoftState = &s
	}
	if h := n.hardState(); h != n.prevHard {
		rd.HardState = h
	}
	if !confEqual(n.conf, n.prevConf) {
		cs := cloneConf(n.conf)
		rd.ConfState = &cs
	}
	if n.log.pendingSnap != nil {
		rd.Snapshot = *n.log.pendingSnap
	}
	rd.holdMessages = n.role == Leader && !n.termDurable()
	if len(n.msgs) > 0 {
		n.msgsCap = len(n.msgs)
	}
	n.msgs = nil
	n.readStates = nil
	// Every heartbeat of the current read round leaves with this Ready.
	n.reads.sent = n.reads.seq
	return rd
}

// Advance tells the node that rd was handled: persisted, sent, installed,
// applied and its reads answered (see the Ready contract in the package
// documentation). rd must be the Ready last returned.
//
// With Config.AsyncStorageWrites, Advance means rd was handed out: its
// write may still be in flight, and only StableTo makes its entries
// durable. A Ready carrying a Snapshot is the exception: the driver calls
// Advance only once the snapshot, and the whole write of that Ready, is
// durable, so Advance marks it durable as in the plain contract.
func (n *Node) Advance(rd Ready) {
	l := n.log
	if rd.SoftState != nil {
		n.prevSoft = *rd.SoftState
	}
	if !rd.HardState.IsEmpty() {
		n.prevHard = rd.HardState
	}
	if rd.ConfState != nil {
		n.prevConf = normConf(*rd.ConfState)
	}
	if s := rd.Snapshot; !s.IsEmpty() {
		if l.pendingSnap != nil && l.pendingSnap.Meta.Index == s.Meta.Index {
			l.pendingSnap = nil
		}
		l.applied = max(l.applied, s.Meta.Index)
		// The driver wrote the snapshot after every write before it.
		l.inflight = nil
	}
	durable := !n.cfg.AsyncStorageWrites || !rd.Snapshot.IsEmpty()
	if k := len(rd.Entries); k > 0 {
		last := rd.Entries[k-1]
		if !durable {
			// Recorded even if already replaced: the write still lands.
			l.inflight = append(l.inflight, inflightWrite{first: rd.Entries[0].Index, last: last.Index, term: last.Term})
		}
		// A later truncation may have replaced these entries; then they are
		// not the log any more, and are handed out again.
		if l.matchTerm(last.Index, last.Term) {
			l.handed = max(l.handed, last.Index)
			if durable {
				l.stabled = max(l.stabled, last.Index)
			}
		}
	}
	if k := len(rd.CommittedEntries); k > 0 {
		l.applied = max(l.applied, rd.CommittedEntries[k-1].Index)
	}
	if durable {
		n.countSelf()
	}
}

// StableTo reports, with Config.AsyncStorageWrites, that the write of
// entries ending with entry (index, term), and every write handed out
// before it, is durable. A leader then counts its log up to index toward
// commit. The driver reports each write of entries once, in order, with
// its own last entry, and nothing for a write without entries; a driver
// that merges the writes of several Readies into one reports the merged
// write's last entry, which covers them all. A report that names no write
// in flight is ignored.
//
// A report for an entry the log no longer holds (a later truncation
// replaced it, or a snapshot covers it) makes nothing durable: the write
// that replaced it reports for itself. Nor does a report make durable what
// a write still in flight will overwrite on disk. When a suffix was
// replaced and then replaced back, two writes in flight may end with the
// same entry; a report naming it is taken for the older one, which is
// safe, and the next report makes up for the difference.
func (n *Node) StableTo(index, term uint64) {
	if n.log.stableTo(index, term) {
		n.countSelf()
	}
}

// countSelf counts a leader's durable log toward commit (Raft thesis
// 10.2.1: it may send entries before they are durable locally, but not
// count them) and tells the followers of a new commit index.
func (n *Node) countSelf() {
	if n.role == Leader && n.prs[n.id].maybeUpdate(n.log.stabled) && n.maybeCommit() {
		n.commitAdvanced()
	}
}

// Status is a copy of a node's state, for monitoring.
type Status struct {
	// ID is the node's id.
	ID uint64
	// Role and Lead are the node's part and the leader it knows of (None
	// if none).
	Role Role
	Lead uint64
	// Term and Vote are as in HardState.
	Term uint64
	Vote uint64
	// Commit is the highest index known committed, Applied the highest the
	// driver reported applied (through Advance), Stabled the highest it
	// reported durable (through Advance, or StableTo with
	// Config.AsyncStorageWrites).
	Commit  uint64
	Applied uint64
	Stabled uint64
	// FirstIdx and LastIndex bound the entries the log holds; FirstIdx is
	// Snapshot.Index+1, and the log is empty when LastIndex < FirstIdx.
	FirstIdx  uint64
	LastIndex uint64
	// Snapshot is the metadata of the snapshot the log starts after.
	Snapshot SnapshotMeta
	// Transferee is the node a leader is handing leadership to, or None.
	Transferee uint64
	// Conf is the configuration in force on this node: that of the last
	// conf change entry in its log, committed or not, or of its snapshot.
	Conf ConfState
	// Members lists every member of Conf by id, with its role and, on the
	// leader, how far its log matches the leader's (LastIndex - Match is
	// its lag).
	Members []MemberStatus
}

// MemberStatus is one member of a configuration as Status shows it.
type MemberStatus struct {
	// ID is the member's id.
	ID uint64
	// Voter is set for a voter of the (incoming) configuration, Outgoing
	// for a voter of the outgoing half of a joint configuration (a voter
	// kept through a joint change has both), Learner for a learner.
	Voter, Outgoing, Learner bool
	// Match is the highest index known to match the leader's log; it is
	// meaningful only in the leader's Status (elsewhere it is zero). For
	// the leader itself it is what it has made durable.
	Match uint64
}

// Term is the node's current term: Status().Term without the copies
// Status makes (of the configuration and every member), for drivers that
// need it on every message.
func (n *Node) Term() uint64 { return n.term }

// Status reports the node's current state.
func (n *Node) Status() Status {
	st := Status{
		ID: n.id, Role: n.role, Lead: n.lead, Term: n.term, Vote: n.vote,
		Commit: n.log.committed, Applied: n.log.applied, Stabled: n.log.stabled,
		FirstIdx: n.log.firstIndex(), LastIndex: n.log.lastIndex(), Snapshot: n.log.snap,
		Transferee: n.leadTransferee, Conf: cloneConf(n.conf),
	}
	st.Snapshot.ConfState = cloneConf(st.Snapshot.ConfState)
	for _, id := range n.conf.IDs() {
		m := MemberStatus{
			ID: id, Voter: slices.Contains(n.conf.Voters, id),
			Outgoing: slices.Contains(n.conf.VotersOutgoing, id), Learner: slices.Contains(n.conf.Learners, id),
		}
		if pr := n.prs[id]; n.role == Leader && pr != nil {
			m.Match = pr.match
		}
		st.Members = append(st.Members, m)
	}
	return st
}

func (n *Node) softState() SoftState { return SoftState{Lead: n.lead, Role: n.role} }

func (n *Node) hardState() HardState {
	return HardState{Term: n.term, Vote: n.vote, Commit: n.log.committed}
}

// send queues a message; From is always this node, and Term is this node's
// term unless the message type sets its own (votes and their answers).
func (n *Node) send(m Message) {
	m.From = n.id
	if m.Term == 0 {
		m.Term = n.term
	}
	if n.msgs == nil {
		n.msgs = make([]Message, 0, max(n.msgsCap, 1))
	}
	n.msgs = append(n.msgs, m)
}
