// Package faults injects network faults between RaftKV nodes hosted in one
// process, for tests: cut links (partitions, one-way or both ways), random
// loss, duplication and delay. It is test support only: no production code
// imports it, and it carries no compatibility promise (users import the
// root package, github.com/raftkv/raftkv).
//
// It plugs in as a protoactor sender middleware installed on every node
// (actors.NodeConfig.SenderMiddleware; the root package's tests pass it
// with their withSenderMiddleware option), so it sees every message a node
// or one of its children sends, and knows nodes by their actor names:
// "n<id>" for node id (actors.NodeName) and "n<id>/<child>" for its
// children. Traffic to or from anything else (answers to clients) passes
// untouched.
//
// What it must never do: import the packages it tests (actors, raftkv),
// keep package-level state, or touch a message's content.
package faults
