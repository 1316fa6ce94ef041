package raftkv

import (
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/kvstate"
)

// Errors returned by KV operations. Compare with errors.Is.
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
	ErrNotFound = errors.New("raftkv: key not found")
	// ErrClosed: the handle was closed. A write in flight when Close was
	// called also matches ErrOutcomeUnknown when it had been sent: it may
	// have been applied, or may still be.
	ErrClosed = errors.New("raftkv: database is closed")
	// ErrUnavailable: no leader with a quorum answered before the context
	// (or the write retry window, maxWriteRetry) ended. The error also wraps
	// the context's error. A write that fails this way after it was sent
	// also matches ErrOutcomeUnknown: it may have been applied, and a copy
	// still in a leader's log may yet be applied, until its session expires.
	ErrUnavailable = errors.New("raftkv: cluster unavailable")
	// ErrOutcomeUnknown: the write may or may not have been applied; it was
	// applied at most once, and no retry by this handle will apply it again.
	// It is always returned together with its cause (ErrUnavailable,
	// ErrClosed or ErrSessionExpired), which errors.Is also matches.
	ErrOutcomeUnknown = errors.New("raftkv: write outcome unknown")
	// ErrEmptyKey, ErrKeyTooLarge and ErrValueTooLarge refuse bad input
	// before anything is proposed.
	ErrEmptyKey      = kvstate.ErrEmptyKey
	ErrKeyTooLarge   = kvstate.ErrKeyTooLarge
	ErrValueTooLarge = kvstate.ErrValueTooLarge
	// ErrStaleRequest: a write carried a sequence number older than its
	// session's last applied command (a late duplicate); it was not applied
	// now. Only a network client that sends several writes at once on one
	// session sees it; DB and Client never do.
	ErrStaleRequest = errors.New("raftkv: stale request")
	// ErrSessionExpired: the cluster holds no live session for the write's
	// client id (it expired, or was never registered), so the write was not
	// executed now and no later copy of it will be. When an earlier copy had
	// been sent, that copy may have run before the session expired: the
	// error then also matches ErrOutcomeUnknown.
	ErrSessionExpired = errors.New("raftkv: client session expired")
	// ErrInvalidOption: an option given to Open cannot be used.
	ErrInvalidOption = errors.New("raftkv: invalid option")
)

// outcomeUnknown marks err (ErrUnavailable, ErrClosed or ErrSessionExpired)
// as the end of a write that may have been applied.
func outcomeUnknown(err error) error {
	if errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	return fmt.Errorf("%w (%w: it may or may not have been applied)", err, ErrOutcomeUnknown)
}
