package actors

import (
	"errors"
	"fmt"
	"maps"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/nodestatus"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// This file keeps the node's view of the cluster's members: who they are
// comes from raftlogic (the configuration in force, which changes when a
// configuration entry is appended), where they are from the address book,
// and the node runs one replication actor per member it can reach.
//
// The address book is filled, in order of authority, from the state
// machine's member table (replicated: what the cluster recorded), from the
// Context of configuration entries appended but not yet applied (a member
// added a moment ago), and from NodeConfig.Peers (config.yaml: the
// bootstrap members, and the members a joining node is told of).

// loadBook rebuilds the address book from the state machine's member
// table, the configuration entries in ents (the log after the state
// machine) and the configured peers.
func (n *nodeActor) loadBook(ents []raftlogic.Entry) error {
	ms, err := n.storage.sm.Members()
	if err != nil {
		return err
	}
	n.book = map[uint64]kvstate.Member{}
	for _, m := range ms {
		n.book[m.ID] = m
	}
	for id, pid := range n.cfg.Peers {
		if _, ok := n.book[id]; !ok {
			n.book[id] = kvstate.Member{ID: id, PeerAddress: pid.Address}
		}
	}
	n.learnMembers(ents)
	n.announceMembers()
	return nil
}

// announceMembers tells OnMembers the address book.
func (n *nodeActor) announceMembers() {
	if n.cfg.OnMembers == nil {
		return
	}
	ms := make([]kvstate.Member, 0, len(n.book))
	for _, m := range n.book {
		ms = append(ms, m)
	}
	n.cfg.OnMembers(ms)
}

// learnMembers records the addresses that configuration entries in ents
// carry. An entry that does not decode is left to the state machine, which
// records the error in its result.
func (n *nodeActor) learnMembers(ents []raftlogic.Entry) {
	for _, e := range ents {
		if e.Type != raftlogic.EntryConfChange {
			continue
		}
		cc, _, err := raftlogic.DecodeConfChange(e.Data)
		if err != nil {
			continue
		}
		added, err := kvstate.DecodeMembers(cc.Context)
		if err != nil {
			continue
		}
		for _, m := range added {
			n.book[m.ID] = m
		}
		if len(added) > 0 {
			n.announceMembers()
		}
	}
}

// peerPID is where member id's node actor answers, or nil when its address
// is unknown.
func (n *nodeActor) peerPID(id uint64) *actor.PID {
	m, ok := n.book[id]
	switch {
	case ok && n.cfg.PeerPID != nil:
		return n.cfg.PeerPID(m)
	case ok && m.PeerAddress != "":
		return actor.NewPID(m.PeerAddress, NodeName(id))
	}
	return n.cfg.Peers[id]
}

// syncReplicators keeps a link, with its replication actor, to every member
// of conf other than this node: it starts those of new members and stops
// those of members that left. The map is replaced, not changed, because log
// writes in flight hold the previous one (logWrite.sendTo).
func (n *nodeActor) syncReplicators(ctx actor.Context, conf raftlogic.ConfState) {
	want := conf.IDs()
	next := make(peerLinks, len(want))
	for _, id := range want {
		if id == n.cfg.ID {
			continue
		}
		if l, ok := n.links[id]; ok {
			next[id] = l
		} else if l, ok := n.startReplicator(ctx, id); ok {
			next[id] = l
		}
	}
	for id, l := range n.links {
		if _, ok := next[id]; !ok {
			n.retire(ctx, l.replicator)
			n.log.Info("stopped replicating to a node that is not a member", "node", id)
		}
	}
	n.links = next
}

// reachAll makes sure every message in msgs has a replication actor to
// take it, starting one for a node outside the configuration when its
// address is known: a joining node answers the leader before it knows it
// is a member, and a leader answers a removed node's stale requests with
// its term. Such actors stop at the next configuration change.
func (n *nodeActor) reachAll(ctx actor.Context, msgs []raftlogic.Message) {
	var next peerLinks
	for _, m := range msgs {
		if _, ok := n.links[m.To]; ok || m.To == n.cfg.ID {
			continue
		}
		if _, ok := next[m.To]; ok {
			continue
		}
		l, ok := n.startReplicator(ctx, m.To)
		if !ok {
			continue
		}
		if next == nil {
			next = maps.Clone(n.links)
		}
		next[m.To] = l
	}
	if next != nil {
		n.links = next
	}
}

// startReplicator starts the replication actor of node id and returns the
// link to id; false when id's address is unknown.
func (n *nodeActor) startReplicator(ctx actor.Context, id uint64) (peerLink, bool) {
	peer := n.peerPID(id)
	if peer == nil {
		n.log.Warn("no address for a node; it is sent nothing until one is known", "node", id)
		return peerLink{}, false
	}
	n.replicatorGen++
	n.log.Info("replicating to a node", "node", id, "address", peer.Address)
	pid := n.spawn(ctx, fmt.Sprintf("replicate-%d-%d", id, n.replicatorGen), n.replicatorFor(id, peer))
	if pid == nil {
		return peerLink{}, false
	}
	return peerLink{node: peer, replicator: pid}, true
}

// isPeer reports whether id is a node this one may take snapshot chunks
// from: any member it knows an address for but itself.
func (n *nodeActor) isPeer(id uint64) bool {
	if id == n.cfg.ID {
		return false
	}
	_, ok := n.book[id]
	return ok
}

// changeMembers proposes a membership change. It is answered, as a
// proposal is, once the change is applied (by the apply actor), or at once
// with the reason raftlogic refused it.
func (n *nodeActor) changeMembers(ctx actor.Context, req *raftpb.ConfChangeRequest) {
	if !n.admitted(ctx, req, proposeRefusal) {
		return
	}
	cc, err := confChangeFromWire(req)
	if err != nil {
		ctx.Respond(&raftpb.ProposeResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_INVALID_CONF_CHANGE, Message: err.Error()})
		return
	}
	index, term, err := n.raft.ProposeConfChange(cc)
	if err != nil {
		code, leader := confChangeCode(err)
		ctx.Respond(&raftpb.ProposeResponse{ErrorCode: code, LeaderId: leader, Message: err.Error()})
		return
	}
	n.log.Info("membership change proposed", "index", index, "changes", cc.Changes)
	ctx.Send(n.apply, &awaitProposal{index: index, term: term, replyTo: ctx.Sender()})
	n.scheduleFlush(ctx)
}

// confChangeFromWire reads a request into raftlogic's form, the added
// members' addresses in its Context. The addresses are checked here;
// raftlogic checks the rest.
func confChangeFromWire(req *raftpb.ConfChangeRequest) (raftlogic.ConfChange, error) {
	var cc raftlogic.ConfChange
	for _, c := range req.GetChanges() {
		var t raftlogic.ConfChangeType
		switch c.GetType() {
		case raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER:
			t = raftlogic.ConfChangeAddLearner
		case raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_VOTER:
			t = raftlogic.ConfChangeAddVoter
		case raftpb.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE:
			t = raftlogic.ConfChangeRemoveNode
		default:
			return cc, fmt.Errorf("unknown membership change type %d for node %d", c.GetType(), c.GetNodeId())
		}
		cc.Changes = append(cc.Changes, raftlogic.ConfChangeSingle{Type: t, NodeID: c.GetNodeId()})
	}
	if len(req.GetMembers()) > 0 {
		ms := make([]kvstate.Member, 0, len(req.GetMembers()))
		for _, m := range req.GetMembers() {
			ms = append(ms, kvstate.Member{ID: m.GetId(), PeerAddress: m.GetPeerAddress(), ClientAddress: m.GetClientAddress()})
		}
		var err error
		if cc.Context, err = kvstate.EncodeMembers(ms); err != nil {
			return cc, err
		}
	}
	return cc, nil
}

// confChangeCode turns raftlogic's refusal of a change into a wire code.
func confChangeCode(err error) (raftpb.ErrorCode, uint64) {
	for _, c := range []struct {
		err  error
		code raftpb.ErrorCode
	}{
		{raftlogic.ErrConfChangeInProgress, raftpb.ErrorCode_ERROR_CODE_CONF_CHANGE_IN_PROGRESS},
		{raftlogic.ErrAlreadyMember, raftpb.ErrorCode_ERROR_CODE_ALREADY_MEMBER},
		{raftlogic.ErrUnknownPeer, raftpb.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER},
		{raftlogic.ErrLastVoter, raftpb.ErrorCode_ERROR_CODE_LAST_VOTER},
		{raftlogic.ErrLearnerBehind, raftpb.ErrorCode_ERROR_CODE_LEARNER_BEHIND},
		{raftlogic.ErrWouldLoseQuorum, raftpb.ErrorCode_ERROR_CODE_WOULD_LOSE_QUORUM},
		{raftlogic.ErrInvalidConfChange, raftpb.ErrorCode_ERROR_CODE_INVALID_CONF_CHANGE},
	} {
		if errors.Is(err, c.err) {
			return c.code, 0
		}
	}
	return notLeaderCode(err)
}

// memberStatus lists the configuration in st with each member's role,
// match index (on a leader) and addresses.
func (n *nodeActor) memberStatus(st raftlogic.Status) []nodestatus.Member {
	out := make([]nodestatus.Member, 0, len(st.Members))
	for _, m := range st.Members {
		role := nodestatus.RoleVoter
		switch {
		case m.Learner:
			role = nodestatus.RoleLearner
		case m.Outgoing && !m.Voter:
			role = nodestatus.RoleOutgoingVoter
		}
		b := n.book[m.ID]
		ms := nodestatus.Member{ID: m.ID, Role: role, PeerAddress: b.PeerAddress, ClientAddress: b.ClientAddress}
		if st.Role == raftlogic.Leader {
			ms.Match = m.Match
			ms.Lag = st.LastIndex - min(st.LastIndex, m.Match)
		}
		out = append(out, ms)
	}
	return out
}

// listMembers answers a MembersRequest with the leader's view of the
// configuration; a node that does not lead points at the one that does.
func (n *nodeActor) listMembers(ctx actor.Context, req *raftpb.MembersRequest) {
	if !n.admitted(ctx, req, membersRefusal) {
		return
	}
	st := n.raft.Status()
	if st.Role != raftlogic.Leader {
		ctx.Respond(&raftpb.MembersResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_NOT_LEADER, LeaderId: st.Lead,
			Message: fmt.Sprintf("node %d does not lead", n.cfg.ID)})
		return
	}
	ctx.Respond(&raftpb.MembersResponse{Members: apiwire.MembersToWire(n.memberStatus(st)), LastIndex: st.LastIndex, LeaderId: n.cfg.ID})
}

// retire stops a child the node no longer needs; its Terminated is then
// expected (childTerminated).
func (n *nodeActor) retire(ctx actor.Context, pid *actor.PID) {
	if n.retired == nil {
		n.retired = map[string]bool{}
	}
	n.retired[pid.Id] = true
	ctx.Stop(pid)
}

// childTerminated takes a child's end: expected for one the node retired;
// otherwise its supervisor gave up on it, and the node cannot run without
// it.
func (n *nodeActor) childTerminated(ctx actor.Context, msg *actor.Terminated) {
	if n.retired[msg.Who.Id] {
		delete(n.retired, msg.Who.Id)
		return
	}
	n.fail(ctx, fmt.Errorf("child %s stopped after repeated failures", msg.Who.Id))
}
