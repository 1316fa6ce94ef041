package raftkv

import (
	"errors"

	"github.com/raftkv/raftkv/kvstate"
)

// Errors returned by KV operations. Compare with errors.Is.
var (
	// ErrNotFound: Get, Update or Remove of a key that does not exist.
	// Update and Remove then change nothing.
	ErrNotFound = errors.New("raftkv: key not found")
	// ErrClosed: the database was closed.
	ErrClosed = errors.New("raftkv: database is closed")
	// ErrUnavailable: no leader with a quorum could be reached before the
	// context ended. The error also wraps the context's error. A write that
	// fails this way may or may not have been applied.
	ErrUnavailable = errors.New("raftkv: cluster unavailable")
	// ErrEmptyKey, ErrKeyTooLarge and ErrValueTooLarge refuse bad input
	// before anything is proposed.
	ErrEmptyKey      = kvstate.ErrEmptyKey
	ErrKeyTooLarge   = kvstate.ErrKeyTooLarge
	ErrValueTooLarge = kvstate.ErrValueTooLarge
	// ErrStaleRequest: a write carried a sequence number older than its
	// session's last applied command (a late duplicate); it was not applied.
	ErrStaleRequest = errors.New("raftkv: stale request")
	// ErrSessionExpired: a write's client session was forgotten by the
	// cluster; it was not applied. Retry it under a new session.
	ErrSessionExpired = errors.New("raftkv: client session expired")
	// ErrInvalidOption: an option given to Open cannot be used.
	ErrInvalidOption = errors.New("raftkv: invalid option")
)
