package raftlogic

// This file holds log replication (§5.3), commitment (§5.4.2) and snapshot
// transfer (§7).

// sendAppend sends the follower the entries it is missing, or a snapshot
// when they are compacted away. With sendIfEmpty it sends a MsgApp even when
// there is nothing new, to carry the commit index or probe the follower.
func (n *Node) sendAppend(to uint64, sendIfEmpty bool) {
	pr := n.prs[to]
	if pr.paused(n.cfg.MaxInflightMsgs) {
		return
	}
	prevIndex := pr.next - 1
	prevTerm, ok := n.log.term(prevIndex)
	if !ok {
		if !n.termDurable() {
			// This leader's messages wait behind its write (see
			// Ready.SplitMessages); a MsgSnap must not, since the driver
			// attaches the image when it sends, and may have replaced it
			// by then. It goes once the term is durable.
			return
		}
		n.sendSnapshot(to, pr)
		return
	}
	ents := n.log.slice(pr.next, n.log.lastIndex()+1, n.cfg.MaxEntriesPerMsg, n.cfg.MaxBytesPerMsg)
	if len(ents) == 0 && !sendIfEmpty {
		return
	}
	n.send(Message{Type: MsgApp, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: n.log.committed})
	pr.sent(prevIndex+uint64(len(ents)), len(ents))
}

// sendSnapshot sends the metadata of the snapshot the log starts after; the
// driver attaches the state machine image it describes.
func (n *Node) sendSnapshot(to uint64, pr *progress) {
	meta := n.log.snap
	pr.becomeSnapshot(meta.Index)
	n.send(Message{Type: MsgSnap, To: to, Snapshot: Snapshot{Meta: meta}})
}

// bcastAppend and bcastHeartbeat reach every member, learners included.
func (n *Node) bcastAppend() {
	for _, id := range n.peers {
		n.sendAppend(id, true)
	}
}

func (n *Node) bcastHeartbeat() {
	for _, id := range n.peers {
		n.sendHeartbeat(id)
	}
}

// sendHeartbeat carries the latest read round so a heartbeat also confirms
// leadership for waiting reads. Its commit is capped at what the follower is
// known to hold, since a heartbeat carries no consistency check.
func (n *Node) sendHeartbeat(to uint64) {
	commit := min(n.prs[to].match, n.log.committed)
	n.send(Message{Type: MsgHeartbeat, To: to, Commit: commit, Context: n.reads.seq})
}

// maybeCommit advances the commit index to the highest index a quorum of
// the configuration in force holds (a majority of each half while joint;
// learners never count), if that entry is of the current term: entries of
// earlier terms are committed only indirectly (§5.4.2, Figure 8).
func (n *Node) maybeCommit() bool {
	mci := n.conf.quorumIndex(func(id uint64) uint64 {
		if pr := n.prs[id]; pr != nil {
			return pr.match
		}
		return 0
	})
	if t, ok := n.log.term(mci); !ok || t != n.term {
		return false
	}
	if !n.log.commitTo(mci) {
		return false
	}
	if n.commitHook != nil {
		n.commitHook(mci)
	}
	n.serveReads()
	return true
}

// handleAppend is a follower's side of AppendEntries.
func (n *Node) handleAppend(m Message) error {
	if m.Index < n.log.committed {
		// Everything up to our commit index already matches the leader.
		n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.committed})
		return nil
	}
	lastNew, ok, err := n.log.maybeAppend(m.Index, m.LogTerm, m.Entries)
	if err != nil {
		return err
	}
	// An appended conf entry takes effect now; a truncated one is undone.
	n.syncConf()
	if ok {
		n.log.commitTo(min(m.Commit, lastNew))
		n.send(Message{Type: MsgAppResp, To: m.From, Index: lastNew})
		return nil
	}
	// Refuse, with a hint that lets the leader skip the conflicting term.
	hintIndex, hintTerm := n.log.findConflictByTerm(min(m.Index, n.log.lastIndex()), m.LogTerm)
	n.send(Message{Type: MsgAppResp, To: m.From, Index: m.Index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm})
	return nil
}

func (n *Node) handleHeartbeat(m Message) {
	n.log.commitTo(min(m.Commit, n.log.lastIndex()))
	n.send(Message{Type: MsgHeartbeatResp, To: m.From, Context: m.Context})
}

// handleSnapshot is a follower's side of InstallSnapshot.
func (n *Node) handleSnapshot(m Message) {
	s := m.Snapshot.Meta
	switch {
	case s.Index <= n.log.committed:
		// Old news: we hold all of it already.
	case n.log.matchTerm(s.Index, s.Term):
		// Our log holds the snapshot's last entry: by Log Matching it holds
		// everything before too, so keep the log and commit.
		n.log.commitTo(s.Index)
	default:
		n.log.restore(m.Snapshot)
		n.syncConf()
	}
	n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.committed})
}

// handleAppendResp is the leader's side of an AppendEntries answer.
func (n *Node) handleAppendResp(m Message, pr *progress) {
	if m.Reject {
		hint := m.RejectHint
		if m.LogTerm > 0 {
			hint, _ = n.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, hint) {
			if pr.state == replicateState {
				pr.becomeProbe()
			}
			n.sendAppend(m.From, true)
		}
		return
	}
	if !pr.maybeUpdate(m.Index) {
		pr.freeTo(m.Index)
		return
	}
	switch {
	case pr.state == probeState:
		pr.becomeReplicate()
	case pr.state == snapshotState && pr.match >= pr.pendingSnapshot:
		pr.becomeProbe()
		pr.becomeReplicate()
	case pr.state == replicateState:
		pr.freeTo(m.Index)
	}
	if n.maybeCommit() {
		n.commitAdvanced()
	} else {
		// Keep the pipe full.
		for n.sendAppendMore(m.From, pr) {
		}
	}
	if n.role == Leader && m.From == n.leadTransferee && pr.match == n.log.lastIndex() {
		n.sendTimeoutNow(m.From)
	}
}

// sendAppendMore sends one more MsgApp with new entries if the window allows,
// reporting whether it sent one.
func (n *Node) sendAppendMore(to uint64, pr *progress) bool {
	if pr.next > n.log.lastIndex() || pr.paused(n.cfg.MaxInflightMsgs) {
		return false
	}
	before := len(n.msgs)
	n.sendAppend(to, false)
	return len(n.msgs) > before && pr.state == replicateState
}

func (n *Node) handleHeartbeatResp(m Message, pr *progress) {
	n.reads.ack(m.From, m.Context)
	n.serveReads()
	if pr.state == snapshotState {
		return
	}
	pr.probeSent = false
	if pr.match < n.log.lastIndex() {
		if pr.state == replicateState && pr.paused(n.cfg.MaxInflightMsgs) {
			// An in-flight MsgApp may be lost; free a slot so the follower
			// is probed and a gap is found.
			pr.inflights = pr.inflights[1:]
		}
		n.sendAppend(m.From, true)
	}
}
