package raftkv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/nodestatus"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// Member is one member of the cluster's configuration, as the leader
// reports it: its id, role (RoleVoter, RoleLearner, or RoleOutgoingVoter
// while a joint configuration is being left), how much of the leader's
// log it holds (Match, Lag) and where it is reached.
type Member = nodestatus.Member

// The roles of a Member.
const (
	RoleVoter         = nodestatus.RoleVoter
	RoleLearner       = nodestatus.RoleLearner
	RoleOutgoingVoter = nodestatus.RoleOutgoingVoter
)

// Changing membership. A node joins as a learner (AddLearner): it receives
// the log, by a snapshot first when it is far behind, but does not vote,
// so adding it never costs the cluster its quorum. Once its Lag is small,
// PromoteLearner gives it a vote; PromoteLearner refuses
// (ErrLearnerBehind) a learner still far behind. RemoveMember takes a
// voter or a learner out; a leader that removes itself hands leadership to
// another voter once the removal is committed. Each call changes one node,
// returns once the change is committed and applied by the leader, and
// fails with nothing changed when the change is refused
// (ErrConfChangeInProgress, ErrAlreadyMember, ErrUnknownMember,
// ErrLastVoter, ErrLearnerBehind, ErrWouldLoseQuorum,
// ErrInvalidMemberChange). When a call fails
// otherwise (ErrUnavailable, the context), the change may or may not have
// been made: Members tells.

// Members lists the members of the configuration in force, as the leader
// knows it, by id.
func (db *DB) Members(ctx context.Context) ([]Member, error) { return db.gw.members(ctx) }

// AddLearner adds node id as a learner. peerAddress is where its Raft
// transport listens (host:port, the peer address of its configuration);
// clientAddress is where it serves the client API ("" if it serves none).
// The node must be running with an empty data directory as a joining node
// (`raftkv serve --join`), so it can answer the leader.
func (db *DB) AddLearner(ctx context.Context, id uint64, peerAddress, clientAddress string) error {
	return db.gw.changeMembers(ctx, changeAddLearner(id, peerAddress, clientAddress))
}

// PromoteLearner makes learner id a voter.
func (db *DB) PromoteLearner(ctx context.Context, id uint64) error {
	return db.gw.changeMembers(ctx, changeOne(raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_VOTER, id))
}

// RemoveMember removes voter or learner id from the cluster. The removed
// node stops taking part (it no longer campaigns) but keeps running until
// it is stopped; its data directory cannot rejoin the cluster.
func (db *DB) RemoveMember(ctx context.Context, id uint64) error {
	return db.gw.changeMembers(ctx, changeOne(raftpb.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE, id))
}

func changeOne(t raftpb.ConfChangeType, id uint64) *raftpb.ConfChangeRequest {
	return &raftpb.ConfChangeRequest{Changes: []*raftpb.ConfChangeSingle{{Type: t, NodeId: id}}}
}

func changeAddLearner(id uint64, peerAddress, clientAddress string) *raftpb.ConfChangeRequest {
	req := changeOne(raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER, id)
	req.Members = []*raftpb.Member{{Id: id, PeerAddress: peerAddress, ClientAddress: clientAddress}}
	return req
}

// checkChange refuses, before anything is sent, a change that no cluster
// would take: no change, a zero id, or an added node without a usable
// peer address.
func checkChange(req *raftpb.ConfChangeRequest) error {
	if len(req.GetChanges()) == 0 {
		return fmt.Errorf("%w: a membership change needs at least one change", ErrInvalidMemberChange)
	}
	for _, c := range req.GetChanges() {
		if c.GetNodeId() == 0 {
			return fmt.Errorf("%w: node id 0 names no node", ErrInvalidMemberChange)
		}
		if c.GetType() == raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER && addedPeer(req, c.GetNodeId()) == "" {
			return fmt.Errorf("%w: node %d is added without a peer address", ErrInvalidMemberChange, c.GetNodeId())
		}
	}
	for _, m := range req.GetMembers() {
		if err := (kvstate.Member{ID: m.GetId(), PeerAddress: m.GetPeerAddress(), ClientAddress: m.GetClientAddress()}).Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidMemberChange, err)
		}
	}
	return nil
}

// addedPeer is the peer address req gives for node id, "" if none.
func addedPeer(req *raftpb.ConfChangeRequest, id uint64) string {
	for _, m := range req.GetMembers() {
		if m.GetId() == id {
			return m.GetPeerAddress()
		}
	}
	return ""
}

// changeMembers sends a membership change to the leader and waits for it
// to apply. Like a write, it is sent again after a leader change; unlike a
// write it carries no session, so a second copy of a change that was
// applied is refused (ErrAlreadyMember, ErrUnknownMember): that refusal of
// a copy sent again is checked against the members, and is success when
// the change is in place. A copy sent again and refused as
// ErrConfChangeInProgress (the first copy not committed yet, or a new
// leader without an entry of its term) is sent again after a pause, until
// the context ends (then ErrOutcomeUnknown).
func (g *gateway) changeMembers(ctx context.Context, req *raftpb.ConfChangeRequest) (err error) {
	defer g.observe("member", time.Now(), &err)
	if err := checkChange(req); err != nil {
		return err
	}
	req.ClusterId = g.route.clusterID
	ctx, cancel := bounded(ctx, g.timeout)
	defer cancel()
	if err := g.checkJoining(ctx, req); err != nil {
		return err
	}
	var sentBefore bool
	var bo backoff
	for {
		res, sent, err := g.route.call(ctx, true, req)
		sent = sent || sentBefore
		if err != nil {
			if sent {
				err = apiwire.OutcomeUnknown(err)
			}
			return err
		}
		r := res.(*raftpb.ProposeResponse)
		err = apiwire.FromWire(r.GetErrorCode(), r.GetMessage())
		// A copy sent before may still be on its way to commit under the
		// new leader, which refuses another change until it is (or until
		// it has committed an entry of its own term): ask again, and learn
		// the first copy's fate. A change that was never sent is refused
		// at once, as raftlogic does.
		if !sent || !errors.Is(err, ErrConfChangeInProgress) || ctx.Err() != nil {
			return g.settled(ctx, req, sent, err)
		}
		sentBefore = true
		bo.pause(ctx, g.route.closing)
	}
}

// settled is a change's outcome once it was answered. When a copy was sent
// before (sent), a refusal as already made is checked against the members.
func (g *gateway) settled(ctx context.Context, req *raftpb.ConfChangeRequest, sent bool, err error) error {
	if sent && (errors.Is(err, ErrUnknownMember) || errors.Is(err, ErrAlreadyMember)) {
		// A copy sent before may have made the change (a leader that
		// removed itself steps down before it answers): the refusal of
		// the copy sent again then says the change is in place.
		if ms, merr := g.members(ctx); merr == nil && changeInPlace(req, ms) {
			return nil
		}
	}
	if sent && errors.Is(err, ErrConfChangeInProgress) {
		// Still refused when time ran out: the copy sent before may
		// commit yet.
		return apiwire.OutcomeUnknown(err)
	}
	return err
}

// changeInPlace reports whether members already reflect every change of
// req.
func changeInPlace(req *raftpb.ConfChangeRequest, ms []Member) bool {
	role := func(id uint64) string {
		for _, m := range ms {
			if m.ID == id {
				return m.Role
			}
		}
		return ""
	}
	for _, c := range req.GetChanges() {
		r := role(c.GetNodeId())
		switch c.GetType() {
		case raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER:
			// The member must be the one asked for, at the same address.
			if r == "" || !slices.ContainsFunc(ms, func(m Member) bool {
				return m.ID == c.GetNodeId() && m.PeerAddress == addedPeer(req, m.ID)
			}) {
				return false
			}
		case raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_VOTER:
			if r != RoleVoter {
				return false
			}
		case raftpb.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE:
			if r != "" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// checkJoining refuses, before anything is proposed, to add a node that
// could not take part: one that does not answer at the address given, that
// belongs to another cluster, or that already holds a configuration (it
// was not started on an empty data directory with --join). A node named
// that is a member already is left to the leader, which refuses it
// (ErrAlreadyMember).
func (g *gateway) checkJoining(ctx context.Context, req *raftpb.ConfChangeRequest) error {
	var ms []Member
	for _, c := range req.GetChanges() {
		if c.GetType() != raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER {
			continue
		}
		if ms == nil {
			var err error
			if ms, err = g.members(ctx); err != nil {
				return err
			}
		}
		id := c.GetNodeId()
		if slices.ContainsFunc(ms, func(m Member) bool { return m.ID == id }) {
			continue
		}
		addr := addedPeer(req, id)
		res, err := g.route.ask(ctx, actor.NewPID(addr, actors.NodeName(id)), &raftpb.StatusRequest{}, false)
		st, ok := res.(*raftpb.StatusResponse)
		switch {
		case err != nil || !ok:
			return fmt.Errorf("%w: node %d does not answer at %s (start it there first, with 'raftkv serve --join'): %v", ErrInvalidMemberChange, id, addr, err)
		case st.GetClusterId() != g.route.clusterID:
			return fmt.Errorf("%w: node %d at %s belongs to cluster %q, not %q", ErrInvalidMemberChange, id, addr, st.GetClusterId(), g.route.clusterID)
		case len(st.GetMembers()) > 0:
			return fmt.Errorf("%w: node %d at %s already holds a configuration (members %v): a new member starts on an empty data directory with 'raftkv serve --join'",
				ErrInvalidMemberChange, id, addr, memberIDs(st.GetMembers()))
		}
	}
	return nil
}

func memberIDs(ms []*raftpb.MemberStatus) []uint64 {
	var ids []uint64
	for _, m := range ms {
		ids = append(ids, m.GetId())
	}
	return ids
}

// members asks the leader for the configuration in force.
func (g *gateway) members(ctx context.Context) ([]Member, error) {
	ms, last, _, err := g.membersWire(ctx)
	if err != nil {
		return nil, err
	}
	return apiwire.MembersFromWire(ms, last), nil
}

// membersWire is members in wire form, with the leader's last index and
// id.
func (g *gateway) membersWire(ctx context.Context) (ms []*raftpb.MemberStatus, lastIndex, leader uint64, err error) {
	res, _, err := g.route.call(ctx, false, &raftpb.MembersRequest{ClusterId: g.route.clusterID})
	if err != nil {
		return nil, 0, 0, err
	}
	r := res.(*raftpb.MembersResponse)
	if err := apiwire.FromWire(r.GetErrorCode(), r.GetMessage()); err != nil {
		return nil, 0, 0, err
	}
	return r.GetMembers(), r.GetLastIndex(), r.GetLeaderId(), nil
}

// ChangeMembers serves the client API's membership changes through the
// gateway, as DB's calls go.
func (k *kvService) ChangeMembers(ctx context.Context, req *clientpb.ChangeMembersRequest) (*clientpb.ChangeMembersResponse, error) {
	err := k.gw.changeMembers(ctx, &raftpb.ConfChangeRequest{Changes: req.GetChanges(), Members: req.GetMembers()})
	if err != nil {
		return nil, apiwire.ToStatus(err)
	}
	return &clientpb.ChangeMembersResponse{}, nil
}

// Members serves the client API's member list.
func (k *kvService) Members(ctx context.Context, _ *clientpb.ClusterMembersRequest) (*clientpb.ClusterMembersResponse, error) {
	ms, last, lead, err := k.gw.membersWire(ctx)
	if err != nil {
		return nil, apiwire.ToStatus(err)
	}
	return &clientpb.ClusterMembersResponse{Members: ms, LastIndex: last, Leader: lead}, nil
}

// Members lists the members of the configuration in force, as the leader
// knows it, by id (see DB.Members).
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var resp *clientpb.ClusterMembersResponse
	_, err := c.do(ctx, clientTryTimeout, 0, func(ctx context.Context, kv clientpb.KVClient) (err error) {
		resp, err = kv.Members(ctx, &clientpb.ClusterMembersRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return apiwire.MembersFromWire(resp.GetMembers(), resp.GetLastIndex()), nil
}

// AddLearner adds node id as a learner (see DB.AddLearner).
func (c *Client) AddLearner(ctx context.Context, id uint64, peerAddress, clientAddress string) error {
	return c.changeMembers(ctx, changeAddLearner(id, peerAddress, clientAddress))
}

// PromoteLearner makes learner id a voter (see DB.PromoteLearner).
func (c *Client) PromoteLearner(ctx context.Context, id uint64) error {
	return c.changeMembers(ctx, changeOne(raftpb.ConfChangeType_CONF_CHANGE_TYPE_ADD_VOTER, id))
}

// RemoveMember removes voter or learner id (see DB.RemoveMember).
func (c *Client) RemoveMember(ctx context.Context, id uint64) error {
	return c.changeMembers(ctx, changeOne(raftpb.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE, id))
}

// changeMembers sends a change through the client API. A change that
// may have reached the cluster without an answer ends as
// ErrOutcomeUnknown: Members tells whether it was made.
func (c *Client) changeMembers(ctx context.Context, req *raftpb.ConfChangeRequest) error {
	if err := checkChange(req); err != nil {
		return err
	}
	sent := false
	final, err := c.do(ctx, clientWriteTryTimeout, 0, func(ctx context.Context, kv clientpb.KVClient) error {
		_, err := kv.ChangeMembers(ctx, &clientpb.ChangeMembersRequest{Changes: req.GetChanges(), Members: req.GetMembers()})
		if _, final := apiwire.FromStatus(err); !final {
			sent = true
		}
		return err
	})
	if sent && !final {
		err = apiwire.OutcomeUnknown(err)
	}
	// Unlike the gateway, the client cannot tell an attempt that reached
	// no node (a refused connection) from one a leader took, so a refusal
	// is returned as it is: after a failover it may hide a change an
	// earlier attempt made (the gateway, which retries inside the
	// cluster, checks that case itself).
	return err
}
