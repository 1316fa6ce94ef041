package actors

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// This file holds leadership transfer as users ask for it: a TransferRequest
// reaches the leader (the router forwards it like a write), which starts
// raftlogic's transfer (Raft thesis 3.10) and answers only once the outcome
// is known to it:
//
//   - OK: this node saw the target lead, in a term after the one it led in.
//   - TRANSFER_FAILED: raftlogic abandoned the transfer (this node saw no
//     sign of the target winning within an election timeout, and leads on
//     as far as it knows), another node took over instead, this node heard
//     of no new leader within transferWaitTimeouts election timeouts, or it
//     stopped. Only when another node took over is the outcome certain:
//     otherwise the target may have won unseen (this node cut off from its
//     answers, say).
//
// Refused at once, changing nothing: NOT_LEADER (the router follows the
// hint), TRANSFER_TARGET (not another voter), TRANSFER_BUSY (a transfer to
// another node is under way; a request for the same node waits for that
// one's outcome instead).

// transferWaitTimeouts bounds, in election timeouts, how long a transfer
// is waited for. raftlogic abandons a transfer after one; once the old
// leader has stepped down for the target, a lost vote or a split one takes
// a randomized timeout or two more to settle.
const transferWaitTimeouts = 3

// pendingTransfer is the transfer this node (as leader of term) started,
// and the requests waiting for its outcome.
type pendingTransfer struct {
	to, term uint64
	waiters  []*actor.PID
	// ticksLeft counts down to giving up (transferWaitTimeouts).
	ticksLeft int
}

// peerAck is what a leader of term last heard from a peer: the highest
// index it acknowledged, and when it last answered at all.
type peerAck struct {
	term, match uint64
	at          time.Time
}

// transfer starts a leadership transfer, or refuses it (see the top of
// this file).
func (n *nodeActor) transfer(ctx actor.Context, req *raftpb.TransferRequest) {
	if !n.admitted(ctx, req, transferRefusal) {
		return
	}
	st := n.raft.Status()
	if st.Role != raftlogic.Leader {
		ctx.Respond(&raftpb.TransferResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_NOT_LEADER, LeaderId: st.Lead,
			Message: fmt.Sprintf("node %d does not lead", n.cfg.ID)})
		return
	}
	to := req.GetTo()
	if p := n.handover; p != nil {
		if to == 0 || to == p.to {
			p.waiters = append(p.waiters, ctx.Sender())
			return
		}
		ctx.Respond(&raftpb.TransferResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_TRANSFER_BUSY, LeaderId: n.cfg.ID,
			Message: fmt.Sprintf("node %d is handing leadership to node %d", n.cfg.ID, p.to)})
		return
	}
	if to == 0 {
		if to = n.mostCaughtUp(st.Term, st.Conf.Voters); to == 0 {
			ctx.Respond(&raftpb.TransferResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED, LeaderId: n.cfg.ID,
				Message: fmt.Sprintf("no other node answered leader %d in the last election timeout", n.cfg.ID)})
			return
		}
	}
	if to == n.cfg.ID {
		ctx.Respond(&raftpb.TransferResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_TRANSFER_TARGET, LeaderId: n.cfg.ID,
			Message: fmt.Sprintf("node %d already leads", to)})
		return
	}
	if err := n.raft.TransferLeadership(to); err != nil {
		code, leader := notLeaderCode(err)
		switch {
		case errors.Is(err, raftlogic.ErrUnknownPeer):
			code, leader = raftpb.ErrorCode_ERROR_CODE_TRANSFER_TARGET, n.cfg.ID
			err = fmt.Errorf("node %d is not a voting member of the cluster", to)
		case errors.Is(err, raftlogic.ErrNotVoter):
			// A learner, or a voter being removed.
			code, leader = raftpb.ErrorCode_ERROR_CODE_TRANSFER_TARGET, n.cfg.ID
		}
		ctx.Respond(&raftpb.TransferResponse{ErrorCode: code, LeaderId: leader, Message: err.Error()})
		return
	}
	n.log.Info("handing leadership over", "to", to, "term", st.Term)
	n.handover = &pendingTransfer{to: to, term: st.Term, waiters: []*actor.PID{ctx.Sender()},
		ticksLeft: transferWaitTimeouts * n.cfg.ElectionTicks}
	n.scheduleFlush(ctx)
}

// mostCaughtUp picks the transfer target for a request that names none:
// of the peers that answered this leader of term within an election
// timeout, the one that acknowledged the most of its log (the lowest id
// on a tie); 0 when none did. raftlogic then checks that it votes.
func (n *nodeActor) mostCaughtUp(term uint64, voters []uint64) uint64 {
	recent := time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
	// Only a voter can take over: a learner answers too, but raftlogic
	// refuses to hand it leadership.
	var best uint64
	var bestMatch uint64
	for id, a := range n.acks {
		if id == n.cfg.ID || a.term != term || time.Since(a.at) > recent || !slices.Contains(voters, id) {
			continue
		}
		if best == 0 || a.match > bestMatch || (a.match == bestMatch && id < best) {
			best, bestMatch = id, a.match
		}
	}
	return best
}

// noteAck records a peer's answer to this node as leader, for
// mostCaughtUp. raftlogic keeps the same in its progress, but does not
// show it.
func (n *nodeActor) noteAck(m raftlogic.Message) {
	if m.Type != raftlogic.MsgAppResp && m.Type != raftlogic.MsgHeartbeatResp {
		return
	}
	// On every acknowledgement a leader gets: the role is the node's own
	// copy and Term is cheap (Status copies the configuration).
	term := n.raft.Term()
	if n.role != raftlogic.Leader || m.Term != term {
		return
	}
	if n.acks == nil {
		n.acks = map[uint64]peerAck{}
	}
	a := n.acks[m.From]
	if a.term != term {
		a = peerAck{term: term}
	}
	if m.Type == raftlogic.MsgAppResp && !m.Reject {
		a.match = max(a.match, m.Index)
	}
	a.at = time.Now()
	n.acks[m.From] = a
}

// transferTicked counts a tick against the transfer in flight, if any,
// and ends it when it is decided or has run out of time.
func (n *nodeActor) transferTicked(ctx actor.Context) {
	if p := n.handover; p != nil {
		p.ticksLeft--
		n.checkTransfer(ctx)
	}
}

// checkTransfer answers the transfer in flight once its outcome is known
// (see the top of this file).
func (n *nodeActor) checkTransfer(ctx actor.Context) {
	p := n.handover
	if p == nil {
		return
	}
	st := n.raft.Status()
	switch {
	case st.Term > p.term && st.Lead == p.to:
		n.log.Info("leadership handed over", "to", p.to, "term", st.Term)
		n.endTransfer(ctx, raftpb.ErrorCode_ERROR_CODE_OK, st.Lead, "")
	case st.Term > p.term && st.Lead != raftlogic.None:
		n.endTransfer(ctx, raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED, st.Lead,
			fmt.Sprintf("node %d took over in term %d, not node %d", st.Lead, st.Term, p.to))
	case st.Role == raftlogic.Leader && st.Term == p.term && st.Transferee == raftlogic.None:
		n.endTransfer(ctx, raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED, n.cfg.ID,
			fmt.Sprintf("node %d was not seen taking over within an election timeout; node %d leads on as far as it knows", p.to, n.cfg.ID))
	case p.ticksLeft <= 0:
		n.endTransfer(ctx, raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED, st.Lead,
			fmt.Sprintf("node %d heard of no leader after handing over to node %d; leadership may have moved", n.cfg.ID, p.to))
	}
}

// stopTransfer fails the transfer in flight as the node stops: it will
// not learn the outcome.
func (n *nodeActor) stopTransfer(ctx actor.Context) {
	if p := n.handover; p != nil {
		n.endTransfer(ctx, raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED, 0,
			fmt.Sprintf("node %d stopped while handing leadership to node %d; leadership may have moved", n.cfg.ID, p.to))
	}
}

// endTransfer answers every request waiting for the transfer in flight.
func (n *nodeActor) endTransfer(ctx actor.Context, code raftpb.ErrorCode, leader uint64, msg string) {
	if code != raftpb.ErrorCode_ERROR_CODE_OK {
		n.log.Warn("leadership transfer failed", "reason", msg)
	}
	for _, w := range n.handover.waiters {
		ctx.Send(w, &raftpb.TransferResponse{ErrorCode: code, LeaderId: leader, Message: msg})
	}
	n.handover = nil
}
