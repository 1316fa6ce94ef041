// Package apiwire is where the public API's errors and node statuses meet
// the wires: the one table of errors (errors.go), from which every
// translation between the state machine's errors, the nodes' answer codes
// (remote/raftpb), the API's errors and the client API's gRPC statuses is
// derived, together with what a caller does with each (answer or retry);
// and the conversions of nodestatus.Status to and from the peer and client
// wire messages (status.go).
//
// It owns the API's sentinel errors (the root package re-exports them) and
// the client API's error reasons. It must never decide anything itself
// (route, retry, expire): callers ask it what an outcome means. Adding an
// error or a wire code is one row here; the table's tests check that every
// code is classified and every row survives the round trips.
//
// Like every package under internal/ it carries no compatibility promise;
// users import the root package.
package apiwire
