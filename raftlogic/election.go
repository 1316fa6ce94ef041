package raftlogic

// This file holds elections (§5.2, §5.4.1) with the PreVote and CheckQuorum
// extensions (Raft thesis 9.6) and leadership transfer (thesis 3.10).

func (n *Node) resetRandomizedTimeout() {
	n.randomizedTimeout = n.cfg.ElectionTick + n.rng.IntN(n.cfg.ElectionTick)
}

// reset clears per-term state when the node changes role or term.
func (n *Node) reset(term uint64) {
	if n.term != term {
		n.term = term
		n.vote = None
	}
	n.lead = None
	n.wonWithOthers = false
	n.electionElapsed = 0
	n.heartbeatElapsed = 0
	n.resetRandomizedTimeout()
	n.leadTransferee = None
	n.votes = map[uint64]bool{}
}

// becomeFollower is the only way out of leadership, so it refuses the reads
// a leader had waiting, naming the new leader when it is known.
func (n *Node) becomeFollower(term, lead uint64) {
	n.reset(term)
	n.role = Follower
	n.lead = lead
	n.prs = nil
	n.failReads()
}

func (n *Node) becomePreCandidate() {
	// A pre-candidate keeps its term and vote: asking costs nothing.
	n.reset(n.term)
	n.role = PreCandidate
	n.prs = nil
}

func (n *Node) becomeCandidate() {
	n.reset(n.term + 1)
	n.vote = n.id
	n.role = Candidate
	n.prs = nil
}

func (n *Node) becomeLeader() {
	n.reset(n.term)
	n.role = Leader
	n.lead = n.id
	n.prs = make(map[uint64]*progress, len(n.peers)+1)
	last := n.log.lastIndex()
	// The leader tracks itself even when it is not a voter (it removed
	// itself and leads until that commits): its match is what it has made
	// durable, and counts only if the configuration makes it a voter.
	n.prs[n.id] = &progress{next: last + 1, recentActive: true}
	for _, id := range n.peers {
		n.prs[id] = &progress{next: last + 1, recentActive: true}
	}
	// The leader's own match is what it has made durable (see Advance).
	n.prs[n.id].match = n.log.stabled
	n.prs[n.id].state = replicateState
	// A no-op in the new term lets the leader commit (§5.4.2, the Figure 8
	// rule: only entries of the current term are committed by counting) and
	// so learn the commit index reads need (§6.4).
	n.log.append(Entry{Index: last + 1, Term: n.term, Type: EntryNormal})
	n.bcastAppend()
}

// hup starts a campaign: a pre-vote first when PreVote is on, unless the
// leader asked this node to take over.
func (n *Node) hup(transfer bool) {
	// A learner, or a node removed or not yet added, never campaigns: its
	// vote would not count, and its campaign would only disturb voters.
	if n.role == Leader || !n.promotable() {
		return
	}
	if n.cfg.PreVote && !transfer {
		n.becomePreCandidate()
		n.campaign(MsgPreVote, n.term+1, false)
		return
	}
	n.becomeCandidate()
	n.campaign(MsgVote, n.term, transfer)
}

func (n *Node) campaign(t MessageType, term uint64, transfer bool) {
	if n.poll(n.id, true) {
		n.winCampaign(t)
		return
	}
	var ctx uint64
	if transfer {
		ctx = campaignTransfer
	}
	for _, id := range n.peers {
		if n.conf.isVoter(id) {
			n.send(Message{Type: t, To: id, Term: term, Index: n.log.lastIndex(), LogTerm: n.log.lastTerm(), Context: ctx})
		}
	}
}

// poll records a vote and reports whether the campaign is won: by a
// majority of each half of the configuration, counting voters only.
func (n *Node) poll(id uint64, granted bool) (won bool) {
	if _, seen := n.votes[id]; !seen {
		n.votes[id] = granted
	}
	return n.conf.tally(n.votes) == voteWon
}

// lost reports whether the campaign can no longer win: a half of the
// configuration has refused it by a majority.
func (n *Node) lost() bool { return n.conf.tally(n.votes) == voteLost }

func (n *Node) winCampaign(t MessageType) {
	if t == MsgPreVote {
		n.becomeCandidate()
		n.campaign(MsgVote, n.term, false)
		return
	}
	others := false
	for id, granted := range n.votes {
		others = others || granted && id != n.id
	}
	n.becomeLeader()
	n.wonWithOthers = others
}

// inLease reports whether this node heard from a live leader within the
// minimum election timeout. With CheckQuorum such a node ignores vote
// requests: a leader that can reach a quorum is not disturbed.
func (n *Node) inLease() bool {
	return n.cfg.CheckQuorum && n.lead != None && n.electionElapsed < n.cfg.ElectionTick
}

// handleVote answers MsgVote and MsgPreVote whose term is not stale.
func (n *Node) handleVote(m Message) {
	resp := MsgVoteResp
	if m.Type == MsgPreVote {
		resp = MsgPreVoteResp
	}
	// §5.2: at most one vote per term, first come first served. A node that
	// knows a leader in this term votes for nobody else. A pre-vote for a
	// later term promises nothing, so it is given freely.
	canVote := n.vote == m.From ||
		(n.vote == None && n.lead == None) ||
		(m.Type == MsgPreVote && m.Term > n.term)
	if canVote && n.log.isUpToDate(m.Index, m.LogTerm) {
		n.send(Message{Type: resp, To: m.From, Term: m.Term})
		if m.Type == MsgVote {
			n.electionElapsed = 0
			n.vote = m.From
		}
		return
	}
	n.send(Message{Type: resp, To: m.From, Term: n.term, Reject: true})
}

// handleVoteResp counts an answer to this node's campaign.
func (n *Node) handleVoteResp(m Message) {
	want := MsgVoteResp
	if n.role == PreCandidate {
		want = MsgPreVoteResp
	}
	if m.Type != want {
		return
	}
	if n.poll(m.From, !m.Reject) {
		campaign := MsgVote
		if n.role == PreCandidate {
			campaign = MsgPreVote
		}
		n.winCampaign(campaign)
		return
	}
	if n.lost() {
		n.becomeFollower(n.term, None)
	}
}

// quorumActive reports whether a quorum of voters (of each half; self
// included if a voter) was heard from since the last check, and starts the
// next period. Learners do not count.
func (n *Node) quorumActive() bool {
	active := n.conf.hasQuorum(func(id uint64) bool {
		pr := n.prs[id]
		return id == n.id || pr != nil && pr.recentActive
	})
	for _, pr := range n.prs {
		pr.wasActive = pr.recentActive
		pr.recentActive = false
	}
	return active
}
