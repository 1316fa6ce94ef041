package kvstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
)

// The member table: where each member of the cluster is reached. raftlogic
// decides who is a member (voter or learner) from the log; the table adds
// the addresses, which raftlogic carries but does not read (the Context of
// a configuration change). It lives in the state machine so that it is
// replicated with the log, survives restarts with the data rather than with
// config.yaml, and travels in snapshots to a member that joins late.
//
//	m/c/<id, 8 bytes>   member record: version | peer address | client address
//	m/conf              the configuration as of the applied index (raftlogic.ConfState):
//	                    version | voters | outgoing voters | learners (count, ids)
//
// The configuration is kept so that a snapshot image carries the one it
// was taken under: raftlogic's own snapshot metadata is as of the last
// compaction, older than the image a leader sends.

// Member is one member of the cluster as the replicated configuration
// records it.
type Member struct {
	// ID is the member's Raft id, non-zero.
	ID uint64
	// PeerAddress is the host:port of its Raft transport; empty for a node
	// reached inside the same process (embedded mode).
	PeerAddress string
	// ClientAddress is the host:port of its client API; empty when it
	// serves none.
	ClientAddress string
}

// MaxAddressLen bounds a member address: a host name of at most 253 bytes
// with a port fits.
const MaxAddressLen = 260

// ErrBadMember refuses a member record that cannot be used: a zero id, an
// address that is too long, or bytes that do not decode.
var ErrBadMember = errors.New("kvstate: bad member record")

const (
	prefixMember = "m/c/"
	keyConf      = "m/conf"
	// membersV1 is the version byte of a member list (a change's Context)
	// and of a stored member record.
	membersV1 = 1
)

func memberKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte(prefixMember), id) }

// Validate refuses a member record that cannot be stored (ErrBadMember).
func (m Member) Validate() error {
	switch {
	case m.ID == 0:
		return fmt.Errorf("%w: member id 0", ErrBadMember)
	case len(m.PeerAddress) > MaxAddressLen:
		return fmt.Errorf("%w: member %d: peer address of %d bytes (at most %d)", ErrBadMember, m.ID, len(m.PeerAddress), MaxAddressLen)
	case len(m.ClientAddress) > MaxAddressLen:
		return fmt.Errorf("%w: member %d: client address of %d bytes (at most %d)", ErrBadMember, m.ID, len(m.ClientAddress), MaxAddressLen)
	}
	return nil
}

func appendAddrs(dst []byte, m Member) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m.PeerAddress)))
	dst = append(dst, m.PeerAddress...)
	dst = binary.AppendUvarint(dst, uint64(len(m.ClientAddress)))
	return append(dst, m.ClientAddress...)
}

func (d *decoder) addrs(m *Member) {
	m.PeerAddress = string(d.bytes("peer address"))
	m.ClientAddress = string(d.bytes("client address"))
}

// EncodeMembers encodes the records of the members a configuration change
// adds, as the change's Context. It refuses what DecodeMembers would.
func EncodeMembers(ms []Member) ([]byte, error) {
	b := []byte{membersV1}
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i, m := range ms {
		if err := m.Validate(); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(ms[:i], func(o Member) bool { return o.ID == m.ID }) {
			return nil, fmt.Errorf("%w: member %d listed twice", ErrBadMember, m.ID)
		}
		b = binary.AppendUvarint(b, m.ID)
		b = appendAddrs(b, m)
	}
	return b, nil
}

// DecodeMembers reads a member list written by EncodeMembers. An empty
// input is the empty list: a change that adds nobody (a promotion, a
// removal) carries no Context.
func DecodeMembers(b []byte) ([]Member, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != membersV1 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrBadMember, b[0])
	}
	d := decoder{b: b[1:]}
	n := d.uvarint("member count")
	// Each member takes at least three bytes; checking first keeps a bad
	// count from sizing a huge allocation.
	if d.err == nil && n > uint64(len(d.b)-d.off)/3 {
		return nil, fmt.Errorf("%w: %d members in %d bytes", ErrBadMember, n, len(d.b)-d.off)
	}
	var ms []Member
	for i := uint64(0); i < n && d.err == nil; i++ {
		m := Member{ID: d.uvarint("member id")}
		d.addrs(&m)
		ms = append(ms, m)
	}
	if d.err == nil && d.off < len(d.b) {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b)-d.off)
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMember, d.err)
	}
	for i, m := range ms {
		if err := m.Validate(); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(ms[:i], func(o Member) bool { return o.ID == m.ID }) {
			return nil, fmt.Errorf("%w: member %d listed twice", ErrBadMember, m.ID)
		}
	}
	return ms, nil
}

func encodeMemberRecord(m Member) []byte { return appendAddrs([]byte{membersV1}, m) }

func decodeMemberRecord(id uint64, b []byte) (Member, error) {
	if len(b) == 0 || b[0] != membersV1 {
		return Member{}, fmt.Errorf("%w: member %d: unreadable record", errCorruptState, id)
	}
	d := decoder{b: b[1:]}
	m := Member{ID: id}
	d.addrs(&m)
	if d.err == nil && d.off < len(d.b) {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b)-d.off)
	}
	if d.err != nil {
		return Member{}, fmt.Errorf("%w: member %d: %w", errCorruptState, id, d.err)
	}
	return m, nil
}

// Members returns the member table as of the applied index, by id.
func (s *State) Members() ([]Member, error) {
	var ms []Member
	err := s.read(func(txn *badger.Txn) error {
		return iterate(txn, prefixMember, true, func(item *badger.Item) error {
			id, ok := parseU64Key(item.Key(), prefixMember)
			if !ok {
				return fmt.Errorf("%w: member key %q", errCorruptState, item.Key())
			}
			return item.Value(func(v []byte) error {
				m, err := decodeMemberRecord(id, v)
				ms = append(ms, m)
				return err
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("kvstate: reading members: %w", err)
	}
	return ms, nil
}

// InitMembers records the members of a new cluster, taken from its
// configuration file, as its voters, in a State that has applied nothing
// and records no member yet; it is a no-op otherwise, because once a
// cluster runs its table changes only through the log. Every bootstrap
// member records the same list, so their states stay equal.
func (s *State) InitMembers(ms []Member) error {
	for i, m := range ms {
		if err := m.Validate(); err != nil {
			return err
		}
		if slices.ContainsFunc(ms[:i], func(o Member) bool { return o.ID == m.ID }) {
			return fmt.Errorf("%w: member %d listed twice", ErrBadMember, m.ID)
		}
	}
	conf := raftlogic.ConfState{}
	for _, m := range ms {
		conf.Voters = append(conf.Voters, m.ID)
	}
	slices.Sort(conf.Voters)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	applied, _, err := s.appliedForWrite()
	if err != nil || applied > 0 {
		return err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		empty := true
		if err := iterate(txn, prefixMember, false, func(*badger.Item) error {
			empty = false
			return nil
		}); err != nil || !empty {
			return err
		}
		for _, m := range ms {
			if err := txn.Set(memberKey(m.ID), encodeMemberRecord(m)); err != nil {
				return err
			}
		}
		return txn.Set([]byte(keyConf), encodeConf(conf))
	})
	if err != nil {
		return fmt.Errorf("kvstate: recording the first members: %w", err)
	}
	return nil
}

// applyConfChange records a configuration change's effect: the
// configuration it results in, an added learner's addresses from the
// Context (empty when the Context does not name it), a removed member's
// record deleted. Promotion
// changes nothing here. Bytes that do not decode are skipped with an error
// in r, as a malformed command is; the error returned is the database's.
func applyConfChange(txn *countedTxn, e raftlogic.Entry, r *Result) error {
	cc, conf, err := raftlogic.DecodeConfChange(e.Data)
	if err != nil {
		r.Err = fmt.Errorf("%w: entry %d: configuration change: %w", ErrBadCommand, e.Index, err)
		return nil
	}
	// raftlogic follows the entry's configuration whatever its Context
	// holds, and so does the state.
	if err := txn.Set([]byte(keyConf), encodeConf(conf)); err != nil {
		return err
	}
	added, err := DecodeMembers(cc.Context)
	if err != nil {
		r.Err = fmt.Errorf("entry %d: %w", e.Index, err)
		return nil
	}
	for _, c := range cc.Changes {
		switch c.Type {
		case raftlogic.ConfChangeAddLearner:
			m := Member{ID: c.NodeID}
			if i := slices.IndexFunc(added, func(a Member) bool { return a.ID == c.NodeID }); i >= 0 {
				m = added[i]
			}
			if err := txn.Set(memberKey(m.ID), encodeMemberRecord(m)); err != nil {
				return err
			}
		case raftlogic.ConfChangeRemoveNode:
			if err := txn.Delete(memberKey(c.NodeID)); err != nil {
				return err
			}
		}
	}
	return nil
}

func confEmpty(cs raftlogic.ConfState) bool {
	return len(cs.Voters) == 0 && len(cs.VotersOutgoing) == 0 && len(cs.Learners) == 0
}

func encodeConf(cs raftlogic.ConfState) []byte {
	b := []byte{membersV1}
	for _, ids := range [][]uint64{cs.Voters, cs.VotersOutgoing, cs.Learners} {
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = binary.AppendUvarint(b, id)
		}
	}
	return b
}

// decodeConf reads a configuration written by encodeConf; what is wrong
// with it wraps ErrBadCommand (the decoder's), and the caller says where it
// came from.
func decodeConf(b []byte) (raftlogic.ConfState, error) {
	if len(b) == 0 || b[0] != membersV1 {
		return raftlogic.ConfState{}, fmt.Errorf("%w: unreadable configuration record", ErrBadCommand)
	}
	d := decoder{b: b[1:]}
	var lists [3][]uint64
	for i := range lists {
		n := d.uvarint("id count")
		if d.err == nil && n > uint64(len(d.b)-d.off) {
			return raftlogic.ConfState{}, fmt.Errorf("%w: %d ids in %d bytes", ErrBadCommand, n, len(d.b)-d.off)
		}
		for range n {
			lists[i] = append(lists[i], d.uvarint("id"))
		}
	}
	if d.err == nil && d.off < len(d.b) {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(d.b)-d.off)
	}
	if d.err != nil {
		return raftlogic.ConfState{}, d.err
	}
	return raftlogic.ConfState{Voters: lists[0], VotersOutgoing: lists[1], Learners: lists[2]}, nil
}

// Conf returns the configuration as of the applied index: the one the
// last configuration entry applied made, or the bootstrap members'. It is
// empty for a state that never recorded one (a joining node before its
// first snapshot, or data from before membership changes).
func (s *State) Conf() (raftlogic.ConfState, error) {
	var conf raftlogic.ConfState
	err := s.read(func(txn *badger.Txn) (err error) {
		conf, err = readConf(txn)
		return err
	})
	return conf, err
}

func readConf(txn *badger.Txn) (raftlogic.ConfState, error) {
	item, err := txn.Get([]byte(keyConf))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raftlogic.ConfState{}, nil
	}
	if err != nil {
		return raftlogic.ConfState{}, fmt.Errorf("kvstate: reading the configuration: %w", err)
	}
	var conf raftlogic.ConfState
	err = item.Value(func(v []byte) (err error) {
		conf, err = decodeConf(v)
		return err
	})
	if err != nil {
		return raftlogic.ConfState{}, fmt.Errorf("%w: %s: %w", errCorruptState, keyConf, err)
	}
	return conf, nil
}
