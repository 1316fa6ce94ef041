package raftkv

import (
	"errors"

	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/kvstate"
)

// Errors returned by KV operations. Compare with errors.Is. A Client
// reports the same errors as the DB: each crosses the client API as a
// status code and a reason (see clientpb's kv.proto), never as text.
//
// What a write's error says about the write:
//
//   - nil: applied exactly once.
//   - ErrNotFound: an Update or Remove found no key; nothing was written.
//   - ErrEmptyKey, ErrKeyTooLarge, ErrValueTooLarge: refused before being
//     sent; nothing was written.
//   - ErrOutcomeUnknown: the write may have been applied (once) or not, and
//     the database will not retry it; read the key to learn which. The
//     error also matches its cause: ErrUnavailable, ErrClosed or
//     ErrSessionExpired (see each).
//   - ErrUnavailable or ErrClosed without ErrOutcomeUnknown: no copy of the
//     write reached a leader that could have applied it; nothing was
//     written.
//   - ErrSessionExpired without ErrOutcomeUnknown: a network client's
//     session was refused before any copy of the write could run; nothing
//     was written. (DB and Client retry such a write under a new session
//     themselves.)
var (
	// ErrNotFound: Get, Update or Remove of a key that does not exist.
	// Update and Remove then change nothing.
	ErrNotFound = apiwire.ErrNotFound
	// ErrClosed: the handle was closed. A write in flight when Close was
	// called also matches ErrOutcomeUnknown when it had been sent: it may
	// have been applied, or may still be.
	ErrClosed = apiwire.ErrClosed
	// ErrUnavailable: no leader with a quorum answered before the context
	// (or the write retry window, maxWriteRetry) ended. The error also wraps
	// the context's error. A write that fails this way after it was sent
	// also matches ErrOutcomeUnknown: it may have been applied, and a copy
	// still in a leader's log may yet be applied, until its session expires.
	ErrUnavailable = apiwire.ErrUnavailable
	// ErrOutcomeUnknown: the write may or may not have been applied; it was
	// applied at most once, and no retry by this handle will apply it again.
	// It is always returned together with its cause (ErrUnavailable,
	// ErrClosed or ErrSessionExpired), which errors.Is also matches.
	ErrOutcomeUnknown = apiwire.ErrOutcomeUnknown
	// ErrEmptyKey, ErrKeyTooLarge and ErrValueTooLarge refuse bad input
	// before anything is proposed.
	// Keys are 1 to MaxKeySize bytes; values at most the configuration's
	// maxValueSize.
	ErrEmptyKey      = apiwire.ErrEmptyKey
	ErrKeyTooLarge   = apiwire.ErrKeyTooLarge
	ErrValueTooLarge = apiwire.ErrValueTooLarge
	// ErrStaleRequest: a write carried a sequence number older than its
	// session's last applied command (a late duplicate); it was not applied
	// now. Only a network client that sends several writes at once on one
	// session sees it; DB and Client never do.
	ErrStaleRequest = apiwire.ErrStaleRequest
	// ErrSessionExpired: the cluster holds no live session for the write's
	// client id (it expired, or was never registered), so the write was not
	// executed now and no later copy of it will be. When an earlier copy had
	// been sent, that copy may have run before the session expired: the
	// error then also matches ErrOutcomeUnknown.
	ErrSessionExpired = apiwire.ErrSessionExpired
	// ErrConfChangeInProgress: a membership change was refused because
	// another one is not committed yet (Raft changes one at a time).
	// Nothing changed; ask again once it is.
	ErrConfChangeInProgress = apiwire.ErrConfChangeInProgress
	// ErrAlreadyMember: AddLearner named a node that is a member already,
	// or PromoteLearner one that is a voter already. Nothing changed.
	ErrAlreadyMember = apiwire.ErrAlreadyMember
	// ErrUnknownMember: PromoteLearner or RemoveMember named a node that is
	// not a member (or, for a promotion, not a learner). Nothing changed.
	ErrUnknownMember = apiwire.ErrUnknownMember
	// ErrLastVoter: the change would leave the cluster without a voter.
	// Nothing changed.
	ErrLastVoter = apiwire.ErrLastVoter
	// ErrLearnerBehind: PromoteLearner named a learner whose log is still
	// far behind the leader's (more than raftlogic's MaxLearnerLag
	// entries); promoting it now could cost the cluster its availability.
	// Nothing changed; ask again once it caught up (Members shows its lag).
	ErrLearnerBehind = apiwire.ErrLearnerBehind
	// ErrWouldLoseQuorum: the configuration the change makes would not
	// have a quorum of voters the leader heard from recently, so the
	// cluster would stop. Nothing changed.
	ErrWouldLoseQuorum = apiwire.ErrWouldLoseQuorum
	// ErrInvalidMemberChange: a membership change that cannot be made:
	// node id 0, an added node without a peer address, an address too
	// long, or a change the configuration does not allow (promoting a node
	// that is not a learner). Nothing changed; the message says which.
	ErrInvalidMemberChange = apiwire.ErrInvalidMemberChange
	// ErrInvalidTransfer: TransferLeadership named a node that is not a
	// voting member of the cluster, or the node that already leads.
	// Nothing changed.
	ErrInvalidTransfer = apiwire.ErrInvalidTransfer
	// ErrTransferInProgress: the leader is already handing leadership to
	// another node than the one asked for. Nothing changed; ask again once
	// that transfer ends.
	ErrTransferInProgress = apiwire.ErrTransferInProgress
	// ErrTransferFailed: a leadership transfer began but the old leader did
	// not see the target take over: it saw no sign of the target winning
	// within an election timeout (it then leads on, as far as it knows),
	// another node won instead, no new leader was heard of in time, or the
	// old leader stopped. Unless another node won, the target may have
	// won unseen (an old leader cut off from its followers' answers cannot
	// tell); Status tells who leads now. Also returned, with nothing changed, when a transfer
	// to 0 finds no other node that answered the leader recently.
	ErrTransferFailed = apiwire.ErrTransferFailed
	// ErrWrongCluster: Open found data it must not use with this
	// configuration: a data directory of another node or cluster, or an
	// embedded cluster whose data has other members than serversNum says
	// (change members with the membership calls on a served cluster).
	// Nothing was changed.
	ErrWrongCluster = actors.ErrWrongCluster
	// ErrInvalidOption: an option given to Open cannot be used.
	ErrInvalidOption = errors.New("raftkv: invalid option")
)

// MaxKeySize is the longest key in bytes (64,000): Badger's own key limit,
// less the prefix the state machine stores a key under.
const MaxKeySize = kvstate.MaxKeySize
