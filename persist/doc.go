// Package persist keeps the durable Raft state of one RaftKV node: its hard
// state (term, vote, commit), the metadata of its newest snapshot, and its
// log after that snapshot. It also opens the node's Badger database (OpenDB),
// which the state machine (kvstate) shares.
//
// # Keys
//
// persist owns the prefix "r/" and never reads or writes any other key:
//
//	r/hs                   hard state: term, vote, commit
//	r/snap                 snapshot metadata: index, term, ConfState voters
//	r/last                 index of the last log entry
//	r/e/<index, 8 bytes>   log entry; big-endian, so keys sort by index
//
// kvstate owns "k/" and "m/". Every value is a versioned record with a
// CRC-32C (see codec.go), so damage is reported as ErrCorrupt, naming the
// key, instead of being read as data.
//
// The log is the entries (r/snap index, r/last]: Load reads exactly those
// and reports a hole among them. Entry keys outside that range are not part
// of the log. Below it they are compacted entries not yet deleted (Compact
// hides them by writing r/snap, then deletes them without holding up Save);
// above it they are leftovers of a batch too big for one Badger
// transaction that a crash interrupted (see LogStore.Save), which the next
// Save deletes. Recording r/last is what lets such a batch be written in
// pieces and still appear all at once.
//
// # Durability
//
// The database is opened with SyncWrites=false. Save writes a whole Ready in
// one transaction and then calls DB.Sync once (the group commit), and only
// when Raft needs it (raftlogic.Ready.MustSync). Badger logs every write in
// order, so a sync also makes every earlier write durable, the state
// machine's included, and after a crash what survives is a prefix of the
// writes. That is why Compact and SaveSnapshotMeta need no sync of their own.
//
// # What persist must never do
//
//   - touch keys outside "r/", or close the shared database (its opener
//     does, after every user of it is done);
//   - decide anything about Raft: what to persist and when comes from
//     raftlogic's Ready, and persist only refuses requests that would break
//     the log (a gap, a snapshot older than the stored one);
//   - report success before the data is as durable as MustSync requires;
//   - panic on bytes read from disk: bad records are ErrCorrupt;
//   - know the state machine's applied index: Load leaves Applied at the
//     snapshot index for the caller to raise.
package persist
