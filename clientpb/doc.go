// Package clientpb holds the generated Go code of RaftKV's client API: the
// raftkv.v1.KV gRPC service every node serves on its clientPort, generated
// by protoc-gen-go and protoc-gen-go-grpc from proto/raftkv/v1/kv.proto.
// Go programs use raftkv.Dial instead; this package serves the server
// (raftkv.RegisterClientAPI) and gRPC clients that speak the protocol
// directly. kv.proto's header documents every status code and error reason.
//
// The client API is a contract with clients of other builds and languages:
// its proto package (raftkv.v1), service, message names and field numbers
// never change meaning; fields are added, never renumbered or reused. It is
// kept apart from the peer wire (remote/raftpb), which only nodes speak;
// kv.proto borrows one message of it, StatusResponse, for a node's state.
//
// It must never hold anything but generated code and this file: a hand
// edit is lost at the next generation. Edit the .proto and run
// `go generate ./clientpb/` (needs protoc 3.21.x; see ../remote/gen.sh).
package clientpb

//go:generate bash ../remote/gen.sh
