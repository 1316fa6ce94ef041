package limits

import (
	"fmt"
	"time"

	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
)

// Fixed limits. None depends on the configuration.
const (
	// MaxValueSize is the largest maxValueSize any configuration may set,
	// kvstate.MaxValueSizeLimit (64 MiB).
	MaxValueSize = kvstate.MaxValueSizeLimit
	// MaxStoredValue bounds what the storage engine is asked to hold under
	// one key. Badger keeps a value in one value-log file and refuses files
	// of 2 GiB or more; persist.OpenDB sizes its files from the largest
	// value (persist.WithLargestValue). 1 GiB also matches the largest
	// value a snapshot image carries (kvstate).
	MaxStoredValue = 1 << 30
	// MaxClusterIDBytes bounds the cluster id, which every peer message
	// carries.
	MaxClusterIDBytes = 255
	// MaxServers bounds the nodes of a cluster (config refuses more): peer
	// messages and client status replies carry a list of up to this many.
	// Raft clusters beyond a handful of voters only slow down commits; the
	// bound also turns a typo such as "serversNum: 300" into an error
	// instead of hundreds of processes, ports and data directories.
	MaxServers = 99

	// MaxBytesPerMsg bounds the entry data in one MsgApp beyond its first
	// entry (raftlogic.Config.MaxBytesPerMsg): small entries travel in
	// batches of up to 1 MiB, and an entry larger than that alone.
	MaxBytesPerMsg = 1 << 20
	// MaxEntriesPerMsg bounds the entries in one MsgApp
	// (raftlogic.Config.MaxEntriesPerMsg).
	MaxEntriesPerMsg = 512
	// SnapshotChunkSize is the data in one snapshot chunk message.
	SnapshotChunkSize = 256 << 10
	// MaxWriterBatch is the most messages the transport packs into one gRPC
	// message, reached when values are small.
	MaxWriterBatch = 32

	// peerBatchBudget bounds the bytes of messages a sender packs into one
	// gRPC message: with large messages the batch holds fewer of them.
	peerBatchBudget = 64 << 20
	// peerEntryOverhead bounds the protobuf bytes one entry adds to a
	// MsgApp besides its data: the field's tag and length, and the entry's
	// index, term, type and data length (at most 45).
	peerEntryOverhead = 48
	// peerFixedOverhead bounds a peer message's bytes besides its entries,
	// payload, value or chunk: the envelope, every scalar field, the
	// cluster id (MaxClusterIDBytes) and a list of MaxServers voters.
	peerFixedOverhead = 4 << 10
	// peerBatchOverhead is what protoactor adds to each message in a batch
	// (envelope fields, type name and target tables); remote.Start checks a
	// full batch with the same allowance.
	peerBatchOverhead = 1 << 10
	// peerFraming is slack for the batch message's own fields.
	peerFraming = 64 << 10
	// clientOverhead bounds a client API message's bytes besides its key
	// and value (or a status reply of MaxServers nodes).
	clientOverhead = 64 << 10
)

// Limits are the sizes derived from one maxValueSize. Every field is in
// bytes except the counts PeerWriterBatch and MaxEntriesPerMsg.
type Limits struct {
	// MaxValueSize is the configuration's maxValueSize: the largest value
	// a client may store.
	MaxValueSize int
	// MaxEntrySize is the largest Raft entry's data: a command with the
	// longest key and the largest value.
	MaxEntrySize int
	// MaxStoredEntry is MaxEntrySize as the log stores it: one value of the
	// storage engine, at most MaxStoredValue. A node's databases must take
	// values this large (persist.WithLargestValue).
	MaxStoredEntry int
	// MaxBytesPerMsg and MaxEntriesPerMsg bound a MsgApp (raftlogic); one
	// entry is always sent, so a MsgApp carries at most
	// max(MaxBytesPerMsg, MaxEntrySize) bytes of entry data.
	MaxBytesPerMsg   int
	MaxEntriesPerMsg int
	// SnapshotChunkSize is the data in one snapshot chunk message.
	SnapshotChunkSize int
	// MaxPeerMessage bounds one encoded message between nodes: a MsgApp, a
	// forwarded proposal or read answer, or a snapshot chunk
	// (remote.WithMaxMessageSize).
	MaxPeerMessage int
	// PeerWriterBatch is how many messages the transport packs into one
	// gRPC message (remote.WithWriterBatchSize): as many as fit the
	// batch budget, 1 to MaxWriterBatch.
	PeerWriterBatch int
	// PeerMaxRecvMsgSize is the gRPC receive limit of the peer transport
	// (remote.WithMaxRecvMsgSize). It is the same for every
	// configuration, see the package doc.
	PeerMaxRecvMsgSize int
	// ClientMaxRecvMsgSize is the client API server's receive limit: a
	// write of the longest key and the largest value. A larger request is
	// refused by gRPC (RESOURCE_EXHAUSTED) before it is read.
	ClientMaxRecvMsgSize int
	// ClientMaxSendMsgSize is the client API server's send limit: a read
	// of the largest value any configuration allows, which the store may
	// hold from before maxValueSize was lowered.
	ClientMaxSendMsgSize int
}

// Client limits of the Go client, which does not know the server's
// configuration: it sends and receives whatever the largest configuration
// allows, and the server refuses what its own does not.
const (
	// ClientCallMaxSendMsgSize is the client's send limit: a write of the
	// longest key and a value of MaxValueSize.
	ClientCallMaxSendMsgSize = MaxValueSize + kvstate.MaxKeySize + clientOverhead
	// ClientCallMaxRecvMsgSize is the client's receive limit: a read of a
	// value of MaxValueSize.
	ClientCallMaxRecvMsgSize = MaxValueSize + clientOverhead
)

// MinTransferRate is the rate, in bytes per second, below which a request
// carrying a large value is taken for lost: one attempt covers the value
// crossing into the server, being written and synced by the leader, crossing
// to the followers and being written there, and being applied. It is a
// quarter of the slowest end-to-end rate measured for puts of 64 MiB values
// on a 2-core machine at load average 15 (about 35 MiB/s).
const MinTransferRate = 8 << 20

// TryTimeout is how long one attempt that carries n bytes may take before
// it is abandoned: base, which suffices for a small request, plus the time
// n bytes take at MinTransferRate. Without the allowance a large value's
// request is cancelled before it has even arrived, sent again in full, and
// never succeeds on a slow machine.
func TryTimeout(base time.Duration, n int) time.Duration {
	return base + time.Duration(int64(max(n, 0))*int64(time.Second)/MinTransferRate)
}

// caps are the ceilings the derived limits must fit; For uses the real
// ones, tests lower them to show a refusal.
type caps struct {
	maxValueSize   int // the largest maxValueSize accepted
	maxStoredValue int // the storage engine's largest value
	peerRecv       int // the peer transport's receive limit
}

// realCaps are the ceilings of this build.
func realCaps() caps {
	return caps{maxValueSize: MaxValueSize, maxStoredValue: MaxStoredValue, peerRecv: peerMaxRecv()}
}

// peerMaxRecv accepts a full batch of the budget, or one message as large
// as the largest configuration makes, whichever is larger.
func peerMaxRecv() int {
	return max(peerBatchBudget, peerMessage(MaxValueSize)+peerBatchOverhead) + peerFraming
}

// For derives the limits of a configuration whose maxValueSize is
// maxValueSize. It returns an error, meant to be reported against the
// maxValueSize key, when no limits fit: maxValueSize is outside
// 1..MaxValueSize, or (with other ceilings) its entries would not fit the
// storage engine or the transport.
func For(maxValueSize int) (Limits, error) { return derive(maxValueSize, realCaps()) }

// maxEntry is the largest entry's data for value limit v.
func maxEntry(v int) int { return v + kvstate.MaxKeySize + kvstate.MaxCommandOverhead }

// peerMessage bounds one encoded peer message for value limit v: a MsgApp
// of up to MaxEntriesPerMsg entries whose data is at most
// max(MaxBytesPerMsg, maxEntry(v)); a proposal carrying one entry's data; a
// read answer carrying a value; a snapshot chunk.
func peerMessage(v int) int {
	payload := max(MaxBytesPerMsg, maxEntry(v), SnapshotChunkSize)
	return payload + MaxEntriesPerMsg*peerEntryOverhead + peerFixedOverhead
}

func derive(v int, c caps) (Limits, error) {
	if v < 1 || v > c.maxValueSize {
		return Limits{}, fmt.Errorf("%d is outside 1..%d", v, c.maxValueSize)
	}
	l := Limits{
		MaxValueSize:         v,
		MaxEntrySize:         maxEntry(v),
		MaxStoredEntry:       maxEntry(v) + persist.MaxEntryOverhead,
		MaxBytesPerMsg:       MaxBytesPerMsg,
		MaxEntriesPerMsg:     MaxEntriesPerMsg,
		SnapshotChunkSize:    SnapshotChunkSize,
		MaxPeerMessage:       peerMessage(v),
		PeerMaxRecvMsgSize:   c.peerRecv,
		ClientMaxRecvMsgSize: v + kvstate.MaxKeySize + clientOverhead,
		ClientMaxSendMsgSize: ClientCallMaxRecvMsgSize,
	}
	if l.MaxStoredEntry > c.maxStoredValue {
		return Limits{}, fmt.Errorf("%d makes log entries of up to %d bytes; the storage engine stores at most %d bytes under one key",
			v, l.MaxStoredEntry, c.maxStoredValue)
	}
	room := c.peerRecv - peerFraming
	if one := l.MaxPeerMessage + peerBatchOverhead; one > room {
		return Limits{}, fmt.Errorf("%d makes peer messages of up to %d bytes; the transport receives at most %d",
			v, l.MaxPeerMessage, room)
	}
	l.PeerWriterBatch = min(max(min(peerBatchBudget, room)/(l.MaxPeerMessage+peerBatchOverhead), 1), MaxWriterBatch)
	return l, nil
}
