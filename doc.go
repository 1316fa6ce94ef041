// Package raftkv is a Raft-replicated key-value database.
//
// Embedded, one call starts a whole cluster in the process, every node
// persisting to its own Badger database under the configured path:
//
//	db, err := raftkv.Open() // ./config.yaml when present, else defaults
//	if err != nil { ... }
//	defer db.Close()
//	err = db.Put(ctx, "k", []byte("v"))
//	v, err := db.Get(ctx, "k") // linearizable
//
// Writes return once a quorum has made them durable and the state machine
// has applied them; reads are served by the leader after confirming its
// leadership (ReadIndex), never from a stale node. Every call honours its
// context and never hangs: without a quorum it fails once the context (or
// the default request timeout) ends.
//
// Every write carries a client session registered through the Raft log, so
// it is applied at most once however often it is re-sent. A write that
// fails without the database knowing whether it was applied returns an
// error matching ErrOutcomeUnknown (see the errors' documentation); it is never
// silently run again.
//
// Close stops the nodes and flushes their storage; the next Open finds every
// acknowledged write.
//
// The package owns the public API (Open, DB, Dial, Client, options, errors),
// the routing of calls to the leader, client sessions, and the client gRPC
// service (RegisterClientAPI). It must never read or write a node's storage
// itself, nor decide anything Raft decides: every operation goes through a
// node actor.
package raftkv
