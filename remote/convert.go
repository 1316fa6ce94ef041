package remote

import (
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// errBadMessage is wrapped by every error fromProto returns: the input is not
// a structurally valid Raft message. The message came from the network, so
// the caller should drop it (and may log it), never crash.
var errBadMessage = errors.New("remote: bad message")

// msgTypes maps raftlogic message types to their wire enum. The numbers are
// equal by design; the tables keep the code independent of that.
var msgTypes = map[raftlogic.MessageType]raftpb.MessageType{
	raftlogic.MsgApp:           raftpb.MessageType_MESSAGE_TYPE_APP,
	raftlogic.MsgAppResp:       raftpb.MessageType_MESSAGE_TYPE_APP_RESP,
	raftlogic.MsgVote:          raftpb.MessageType_MESSAGE_TYPE_VOTE,
	raftlogic.MsgVoteResp:      raftpb.MessageType_MESSAGE_TYPE_VOTE_RESP,
	raftlogic.MsgPreVote:       raftpb.MessageType_MESSAGE_TYPE_PRE_VOTE,
	raftlogic.MsgPreVoteResp:   raftpb.MessageType_MESSAGE_TYPE_PRE_VOTE_RESP,
	raftlogic.MsgHeartbeat:     raftpb.MessageType_MESSAGE_TYPE_HEARTBEAT,
	raftlogic.MsgHeartbeatResp: raftpb.MessageType_MESSAGE_TYPE_HEARTBEAT_RESP,
	raftlogic.MsgSnap:          raftpb.MessageType_MESSAGE_TYPE_SNAP,
	raftlogic.MsgTimeoutNow:    raftpb.MessageType_MESSAGE_TYPE_TIMEOUT_NOW,
}

var msgTypesBack = func() map[raftpb.MessageType]raftlogic.MessageType {
	m := make(map[raftpb.MessageType]raftlogic.MessageType, len(msgTypes))
	for k, v := range msgTypes {
		m[v] = k
	}
	return m
}()

var entryTypes = map[raftlogic.EntryType]raftpb.EntryType{
	raftlogic.EntryNormal:     raftpb.EntryType_ENTRY_TYPE_NORMAL,
	raftlogic.EntryConfChange: raftpb.EntryType_ENTRY_TYPE_CONF_CHANGE,
}

var entryTypesBack = func() map[raftpb.EntryType]raftlogic.EntryType {
	m := make(map[raftpb.EntryType]raftlogic.EntryType, len(entryTypes))
	for k, v := range entryTypes {
		m[v] = k
	}
	return m
}()

// toProto converts a Raft message to its wire form. The result shares the
// byte slices (entry and snapshot data) and the voter slice with m; neither
// side may modify them while the other is in use.
//
// toProto is total: a message type or entry type raftlogic does not define is
// carried by number, and the receiving fromProto rejects it. The snapshot is
// omitted when m.Snapshot is the zero value.
func toProto(m raftlogic.Message) *raftpb.Message {
	p := &raftpb.Message{
		Type:       toProtoMsgType(m.Type),
		From:       m.From,
		To:         m.To,
		Term:       m.Term,
		Index:      m.Index,
		LogTerm:    m.LogTerm,
		Commit:     m.Commit,
		Reject:     m.Reject,
		RejectHint: m.RejectHint,
		Context:    m.Context,
	}
	if len(m.Entries) > 0 {
		p.Entries = make([]*raftpb.Entry, len(m.Entries))
		for i, e := range m.Entries {
			p.Entries[i] = &raftpb.Entry{Index: e.Index, Term: e.Term, Type: toProtoEntryType(e.Type), Data: e.Data}
		}
	}
	if s := m.Snapshot; !isZeroSnapshot(s) {
		p.Snapshot = &raftpb.Snapshot{
			Meta: &raftpb.SnapshotMeta{
				Index:     s.Meta.Index,
				Term:      s.Meta.Term,
				ConfState: toProtoConfState(s.Meta.ConfState),
			},
			Data: s.Data,
		}
	}
	return p
}

func isZeroSnapshot(s raftlogic.Snapshot) bool {
	cs := s.Meta.ConfState
	return s.Meta.Index == 0 && s.Meta.Term == 0 && len(cs.Voters) == 0 && len(cs.VotersOutgoing) == 0 && len(cs.Learners) == 0 && len(s.Data) == 0
}

func toProtoMsgType(t raftlogic.MessageType) raftpb.MessageType {
	if pt, ok := msgTypes[t]; ok {
		return pt
	}
	return raftpb.MessageType(t)
}

func toProtoEntryType(t raftlogic.EntryType) raftpb.EntryType {
	if pt, ok := entryTypes[t]; ok {
		return pt
	}
	return raftpb.EntryType(t)
}

// fromProto converts a wire message to a Raft message. It checks structure
// only: p is non-nil, its type and every entry's type are known, no entry is
// nil, and a snapshot that carries anything has metadata. Any failure returns
// an error wrapping errBadMessage; fromProto never panics on any input.
// Whether the message makes sense to Raft (terms, peers, snapshot metadata)
// is for raftlogic.Node.Step to decide.
//
// The result shares byte and voter slices with p. Empty slices come back nil,
// so a message survives toProto, proto.Marshal, proto.Unmarshal and fromProto
// unchanged when it uses nil for "none".
func fromProto(p *raftpb.Message) (raftlogic.Message, error) {
	if p == nil {
		return raftlogic.Message{}, fmt.Errorf("%w: nil message", errBadMessage)
	}
	t, ok := msgTypesBack[p.GetType()]
	if !ok {
		return raftlogic.Message{}, fmt.Errorf("%w: unknown message type %d from node %d", errBadMessage, int32(p.GetType()), p.GetFrom())
	}
	m := raftlogic.Message{
		Type:       t,
		From:       p.GetFrom(),
		To:         p.GetTo(),
		Term:       p.GetTerm(),
		Index:      p.GetIndex(),
		LogTerm:    p.GetLogTerm(),
		Commit:     p.GetCommit(),
		Reject:     p.GetReject(),
		RejectHint: p.GetRejectHint(),
		Context:    p.GetContext(),
	}
	if es := p.GetEntries(); len(es) > 0 {
		m.Entries = make([]raftlogic.Entry, len(es))
		for i, e := range es {
			if e == nil {
				return raftlogic.Message{}, fmt.Errorf("%w: %v from node %d: entry %d is nil", errBadMessage, t, m.From, i)
			}
			et, ok := entryTypesBack[e.GetType()]
			if !ok {
				return raftlogic.Message{}, fmt.Errorf("%w: %v from node %d: entry %d (index %d) has unknown type %d",
					errBadMessage, t, m.From, i, e.GetIndex(), int32(e.GetType()))
			}
			m.Entries[i] = raftlogic.Entry{Index: e.GetIndex(), Term: e.GetTerm(), Type: et, Data: nilIfEmpty(e.GetData())}
		}
	}
	if s := p.GetSnapshot(); s != nil {
		meta := s.GetMeta()
		if meta == nil && len(s.GetData()) > 0 {
			return raftlogic.Message{}, fmt.Errorf("%w: %v from node %d: snapshot data without metadata", errBadMessage, t, m.From)
		}
		m.Snapshot = raftlogic.Snapshot{
			Meta: raftlogic.SnapshotMeta{
				Index:     meta.GetIndex(),
				Term:      meta.GetTerm(),
				ConfState: fromProtoConfState(meta.GetConfState()),
			},
			Data: nilIfEmpty(s.GetData()),
		}
	}
	return m, nil
}

// toProtoConfState is the wire form of a configuration.
func toProtoConfState(cs raftlogic.ConfState) *raftpb.ConfState {
	return &raftpb.ConfState{Voters: cs.Voters, VotersOutgoing: cs.VotersOutgoing, Learners: cs.Learners}
}

// fromProtoConfState reads a configuration off the wire; a nil message is
// the empty configuration. It does not check the lists: raftlogic refuses a
// configuration it cannot run.
func fromProtoConfState(p *raftpb.ConfState) raftlogic.ConfState {
	return raftlogic.ConfState{
		Voters:         nilIfEmpty(p.GetVoters()),
		VotersOutgoing: nilIfEmpty(p.GetVotersOutgoing()),
		Learners:       nilIfEmpty(p.GetLearners()),
	}
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// errForeignCluster is wrapped by OpenEnvelope's error when an envelope
// belongs to another cluster; the caller should drop it.
var errForeignCluster = errors.New("remote: message from a foreign cluster")

// NewEnvelope wraps m for delivery to a peer's Raft actor.
func NewEnvelope(clusterID string, m raftlogic.Message) *raftpb.RaftEnvelope {
	return &raftpb.RaftEnvelope{ClusterId: clusterID, Msg: toProto(m)}
}

// OpenEnvelope unwraps a received envelope. It returns an error, which the
// caller logs and drops the envelope for, if e was sent by a node of
// another cluster than clusterID or if e or its message is not a
// structurally valid Raft message (checked as fromProto says); it never
// panics on any input.
func OpenEnvelope(clusterID string, e *raftpb.RaftEnvelope) (raftlogic.Message, error) {
	if e == nil {
		return raftlogic.Message{}, fmt.Errorf("%w: nil envelope", errBadMessage)
	}
	if got := e.GetClusterId(); got != clusterID {
		return raftlogic.Message{}, fmt.Errorf("%w: cluster %q, want %q (from node %d)", errForeignCluster, got, clusterID, e.GetMsg().GetFrom())
	}
	return fromProto(e.GetMsg())
}
