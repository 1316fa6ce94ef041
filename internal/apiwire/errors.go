package apiwire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The API's errors; the root package re-exports them and documents what
// each says about a write.
var (
	ErrNotFound       = errors.New("raftkv: key not found")
	ErrClosed         = errors.New("raftkv: database is closed")
	ErrUnavailable    = errors.New("raftkv: cluster unavailable")
	ErrOutcomeUnknown = errors.New("raftkv: write outcome unknown")
	ErrEmptyKey       = errors.New("raftkv: empty key")
	ErrKeyTooLarge    = errors.New("raftkv: key too large")
	ErrValueTooLarge  = errors.New("raftkv: value too large")
	ErrStaleRequest   = errors.New("raftkv: stale request")
	ErrSessionExpired = errors.New("raftkv: client session expired")
	// A membership change's refusals.
	ErrConfChangeInProgress = errors.New("raftkv: membership change in progress")
	ErrAlreadyMember        = errors.New("raftkv: already a member")
	ErrUnknownMember        = errors.New("raftkv: not a member")
	ErrLastVoter            = errors.New("raftkv: no voter would be left")
	ErrLearnerBehind        = errors.New("raftkv: learner has not caught up")
	ErrWouldLoseQuorum      = errors.New("raftkv: the new configuration could not reach a quorum")
	ErrInvalidMemberChange  = errors.New("raftkv: invalid membership change")
	// Leadership transfer's outcomes.
	ErrInvalidTransfer    = errors.New("raftkv: invalid leadership transfer")
	ErrTransferInProgress = errors.New("raftkv: leadership transfer in progress")
	ErrTransferFailed     = errors.New("raftkv: leadership transfer failed")
	// ErrInvalidRequest: a request the server refused as malformed. The
	// root does not export it: its own requests are never malformed.
	ErrInvalidRequest = errors.New("raftkv: invalid request")
)

// Class says what a caller does with an outcome.
type Class uint8

const (
	// Final: the request's answer; asking again anywhere gets the same.
	Final Class = iota
	// Redirect: this node cannot serve requests now (it does not lead, is
	// handing leadership over, or is stopping); ask the leader it names.
	Redirect
	// Resend: the request was not applied and never will be; send it again.
	Resend
	// ResendUnknown: the request may still be applied; send the same copy
	// again (its session makes the repeat harmless) to learn its outcome.
	ResendUnknown
	// Transient: the node or the link to it failed; try another node. A
	// write may have been proposed.
	Transient
)

// domain is the ErrorInfo domain of the client API's errors.
const domain = "raftkv.v1"

// causeKey is the ErrorInfo metadata key naming the reason an
// OUTCOME_UNKNOWN follows.
const causeKey = "cause"

const (
	// noWire: no node answers this outcome with a code (it is decided
	// before a request is sent, or after the answer).
	noWire raftpb.ErrorCode = -1
	// noGRPC: the client API never returns this outcome (routing answers,
	// which the server resolves itself).
	noGRPC codes.Code = 1 << 31
)

// row is one outcome of a request and every form it takes.
type row struct {
	// err is the API's error; nil for success, for routing answers and for
	// errors without a sentinel.
	err error
	// state is kvstate's error for the same outcome, when the state
	// machine decides it.
	state error
	// wire is the code a node answers with.
	wire raftpb.ErrorCode
	// grpc is the client API's status code, and reason the ErrorInfo
	// reason that tells the rows sharing a code apart ("" for statuses
	// gRPC makes itself, which carry none).
	grpc   codes.Code
	reason string
	// byCode: a status of this code without our detail still means this
	// row (gRPC's own statuses, servers older than the details).
	byCode bool
	class  Class
}

// table is every outcome. Order matters where one error matches several
// rows (an ErrUnavailable wraps the context's error; a malformed command's
// error may wrap kvstate.ErrEmptyKey): the first match wins.
var table = [...]row{
	{wire: raftpb.ErrorCode_ERROR_CODE_OK, grpc: codes.OK, class: Final},
	{err: ErrNotFound, state: kvstate.ErrNotFound, wire: raftpb.ErrorCode_ERROR_CODE_NOT_FOUND,
		grpc: codes.NotFound, reason: "NOT_FOUND", byCode: true, class: Final},
	{err: ErrInvalidRequest, state: kvstate.ErrBadCommand, wire: raftpb.ErrorCode_ERROR_CODE_BAD_REQUEST,
		grpc: codes.InvalidArgument, reason: "INVALID_REQUEST", byCode: true, class: Final},
	// Bad keys and values are refused before anything is sent to a node.
	{err: ErrEmptyKey, state: kvstate.ErrEmptyKey, wire: noWire,
		grpc: codes.InvalidArgument, reason: "EMPTY_KEY", class: Final},
	{err: ErrKeyTooLarge, state: kvstate.ErrKeyTooLarge, wire: noWire,
		grpc: codes.InvalidArgument, reason: "KEY_TOO_LARGE", class: Final},
	{err: ErrValueTooLarge, state: kvstate.ErrValueTooLarge, wire: noWire,
		grpc: codes.InvalidArgument, reason: "VALUE_TOO_LARGE", class: Final},
	// gRPC refuses a message over a size limit itself: another node or a
	// retry would refuse it again.
	{err: ErrValueTooLarge, wire: noWire, grpc: codes.ResourceExhausted, byCode: true, class: Final},
	{err: ErrStaleRequest, state: kvstate.ErrStaleSequence, wire: raftpb.ErrorCode_ERROR_CODE_STALE_REQUEST,
		grpc: codes.Aborted, reason: "STALE_REQUEST", byCode: true, class: Final},
	{err: ErrSessionExpired, state: kvstate.ErrSessionExpired, wire: raftpb.ErrorCode_ERROR_CODE_SESSION_EXPIRED,
		grpc: codes.FailedPrecondition, reason: "SESSION_EXPIRED", byCode: true, class: Final},
	// A membership change's refusals: nothing changed (see actors'
	// members.go).
	{err: ErrConfChangeInProgress, wire: raftpb.ErrorCode_ERROR_CODE_CONF_CHANGE_IN_PROGRESS,
		grpc: codes.FailedPrecondition, reason: "CONF_CHANGE_IN_PROGRESS", class: Final},
	{err: ErrAlreadyMember, wire: raftpb.ErrorCode_ERROR_CODE_ALREADY_MEMBER,
		grpc: codes.AlreadyExists, reason: "ALREADY_MEMBER", class: Final},
	{err: ErrUnknownMember, wire: raftpb.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER,
		grpc: codes.NotFound, reason: "UNKNOWN_MEMBER", class: Final},
	{err: ErrLastVoter, wire: raftpb.ErrorCode_ERROR_CODE_LAST_VOTER,
		grpc: codes.FailedPrecondition, reason: "LAST_VOTER", class: Final},
	{err: ErrLearnerBehind, wire: raftpb.ErrorCode_ERROR_CODE_LEARNER_BEHIND,
		grpc: codes.FailedPrecondition, reason: "LEARNER_BEHIND", class: Final},
	{err: ErrWouldLoseQuorum, wire: raftpb.ErrorCode_ERROR_CODE_WOULD_LOSE_QUORUM,
		grpc: codes.FailedPrecondition, reason: "WOULD_LOSE_QUORUM", class: Final},
	{err: ErrInvalidMemberChange, wire: raftpb.ErrorCode_ERROR_CODE_INVALID_CONF_CHANGE,
		grpc: codes.InvalidArgument, reason: "INVALID_MEMBER_CHANGE", class: Final},
	// A leadership transfer's refusals and failure (see actors' transfer.go).
	{err: ErrInvalidTransfer, wire: raftpb.ErrorCode_ERROR_CODE_TRANSFER_TARGET,
		grpc: codes.InvalidArgument, reason: "INVALID_TRANSFER", class: Final},
	{err: ErrTransferInProgress, wire: raftpb.ErrorCode_ERROR_CODE_TRANSFER_BUSY,
		grpc: codes.FailedPrecondition, reason: "TRANSFER_IN_PROGRESS", class: Final},
	{err: ErrTransferFailed, wire: raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED,
		grpc: codes.Aborted, reason: "TRANSFER_FAILED", class: Final},
	// A final answer whose write may have run earlier (see ToStatus).
	// UNKNOWN without the detail is gRPC's own, not this.
	{err: ErrOutcomeUnknown, wire: noWire, grpc: codes.Unknown, reason: "OUTCOME_UNKNOWN", class: Final},
	{err: context.DeadlineExceeded, wire: noWire, grpc: codes.DeadlineExceeded, byCode: true, class: Transient},
	{err: context.Canceled, wire: noWire, grpc: codes.Canceled, byCode: true, class: Transient},
	{err: ErrUnavailable, wire: noWire, grpc: codes.Unavailable, reason: "UNAVAILABLE", byCode: true, class: Transient},
	{err: ErrClosed, wire: noWire, grpc: codes.Unavailable, reason: "CLOSED", class: Transient},
	// Routing answers: the router acts on them and never returns them.
	{wire: raftpb.ErrorCode_ERROR_CODE_NOT_LEADER, grpc: noGRPC, class: Redirect},
	{wire: raftpb.ErrorCode_ERROR_CODE_TRANSFERRING, grpc: noGRPC, class: Redirect},
	{wire: raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, grpc: noGRPC, class: Redirect},
	{wire: raftpb.ErrorCode_ERROR_CODE_TIMEOUT, grpc: noGRPC, class: ResendUnknown},
	{wire: raftpb.ErrorCode_ERROR_CODE_DROPPED, grpc: noGRPC, class: Resend},
	// A node that failed a request (its storage, or a request meant for
	// another cluster) says why in its message; asking again changes
	// nothing. The client API reports it as INTERNAL (the last row).
	{wire: raftpb.ErrorCode_ERROR_CODE_INTERNAL, grpc: noGRPC, class: Final},
	{wire: raftpb.ErrorCode_ERROR_CODE_CLUSTER_MISMATCH, grpc: noGRPC, class: Final},
	// Anything else. A client retries it at another node: the server
	// that failed it may be the only one that would.
	{wire: noWire, grpc: codes.Internal, byCode: true, class: Transient},
}

// internalRow is the last row, for errors no other row matches.
var internalRow = &table[len(table)-1]

// rowOfWire returns the row of a node's answer code, or nil for a code
// this build does not know (a newer node's).
func rowOfWire(code raftpb.ErrorCode) *row {
	for i := range table {
		if table[i].wire == code {
			return &table[i]
		}
	}
	return nil
}

// WireCode is the code a node answers a command with whose state machine
// result is err (nil: success).
func WireCode(err error) raftpb.ErrorCode {
	if err == nil {
		return raftpb.ErrorCode_ERROR_CODE_OK
	}
	for _, r := range table {
		if r.state != nil && r.wire != noWire && errors.Is(err, r.state) {
			return r.wire
		}
	}
	return raftpb.ErrorCode_ERROR_CODE_INTERNAL
}

// WireClass says what a router does with a node's answer code. A code this
// build does not know is final: its message says what it means.
func WireClass(code raftpb.ErrorCode) Class {
	if r := rowOfWire(code); r != nil {
		return r.class
	}
	return Final
}

// FromWire is the API's error for a node's final answer (code and its
// message); nil for success.
func FromWire(code raftpb.ErrorCode, msg string) error {
	r := rowOfWire(code)
	switch {
	case code == raftpb.ErrorCode_ERROR_CODE_OK:
		return nil
	case r == nil || r.err == nil:
		return fmt.Errorf("raftkv: %s: %s", code, msg)
	}
	return restate(r, msg)
}

// FromState is the API's error for one of kvstate's (a refused key or
// value), keeping its detail; other errors are returned as they are.
func FromState(err error) error {
	for i, r := range table {
		if r.state != nil && errors.Is(err, r.state) {
			return restate(&table[i], err.Error())
		}
	}
	return err
}

// restate is r's API error with the detail that text, the state machine's
// rendering of r.state, adds to it: "kvstate: key too large: key of 70000
// bytes ..." becomes "raftkv: key too large: key of 70000 bytes ...". The
// outcome was already classified (by code or errors.Is); only the words
// are reused.
func restate(r *row, text string) error {
	if r.state != nil {
		if rest, ok := strings.CutPrefix(text, r.state.Error()); ok {
			return &apiError{is: []error{r.err}, msg: r.err.Error() + rest}
		}
	}
	if text == "" || text == r.err.Error() {
		return r.err
	}
	return fmt.Errorf("%w: %s", r.err, text)
}

// apiError is an API error in the words of whoever decided it (the state
// machine, a server): it matches the API's errors in is.
type apiError struct {
	is  []error
	msg string
}

func (e *apiError) Error() string   { return e.msg }
func (e *apiError) Unwrap() []error { return e.is }

// OutcomeUnknown marks err (ErrUnavailable, ErrClosed or ErrSessionExpired)
// as the end of a write that may have been applied.
func OutcomeUnknown(err error) error {
	if errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	return fmt.Errorf("%w (%w: it may or may not have been applied)", err, ErrOutcomeUnknown)
}

// rowOfError is the first row whose error err matches, leaving out
// ErrOutcomeUnknown, which always travels with its cause (see ToStatus).
func rowOfError(err error) *row {
	for i, r := range table {
		if r.err != nil && r.err != ErrOutcomeUnknown && r.grpc != noGRPC && errors.Is(err, r.err) {
			return &table[i]
		}
	}
	return internalRow
}

// rowOfReason is the row of a client API error reason, or nil.
func rowOfReason(reason string) *row {
	for i, r := range table {
		if reason != "" && r.reason == reason {
			return &table[i]
		}
	}
	return nil
}

// rowOfCode is the row a status of code without our detail means, or nil.
func rowOfCode(code codes.Code) *row {
	for i, r := range table {
		if r.byCode && r.grpc == code {
			return &table[i]
		}
	}
	return nil
}

// ToStatus is the client API's status for err, with an ErrorInfo detail
// naming its row. An error whose outcome is unknown travels as its cause
// when the cause is not final (UNAVAILABLE: the client retries with the
// same session and learns the outcome), and as OUTCOME_UNKNOWN (UNKNOWN,
// with the cause's reason) when it is (an expired session: no retry can
// tell).
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	r := rowOfError(err)
	info := &errdetails.ErrorInfo{Domain: domain, Reason: r.reason}
	if errors.Is(err, ErrOutcomeUnknown) && r.class == Final {
		cause := r.reason
		r = rowOfReason("OUTCOME_UNKNOWN")
		info = &errdetails.ErrorInfo{Domain: domain, Reason: r.reason, Metadata: map[string]string{causeKey: cause}}
	}
	st := status.New(r.grpc, err.Error())
	if info.Reason != "" {
		if withInfo, derr := st.WithDetails(info); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

// FromStatus reads an error of a client API call: the API's error and
// whether it is the call's final answer. A failure to retry elsewhere
// (the network's, a node's without a quorum, an unknown status) is not
// final and is returned as it is.
func FromStatus(err error) (_ error, final bool) {
	if err == nil {
		return nil, true
	}
	st, ok := status.FromError(err)
	if !ok {
		return err, false
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok && i.GetDomain() == domain {
			info = i
		}
	}
	r := rowOfReason(info.GetReason())
	if r == nil {
		r = rowOfCode(st.Code())
	}
	if r == nil || r.class != Final {
		return err, false
	}
	if info == nil {
		return fmt.Errorf("%w: %s", r.err, st.Message()), true
	}
	is := []error{r.err}
	if r.err == ErrOutcomeUnknown {
		if cause := rowOfReason(info.GetMetadata()[causeKey]); cause != nil && cause.err != nil {
			is = append(is, cause.err)
		}
	}
	return &apiError{is: is, msg: st.Message()}, true
}
