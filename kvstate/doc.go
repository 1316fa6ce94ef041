// Package kvstate is the key-value state machine of one RaftKV node.
//
// It turns committed Raft entries into key-value data stored in a Badger
// database that someone else opened (with persist.OpenDB; the Raft log has
// a database of its own). kvstate owns exactly two key prefixes and never
// reads or writes any other:
//
//	k/<user key>               user value
//	m/version                  layout version of this package's records ("2")
//	m/applied                  applied index and term (16 bytes, big-endian)
//	m/s/<client id, 8 bytes>   client session: last seq, its result, last index
//	                           (the id is the index of the entry that registered it)
//	m/l/<index, 8 bytes>       session expiry index: the client last seen at index
//	m/c/<member id, 8 bytes>   cluster member: its peer and client addresses (members.go)
//	m/conf                     the Raft configuration as of the applied index (members.go)
//	m/restore                  present only while a Restore is switching images
//	m/x/<real key>             staging area of a Restore in progress
//
// What it guarantees:
//
//   - Apply writes an entry's effects and the applied index that covers them
//     in the same Badger transaction, so after a crash the state is exactly
//     that of some applied prefix of the log: no entry is applied twice and
//     none is skipped. Re-applying entries at or below the applied index is
//     a no-op.
//   - Apply does not commit each batch: its writes stay in one pending
//     transaction across calls, which Flush commits (synced), and Apply
//     itself once it has grown past a bound well below Badger's
//     transaction limit. Applied and Get see pending writes; Durable is the
//     index of the last commit, where a crash leaves the state, so the
//     caller keeps the log from Durable on and applies it again after a
//     crash (with the same results). A failure or panic in Apply discards
//     the whole pending transaction: Applied falls back to Durable.
//   - Everything Apply decides depends only on the entries and the state,
//     never on the clock, the batch boundaries or the Badger options, so all
//     replicas that apply the same log hold the same state. (Options must be
//     the same on every replica: SessionTTL changes what a command answers.)
//   - Sessions are registered through the log (OpRegister). Each remembers
//     the last sequence number applied and its answer, so a retried command
//     runs at most once and gets its first answer back (see
//     Options.SessionTTL for how long). A command without a live session
//     runs never, however late it arrives: it answers ErrSessionExpired.
//   - Snapshot writes a consistent point-in-time image; Restore replaces the
//     state with one, and a crash part way through never leaves a half state
//     that looks complete (see Restore). Both stream, so memory does not
//     grow with the state; VerifySnapshot checks an image without writing
//     anything, and Restore can report its progress.
//
// What it must never do:
//
//   - decide commit order, or read or trim the Raft log: the caller hands it
//     committed entries in log order and owns everything else;
//   - sync on its own: the database it is given syncs every commit (see
//     persist.OpenDB). The node relies on that twice: it compacts the Raft
//     log only up to Durable (an index committed by Flush or Apply), and
//     records a received snapshot in the log only after Restore (which
//     commits) has returned;
//   - touch key prefixes other than "k/" and "m/";
//   - panic on bytes from the network or the disk: malformed commands and
//     snapshots become errors.
//
// Reads (Get, Members, Conf) see the latest applied state, committed or
// not; Snapshot images the committed one (Durable). Linearizable reads are
// the caller's job: obtain a read index (ReadIndex) and wait until Applied
// reaches it before calling Get. Serving a read from uncommitted state is
// safe: the entries are committed in the Raft log, and a crash only means
// applying them again to the same state.
//
// kvstate is a part of RaftKV's implementation and carries no compatibility
// promise: it exports only what the other packages of the module use, and
// applications import the root package raftkv instead.
//
// Files: state.go (State, Open, Apply, Flush, Get, the pending transaction), command.go (the command
// encoding and key/value checks), session.go (the session rules), image.go
// and imageread.go (the snapshot image: writing, reading and checking it),
// restore.go (replacing the state with an image, crash-safely), members.go
// (the member table and its addresses, kept from configuration changes),
// badger.go (prefix walks and deletes, through persist.TxnWriter),
// errors.go.
package kvstate
