package raftlogic

// This file holds linearizable reads by ReadIndex (Raft thesis 6.4): a read
// is answered with the leader's commit index once the leader has committed
// an entry of its own term and a quorum has confirmed, after the read
// arrived, that it is still the leader. Reads that arrive together share one
// confirmation round.
//
// A round's heartbeats vouch for every read that arrived before they left
// the node, which is when a Ready hands them out: reads arriving before that
// join the round, reads arriving after start the next one at once. A read
// therefore waits for one round trip from the next Ready, never for a round
// already in flight to finish first (which would be two).

type pendingRead struct {
	ctx   []byte
	index uint64
	// round is the confirmation round that must complete first.
	round uint64
}

type readOnly struct {
	// seq is the latest confirmation round started. It only grows, so an
	// answer to an old round never confirms a newer one. sent is the latest
	// round whose heartbeats a Ready has handed out (seq or seq-1).
	seq, sent uint64
	// acked is the latest round each peer answered in this term.
	acked map[uint64]uint64
	// waiting reads arrived before the leader committed in its term, so
	// their index is not known yet.
	waiting [][]byte
	pending []pendingRead
}

func (r *readOnly) add(ctx []byte) { r.waiting = append(r.waiting, ctx) }

func (r *readOnly) ack(from, round uint64) {
	if r.acked == nil {
		r.acked = map[uint64]uint64{}
	}
	if round <= r.seq && round > r.acked[from] {
		r.acked[from] = round
	}
}

// serveReads moves reads forward: assigns an index once the leader has
// committed in its term, answers reads whose round a quorum confirmed, and
// starts a round for reads that have none in flight.
func (n *Node) serveReads() {
	if n.role != Leader {
		return
	}
	r := &n.reads
	if len(r.waiting) > 0 {
		if t, _ := n.log.term(n.log.committed); t == n.term {
			round := r.seq + 1
			if r.seq > r.sent {
				// Round seq's heartbeats have not left yet.
				round = r.seq
			}
			for _, ctx := range r.waiting {
				r.pending = append(r.pending, pendingRead{ctx: ctx, index: n.log.committed, round: round})
			}
			r.waiting = nil
		}
	}
	for {
		confirmed := n.confirmedRound()
		i := 0
		for i < len(r.pending) && r.pending[i].round <= confirmed {
			p := r.pending[i]
			n.readStates = append(n.readStates, ReadState{Index: p.index, RequestCtx: p.ctx})
			i++
		}
		r.pending = r.pending[i:]
		if len(r.pending) == 0 || r.pending[len(r.pending)-1].round <= r.seq {
			return
		}
		r.seq++
		n.bcastHeartbeat()
	}
}

// confirmedRound is the latest round a quorum answered: a majority of each
// half of the configuration, this leader included if it is a voter.
// Learners' answers do not count.
func (n *Node) confirmedRound() uint64 {
	return n.conf.quorumIndex(func(id uint64) uint64 {
		if id == n.id {
			return n.reads.seq
		}
		return n.reads.acked[id]
	})
}

// failReads refuses every waiting read: this node is no longer (or not yet)
// the leader that could confirm them.
func (n *Node) failReads() {
	r := &n.reads
	for _, ctx := range r.waiting {
		n.readStates = append(n.readStates, ReadState{RequestCtx: ctx, Err: &NotLeaderError{Leader: n.lead}})
	}
	for _, p := range r.pending {
		n.readStates = append(n.readStates, ReadState{RequestCtx: p.ctx, Err: &NotLeaderError{Leader: n.lead}})
	}
	r.waiting, r.pending, r.acked = nil, nil, nil
}
