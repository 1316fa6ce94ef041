package kvstate

import "errors"

// Sentinel errors. Compare with errors.Is: the errors returned wrap them with
// detail (which key, which entry, which limit).
var (
	// ErrNotFound answers a Get, Update or Remove of a key that does not
	// exist. An Update or Remove that fails this way writes nothing.
	ErrNotFound = errors.New("kvstate: key not found")

	// ErrBadCommand marks bytes that do not decode as a Command. Apply records
	// it in the entry's Result and still advances the applied index, so every
	// replica skips the same garbage the same way instead of stopping.
	ErrBadCommand = errors.New("kvstate: malformed command")

	// ErrEmptyKey refuses the empty key: it has no use and would make
	// "k/" both a prefix and a key.
	ErrEmptyKey = errors.New("kvstate: empty key")

	// ErrKeyTooLarge refuses a key longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("kvstate: key too large")

	// ErrValueTooLarge refuses a value longer than the configured limit.
	ErrValueTooLarge = errors.New("kvstate: value too large")

	// ErrStaleSequence answers a command whose sequence number is older than
	// the last one applied for its client. It was not executed now, and the
	// state machine no longer remembers what it answered the first time.
	ErrStaleSequence = errors.New("kvstate: stale sequence number")

	// ErrSessionExpired answers a command whose session the state machine
	// holds no live record of: it expired (see Options.SessionTTL) or was
	// never registered. The command was NOT executed now, and no later copy
	// of it will be (an expired session never comes back); but if it is a
	// retry, an earlier copy may have run before the session expired, so
	// its outcome is unknown. A client registers a new session (OpRegister)
	// before sending more.
	ErrSessionExpired = errors.New("kvstate: client session expired")

	// ErrBadSnapshot marks a snapshot image that is truncated, corrupted or
	// of an unknown format. Restore leaves the current state unchanged when
	// it returns this error.
	ErrBadSnapshot = errors.New("kvstate: bad snapshot")
)

// Errors no other package tells apart: each stops the node, and the message
// says why. This package's tests compare them.
var (
	// errEntryOrder refuses an Apply whose entries are not consecutive from
	// the applied index, or whose terms go backwards. Applying them would
	// skip or reorder commands; it is a bug in the caller.
	errEntryOrder = errors.New("kvstate: entries out of order")

	// errCorruptState marks state-machine records in the database that this
	// code cannot read (a damaged record, or a layout version other than
	// the one it writes).
	errCorruptState = errors.New("kvstate: corrupt stored state")

	// errRestoreUnfinished is returned by every method after a Restore failed
	// past its point of no return (a database error while switching to the
	// new image). Reopening the State finishes the restore.
	errRestoreUnfinished = errors.New("kvstate: restore unfinished, reopen to complete it")
)
