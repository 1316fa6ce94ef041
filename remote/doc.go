// Package remote owns RaftKV's node-to-node wire: the protobuf messages nodes
// exchange (sub-package raftpb, generated from proto/raftkv/v1/raft.proto),
// their conversion to and from raftlogic types, and the setup of the
// protoactor remote (gRPC) transport that carries them.
//
// What it owns:
//
//   - The wire format. raftpb's proto package name (raftkv.v1) and field
//     numbers are a contract between binaries: protoactor sends a message's
//     full proto name and the receiver looks it up, and a receiver that does
//     not link the type crashes (protoactor remote/proto_serializer.go). Every
//     node must link the same raftpb.
//   - Validation of what arrives: OpenEnvelope turns network input into a
//     raftlogic.Message or an error; it never panics.
//     It checks structure only (known enums, no nil elements); Raft-level
//     sanity (terms, peers, snapshot metadata) is raftlogic's job.
//   - Transport setup: Start configures protoactor remote for a Raft
//     transport (one connect attempt per cycle, small writer queues, batches
//     that fit the gRPC receive limit, keepalive on both sides, an exact
//     advertised address) and reports a taken port as ErrAddressInUse
//     instead of panicking. NewLoggerFactory and WatchFailures route
//     protoactor's logging into the application's slog logger.
//
// What it must never do: make Raft decisions (elect, commit, retry, reorder,
// or drop messages by their meaning), touch storage, or spawn the Raft
// actors. The transport is lossy and FIFO per connection; coping with that is
// raftlogic's and the actor layer's job.
//
// One Remote per process: protoactor's Remote.Start writes a gRPC global
// (grpclog.SetLoggerV2), so two Remotes in one process race (and -race
// reports it). A process hosting several Raft nodes runs them on ONE actor
// system and ONE Remote, as differently named actors, addressed with
// actor.NewPID(addr, name). A PID whose address equals the local one is
// delivered locally without gRPC, so a node can treat co-hosted peers like
// any other.
//
// Messages carried over the Remote must be raftpb messages passed as
// pointers, each at most WithMaxMessageSize bytes encoded: protoactor
// batches up to WithWriterBatchSize messages into one gRPC message, and a
// batch over the receiver's gRPC limit kills the stream and loses the batch.
// Send snapshots as SnapshotChunk messages within that budget.
//
// This package is part of RaftKV's implementation and carries no
// compatibility promise: it exports only what the module's other packages
// use (raftkv.Open starts the transport, actors wraps and opens envelopes).
// Applications import the root package, github.com/raftkv/raftkv.
//
// The generated code is committed; regenerate it after editing the .proto
// with `go generate ./remote/` (needs protoc 3.21.x; see gen.sh).
package remote

//go:generate bash gen.sh
