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
// Status reports every node's state; TransferLeadership hands leadership to
// a chosen node (before taking the leader's host down, say) and returns
// once the old leader has seen it lead. A Client offers both too.
//
// This package is the API: everything a program needs is here, with
// config (WithConfig's Config), nodestatus (the fields of NodeStatus) and,
// for gRPC clients in other languages, clientpb's kv.proto. The other
// packages of the module are its implementation and promise nothing.
//
// The package owns the public API (Open, DB, Dial, Client, options,
// errors) and, inside it, three parts with one job each: DB hosts this
// process's nodes (start, restart after a full disk, stop); the gateway is
// the one path every request takes, from the DB or from the client gRPC
// service (RegisterClientAPI) alike: validate, observe, run under a client
// session, route; the router finds the leader and carries a request to it.
// The Client and the router share one retry loop (retry.go), and every
// error is translated by one table (internal/apiwire). It must never read
// or write a node's storage itself, nor decide anything Raft decides:
// every operation goes through a node actor.
package raftkv
