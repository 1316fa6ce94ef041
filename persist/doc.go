// Package persist keeps the durable Raft state of one RaftKV node: its hard
// state (term, vote, commit), the metadata of its newest snapshot, and its
// log after that snapshot. It also opens the node's Badger databases
// (OpenDB): one for the log, in LogDir, and one for the state machine
// (kvstate), in StateDir. Two databases rather than one, so that the state
// machine's commits never queue behind the log's syncs in Badger's single
// write goroutine, nor the log's behind the state machine's.
//
// persist is a part of RaftKV's implementation and carries no compatibility
// promise: it exports only what the other packages of the module use, and
// applications import the root package raftkv instead.
//
// # Files
//
// logstore.go holds LogStore, Load and Entries; save.go plans a Save and
// writes it in one transaction; split.go writes a plan too big for one;
// batch.go encodes the records; txnwriter.go feeds Badger transactions
// (kvstate uses it too); compact.go records snapshots and deletes what they
// cover; codec.go is the record format; db.go opens the databases; files.go,
// space.go and gc.go are durable files, free space and value-log GC.
//
// # Keys
//
// persist owns the prefix "r/" and never reads or writes any other key:
//
//	r/hs                   hard state: term, vote, commit
//	r/snap                 snapshot metadata: index, term, ConfState (voters; v2 adds joint and learner members)
//	r/last                 index of the last log entry
//	r/e/<index, 8 bytes>   log entry; big-endian, so keys sort by index
//
// (kvstate's "k/" and "m/" keys live in the state database.) In both
// databases, persist also owns "g/": the marker key its value-log collector
// writes and drops at once (see Collector). Every value is a versioned record with a
// CRC-32C (see codec.go), so damage is reported as corrupt data, naming the
// key, instead of being read as data.
//
// The log is the entries (r/snap index, r/last]: Load reads exactly those
// and reports a hole among them. Entry keys outside that range are not part
// of the log. Below it they are compacted entries not yet deleted (Compact
// hides them by writing r/snap, then deletes them without holding up Save);
// above it they are leftovers of a batch too big for one Badger
// transaction that a crash interrupted (see split.go), which the next
// Save deletes. Recording r/last is what lets such a batch be written in
// pieces and still appear all at once.
//
// # Durability
//
// The databases are opened with SyncWrites, so every Badger commit is
// durable (on power loss, not only on a process crash) when it returns.
// Save writes a whole Ready in one transaction (the group commit: one sync
// for every entry and vote the Ready carries). A batch too big for one
// transaction is written in several, each durable before the next starts,
// in an order that leaves a valid log after a crash between any two (see
// split.go; TxnWriter feeds the transactions, here and in kvstate). Compact and SaveSnapshotMeta are durable when they return too;
// Compact may only be called once the state machine's own database holds
// everything up to the compacted index: kvstate commits (synced, as here)
// less often than it applies, and the node compacts only up to
// kvstate.State.Durable, the last index it committed.
//
// Why not SyncWrites=false and one DB.Sync per batch, which is cheaper? In
// Badger v4, DB.Sync syncs only the active memtable's write-ahead log. A
// memtable that filled up during the batch was rotated out and is synced by
// nobody until its background flush to a table ends, so the batch could be
// acknowledged with part of it only in the page cache. The power-loss test
// (test/powerloss) caught exactly that.
//
// # What persist must never do
//
//   - touch keys outside "r/", or close the database (its opener does,
//     after every user of it is done);
//   - decide anything about Raft: what to persist and when comes from
//     raftlogic's Ready, and persist only refuses requests that would break
//     the log (a gap, a snapshot older than the stored one);
//   - report success before the data is as durable as MustSync requires;
//   - panic on bytes read from disk: bad records are errors naming the key;
//   - know the state machine's applied index: Load leaves Applied at the
//     snapshot index for the caller to raise.
package persist
