package raftlogic

// TEMPORARY STUB (branch wiring only): the agreed membership API, replaced
// by branch member's implementation at merge. Not for main.

import (
	"encoding/json"
	"errors"
)

type ConfChangeType uint8

const (
	ConfChangeAddLearner ConfChangeType = iota + 1
	ConfChangeAddVoter
	ConfChangeRemoveNode
)

type ConfChangeSingle struct {
	Type   ConfChangeType
	NodeID uint64
}

type ConfChange struct {
	Changes []ConfChangeSingle
	Context []byte
}

type stubCC struct {
	CC ConfChange
	CS ConfState
}

func EncodeConfChange(cc ConfChange, cs ConfState) []byte {
	b, _ := json.Marshal(stubCC{cc, cs})
	return b
}

func DecodeConfChange(data []byte) (ConfChange, ConfState, error) {
	var s stubCC
	if err := json.Unmarshal(data, &s); err != nil {
		return ConfChange{}, ConfState{}, errors.New("stub: bad conf change")
	}
	return s.CC, s.CS, nil
}

var (
	ErrInvalidConfChange    = errors.New("stub")
	ErrConfChangeInProgress = errors.New("stub")
	ErrAlreadyMember        = errors.New("stub")
	ErrLastVoter            = errors.New("stub")
	ErrLearnerBehind        = errors.New("stub")
	ErrWouldLoseQuorum      = errors.New("stub")
)

func (n *Node) ProposeConfChange(cc ConfChange) (uint64, uint64, error) {
	return 0, 0, ErrInvalidConfChange
}

type MemberStatus struct {
	ID                       uint64
	Voter, Outgoing, Learner bool
	Match                    uint64
}
