package raftlogic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// This file holds membership change (Raft thesis chapter 4): the change
// requests, their encoding in EntryConfChange entries, and the quorum rules
// of a configuration that may be joint.

// ConfChangeType says what one ConfChangeSingle does.
type ConfChangeType uint8

const (
	// ConfChangeAddLearner adds a node that is not a member as a learner:
	// it receives the log but does not vote. New nodes always join this way,
	// so that they catch up before they count toward any quorum.
	ConfChangeAddLearner ConfChangeType = iota + 1
	// ConfChangeAddVoter promotes a learner to voter. A node that is not
	// yet a learner cannot be added as a voter directly.
	ConfChangeAddVoter
	// ConfChangeRemoveNode removes a voter or a learner.
	ConfChangeRemoveNode
)

// String names the change type, as logs show it.
func (t ConfChangeType) String() string {
	switch t {
	case ConfChangeAddLearner:
		return "add-learner"
	case ConfChangeAddVoter:
		return "add-voter"
	case ConfChangeRemoveNode:
		return "remove-node"
	}
	return fmt.Sprintf("ConfChangeType(%d)", uint8(t))
}

// ConfChangeSingle is one change to one node.
type ConfChangeSingle struct {
	// Type says what happens to NodeID.
	Type ConfChangeType
	// NodeID is the node changed; it is never None.
	NodeID uint64
}

// ConfChange is one membership change, carried by one EntryConfChange
// entry. A change that alters the voters by more than one node goes
// through a joint configuration (Raft thesis 4.3); a ConfChange with no
// Changes is the entry by which the leader leaves a joint configuration,
// which only the leader appends.
type ConfChange struct {
	// Changes apply in order; each names a different node.
	Changes []ConfChangeSingle
	// Context is opaque to raftlogic and travels with the entry: RaftKV's
	// driver puts the members' addresses there.
	Context []byte
}

// DefaultMaxLearnerLag is the Config.MaxLearnerLag used when it is zero.
const DefaultMaxLearnerLag = 512

// confEncodingV1 is the first byte of every encoded conf change entry, so
// that a later encoding can be told apart.
const confEncodingV1 = 1

// maxConfIDs bounds the ids a decoded list may announce, so that a corrupt
// length cannot make the decoder allocate without bound.
const maxConfIDs = 1 << 16

// encodeConfChange is the Data of an EntryConfChange entry, version 1:
//
//	byte    version (1)
//	uvarint number of changes, then per change: byte type, uvarint node id
//	uvarint length of Context, then Context
//	three id lists, each uvarint count then uvarint ids:
//	        the resulting Voters, VotersOutgoing, Learners
//
// The entry carries the configuration it results in, so that a node that
// appends it (or a state machine that applies it) needs nothing else to
// know the configuration, even one that joined with an empty log.
func encodeConfChange(cc ConfChange, cs ConfState) []byte {
	b := []byte{confEncodingV1}
	b = binary.AppendUvarint(b, uint64(len(cc.Changes)))
	for _, c := range cc.Changes {
		b = append(b, byte(c.Type))
		b = binary.AppendUvarint(b, c.NodeID)
	}
	b = binary.AppendUvarint(b, uint64(len(cc.Context)))
	b = append(b, cc.Context...)
	for _, ids := range [][]uint64{cs.Voters, cs.VotersOutgoing, cs.Learners} {
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = binary.AppendUvarint(b, id)
		}
	}
	return b
}

// errConfDecode is wrapped by every decoding error.
var errConfDecode = errors.New("malformed conf change entry")

type confReader struct {
	b   []byte
	err error
}

func (r *confReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("%w: bad %s", errConfDecode, what)
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *confReader) bytes(k uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if k > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: %s of %d bytes, %d left", errConfDecode, what, k, len(r.b))
		return nil
	}
	out := r.b[:k:k]
	r.b = r.b[k:]
	return out
}

func (r *confReader) ids(what string) []uint64 {
	k := r.uvarint(what + " count")
	if r.err != nil {
		return nil
	}
	// Each id takes at least one byte.
	if k > maxConfIDs || k > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: %d %s in %d bytes", errConfDecode, k, what, len(r.b))
		return nil
	}
	if k == 0 {
		return nil
	}
	out := make([]uint64, k)
	for i := range out {
		out[i] = r.uvarint(what)
	}
	return out
}

// EncodeConfChange is the Data of an EntryConfChange entry that makes
// change cc, resulting in configuration cs: what ProposeConfChange appends.
// Drivers need it only to build entries in tests and tools.
func EncodeConfChange(cc ConfChange, cs ConfState) []byte { return encodeConfChange(cc, cs) }

// DecodeConfChange reads the Data of an EntryConfChange entry: the change
// and the configuration it results in. Bytes that are not a valid encoding
// give an error wrapping ErrInvalidConfChange; it never panics.
func DecodeConfChange(data []byte) (ConfChange, ConfState, error) {
	if len(data) == 0 || data[0] != confEncodingV1 {
		return ConfChange{}, ConfState{}, fmt.Errorf("%w: %w: unknown encoding version", ErrInvalidConfChange, errConfDecode)
	}
	r := &confReader{b: data[1:]}
	var cc ConfChange
	k := r.uvarint("change count")
	if r.err == nil && (k > maxConfIDs || 2*k > uint64(len(r.b))) {
		r.err = fmt.Errorf("%w: %d changes in %d bytes", errConfDecode, k, len(r.b))
	}
	for i := uint64(0); r.err == nil && i < k; i++ {
		t := r.bytes(1, "change type")
		if r.err != nil {
			break
		}
		cc.Changes = append(cc.Changes, ConfChangeSingle{Type: ConfChangeType(t[0]), NodeID: r.uvarint("node id")})
	}
	if n := r.uvarint("context length"); r.err == nil && n > 0 {
		cc.Context = slices.Clone(r.bytes(n, "context"))
	}
	var cs ConfState
	cs.Voters = r.ids("voters")
	cs.VotersOutgoing = r.ids("outgoing voters")
	cs.Learners = r.ids("learners")
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errConfDecode, len(r.b))
	}
	if r.err != nil {
		return ConfChange{}, ConfState{}, fmt.Errorf("%w: %w", ErrInvalidConfChange, r.err)
	}
	if err := checkChanges(cc.Changes); err != nil {
		return ConfChange{}, ConfState{}, err
	}
	if err := validateConfState(cs); err != nil {
		return ConfChange{}, ConfState{}, fmt.Errorf("%w: %w", ErrInvalidConfChange, err)
	}
	if len(cs.Voters) == 0 {
		return ConfChange{}, ConfState{}, fmt.Errorf("%w: the resulting configuration has no voters", ErrInvalidConfChange)
	}
	return cc, cs, nil
}

// checkChanges refuses changes that are malformed whatever the
// configuration: an unknown type, a zero id, a node named twice.
func checkChanges(changes []ConfChangeSingle) error {
	seen := make(map[uint64]bool, len(changes))
	for _, c := range changes {
		if c.Type < ConfChangeAddLearner || c.Type > ConfChangeRemoveNode {
			return fmt.Errorf("%w: unknown change type %d", ErrInvalidConfChange, uint8(c.Type))
		}
		if c.NodeID == None {
			return fmt.Errorf("%w: %v of node 0", ErrInvalidConfChange, c.Type)
		}
		if seen[c.NodeID] {
			return fmt.Errorf("%w: node %d is changed twice in one change", ErrInvalidConfChange, c.NodeID)
		}
		seen[c.NodeID] = true
	}
	return nil
}

// validateConfState checks the invariants of ConfState: ids non-zero and
// unique within a list, learners neither incoming nor outgoing voters, and
// voters present whenever anyone is (only a node that has not joined yet
// has an empty configuration).
func validateConfState(cs ConfState) error {
	for _, l := range []struct {
		name string
		ids  []uint64
	}{{"voters", cs.Voters}, {"outgoing voters", cs.VotersOutgoing}, {"learners", cs.Learners}} {
		seen := make(map[uint64]bool, len(l.ids))
		for _, id := range l.ids {
			if id == None || seen[id] {
				return fmt.Errorf("%s %v hold a zero or repeated id", l.name, l.ids)
			}
			seen[id] = true
		}
	}
	for _, id := range cs.Learners {
		if slices.Contains(cs.Voters, id) || slices.Contains(cs.VotersOutgoing, id) {
			return fmt.Errorf("node %d is both a learner and a voter", id)
		}
	}
	if len(cs.Voters) == 0 && (len(cs.VotersOutgoing) > 0 || len(cs.Learners) > 0) {
		return fmt.Errorf("configuration %+v has members but no voters", cs)
	}
	return nil
}

// normConf returns a sorted copy of cs, so that configurations compare
// with confEqual and the node iterates members in a fixed order (a
// simulated run must replay from its seed).
func normConf(cs ConfState) ConfState {
	sorted := func(ids []uint64) []uint64 {
		if len(ids) == 0 {
			return nil
		}
		return slices.Sorted(slices.Values(ids))
	}
	return ConfState{Voters: sorted(cs.Voters), VotersOutgoing: sorted(cs.VotersOutgoing), Learners: sorted(cs.Learners)}
}

// confEqual reports whether two normalized configurations are the same.
func confEqual(a, b ConfState) bool {
	return slices.Equal(a.Voters, b.Voters) && slices.Equal(a.VotersOutgoing, b.VotersOutgoing) && slices.Equal(a.Learners, b.Learners)
}

// IsJoint reports whether cs is a joint configuration, in which every
// quorum decision needs a majority of both Voters and VotersOutgoing.
func (cs ConfState) IsJoint() bool { return len(cs.VotersOutgoing) > 0 }

// IDs returns every member of cs (voters of both halves and learners),
// sorted, each once.
func (cs ConfState) IDs() []uint64 {
	out := slices.Concat(cs.Voters, cs.VotersOutgoing, cs.Learners)
	slices.Sort(out)
	return slices.Compact(out)
}

// isVoter reports whether id votes in either half of cs.
func (cs ConfState) isVoter(id uint64) bool {
	return slices.Contains(cs.Voters, id) || slices.Contains(cs.VotersOutgoing, id)
}

// isMember reports whether id is a voter or a learner of cs.
func (cs ConfState) isMember(id uint64) bool {
	return cs.isVoter(id) || slices.Contains(cs.Learners, id)
}

// halves returns the voter sets whose majorities a quorum decision needs:
// one, or two while joint.
func (cs ConfState) halves() [][]uint64 {
	if cs.IsJoint() {
		return [][]uint64{cs.Voters, cs.VotersOutgoing}
	}
	return [][]uint64{cs.Voters}
}

// quorumIndex returns the highest value a majority of every half has
// reached, where value gives each voter's value (a match index, a read
// round). Only voters count: learners and non-members never do.
func (cs ConfState) quorumIndex(value func(id uint64) uint64) uint64 {
	res := uint64(0)
	for i, half := range cs.halves() {
		if len(half) == 0 {
			return 0
		}
		vals := make([]uint64, len(half))
		for j, id := range half {
			vals[j] = value(id)
		}
		slices.Sort(vals)
		q := vals[len(vals)-(len(vals)/2+1)]
		if i == 0 || q < res {
			res = q
		}
	}
	return res
}

// voteResult is the outcome of a campaign so far.
type voteResult uint8

const (
	votePending voteResult = iota
	voteWon
	voteLost
)

// tally counts the answers in votes (id -> granted) by the rules of cs: a
// campaign is won with a majority of every half and lost once any half
// can no longer give one. Answers from non-voters are ignored.
func (cs ConfState) tally(votes map[uint64]bool) voteResult {
	res := voteWon
	for _, half := range cs.halves() {
		if len(half) == 0 {
			return voteLost
		}
		yes, no := 0, 0
		for _, id := range half {
			if g, ok := votes[id]; ok {
				if g {
					yes++
				} else {
					no++
				}
			}
		}
		q := len(half)/2 + 1
		switch {
		case no > len(half)-q:
			return voteLost
		case yes < q:
			res = votePending
		}
	}
	return res
}

// hasQuorum reports whether the voters for which ok holds form a majority
// of every half.
func (cs ConfState) hasQuorum(ok func(id uint64) bool) bool {
	for _, half := range cs.halves() {
		k := 0
		for _, id := range half {
			if ok(id) {
				k++
			}
		}
		if k < len(half)/2+1 {
			return false
		}
	}
	return true
}

// applyChanges returns the configuration that changes make of cs, which
// is not joint, or a typed error: ErrAlreadyMember, ErrUnknownPeer,
// ErrInvalidConfChange, ErrLastVoter. More than one voter changed makes a
// joint configuration whose outgoing half is cs's voters.
func applyChanges(cs ConfState, changes []ConfChangeSingle) (ConfState, error) {
	if err := checkChanges(changes); err != nil {
		return ConfState{}, err
	}
	voters := slices.Clone(cs.Voters)
	learners := slices.Clone(cs.Learners)
	for _, c := range changes {
		isVoter, isLearner := slices.Contains(voters, c.NodeID), slices.Contains(learners, c.NodeID)
		switch c.Type {
		case ConfChangeAddLearner:
			if isVoter || isLearner {
				return ConfState{}, fmt.Errorf("%w: node %d", ErrAlreadyMember, c.NodeID)
			}
			learners = append(learners, c.NodeID)
		case ConfChangeAddVoter:
			switch {
			case isVoter:
				return ConfState{}, fmt.Errorf("%w: node %d is a voter already", ErrAlreadyMember, c.NodeID)
			case !isLearner:
				return ConfState{}, fmt.Errorf("%w: node %d is not a learner; a new node joins as a learner first", ErrInvalidConfChange, c.NodeID)
			}
			learners = slices.DeleteFunc(learners, func(id uint64) bool { return id == c.NodeID })
			voters = append(voters, c.NodeID)
		case ConfChangeRemoveNode:
			if !isVoter && !isLearner {
				return ConfState{}, fmt.Errorf("%w: node %d is not a member", ErrUnknownPeer, c.NodeID)
			}
			voters = slices.DeleteFunc(voters, func(id uint64) bool { return id == c.NodeID })
			learners = slices.DeleteFunc(learners, func(id uint64) bool { return id == c.NodeID })
		}
	}
	if len(voters) == 0 {
		return ConfState{}, fmt.Errorf("%w: the change leaves no voter", ErrLastVoter)
	}
	out := normConf(ConfState{Voters: voters, Learners: learners})
	changed := 0
	for _, id := range out.Voters {
		if !slices.Contains(cs.Voters, id) {
			changed++
		}
	}
	for _, id := range cs.Voters {
		if !slices.Contains(out.Voters, id) {
			changed++
		}
	}
	if changed > 1 {
		out.VotersOutgoing = slices.Clone(cs.Voters)
	}
	return out, nil
}

// leaveJoint is the configuration that leaving the joint cs makes.
func leaveJoint(cs ConfState) ConfState {
	return normConf(ConfState{Voters: cs.Voters, Learners: cs.Learners})
}
