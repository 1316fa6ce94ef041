package limits_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestLimitsAgree checks, for every maxValueSize of the sweep, that each
// limit admits what the one before it lets through.
func TestLimitsAgree(t *testing.T) {
	for _, v := range limits.Sweep() {
		l, err := limits.For(v)
		if err != nil {
			t.Fatalf("limits.For(%d): %v", v, err)
		}
		check := func(ok bool, format string, args ...any) {
			t.Helper()
			if !ok {
				t.Errorf("maxValueSize %d: "+format, append([]any{v}, args...)...)
			}
		}
		check(l.MaxValueSize == v, "limits.MaxValueSize %d", l.MaxValueSize)
		check(l.MaxEntrySize == v+kvstate.MaxKeySize+kvstate.MaxCommandOverhead, "MaxEntrySize %d", l.MaxEntrySize)
		check(l.MaxStoredEntry == l.MaxEntrySize+persist.MaxEntryOverhead && l.MaxStoredEntry <= limits.MaxStoredValue,
			"a stored entry of %d bytes (storage bound %d)", l.MaxStoredEntry, limits.MaxStoredValue)
		check(l.MaxPeerMessage >= max(l.MaxEntrySize, l.MaxBytesPerMsg, l.SnapshotChunkSize), "peer message %d below its payloads", l.MaxPeerMessage)
		check(l.PeerWriterBatch >= 1 && l.PeerWriterBatch <= limits.MaxWriterBatch, "batch %d", l.PeerWriterBatch)
		full := l.PeerWriterBatch * (l.MaxPeerMessage + limits.PeerBatchOverhead)
		check(full+limits.PeerFraming <= l.PeerMaxRecvMsgSize, "a full batch (%d × %d) and framing exceed the peer receive limit %d", l.PeerWriterBatch, l.MaxPeerMessage, l.PeerMaxRecvMsgSize)
		check(full <= limits.PeerBatchBudget || l.PeerWriterBatch == 1, "batch of %d messages (%d bytes) over the budget", l.PeerWriterBatch, full)
		check(l.PeerWriterBatch == limits.MaxWriterBatch || (l.PeerWriterBatch+1)*(l.MaxPeerMessage+limits.PeerBatchOverhead) > limits.PeerBatchBudget,
			"batch %d could hold one more message", l.PeerWriterBatch)
		check(l.PeerMaxRecvMsgSize == limits.PeerMaxRecv(), "peer receive limit %d differs from the common %d", l.PeerMaxRecvMsgSize, limits.PeerMaxRecv())
		check(l.ClientMaxRecvMsgSize >= v+kvstate.MaxKeySize && l.ClientMaxRecvMsgSize <= limits.ClientCallMaxSendMsgSize, "client server receive limit %d", l.ClientMaxRecvMsgSize)
		check(l.ClientMaxSendMsgSize == limits.ClientCallMaxRecvMsgSize, "client server send limit %d, client receive limit %d", l.ClientMaxSendMsgSize, limits.ClientCallMaxRecvMsgSize)
	}
	// Both ends of every link accept the largest configuration's messages.
	top, _ := limits.For(limits.MaxValueSize)
	if top.MaxPeerMessage+limits.PeerBatchOverhead+limits.PeerFraming > limits.PeerMaxRecv() {
		t.Errorf("the largest configuration's peer message (%d) does not fit the receive limit %d", top.MaxPeerMessage, limits.PeerMaxRecv())
	}
	if top.ClientMaxRecvMsgSize > limits.ClientCallMaxSendMsgSize {
		t.Errorf("the largest configuration's server accepts %d-byte writes; the client sends at most %d", top.ClientMaxRecvMsgSize, limits.ClientCallMaxSendMsgSize)
	}
}

// TestLimitsTable logs the limits of the default, an 8 MiB and the largest
// configuration, and pins their batch counts.
func TestLimitsTable(t *testing.T) {
	for _, c := range []struct {
		v, batch int
	}{{1 << 20, 32}, {8 << 20, 7}, {limits.MaxValueSize, 1}} {
		l, err := limits.For(c.v)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("maxValueSize %d: entry %d (stored %d), MsgApp %d B/%d entries, chunk %d, peer message %d, batch %d, peer recv %d, client server recv %d send %d, client send %d recv %d",
			c.v, l.MaxEntrySize, l.MaxStoredEntry, l.MaxBytesPerMsg, l.MaxEntriesPerMsg, l.SnapshotChunkSize, l.MaxPeerMessage,
			l.PeerWriterBatch, l.PeerMaxRecvMsgSize, l.ClientMaxRecvMsgSize, l.ClientMaxSendMsgSize, limits.ClientCallMaxSendMsgSize, limits.ClientCallMaxRecvMsgSize)
		if l.PeerWriterBatch != c.batch {
			t.Errorf("maxValueSize %d: batch %d, want %d", c.v, l.PeerWriterBatch, c.batch)
		}
	}
}

func TestForRefusesOutOfRange(t *testing.T) {
	for _, v := range []int{math.MinInt, -1, 0, limits.MaxValueSize + 1, 1 << 30, math.MaxInt} {
		if _, err := limits.For(v); err == nil || !strings.Contains(err.Error(), strconv.Itoa(v)) {
			t.Errorf("limits.For(%d) = %v; want an error naming the value", v, err)
		}
	}
}

// TestOverheadsCoverRealMessages encodes the largest message of every kind
// that crosses a link, every number field at its widest, and checks it
// against the derived limit: the overhead constants are bounds, not
// guesses.
func TestOverheadsCoverRealMessages(t *testing.T) {
	const maxU = math.MaxUint64
	clusterID := strings.Repeat("c", limits.MaxClusterIDBytes)
	voters := make([]uint64, limits.MaxServers)
	for i := range voters {
		voters[i] = maxU - uint64(i)
	}
	key := strings.Repeat("k", kvstate.MaxKeySize)
	// Buffers that are never written stay unbacked, so the largest
	// configuration costs little memory here.
	for _, v := range []int{1, 1 << 20, 8 << 20, limits.MaxValueSize} {
		l, err := limits.For(v)
		if err != nil {
			t.Fatal(err)
		}
		value := make([]byte, v)
		cmd := kvstate.Command{ClientID: maxU, Seq: maxU, Op: kvstate.OpUpdate, Key: key, Value: value}
		if n := len(cmd.Encode()); n > l.MaxEntrySize {
			t.Errorf("maxValueSize %d: the largest command encodes to %d bytes, over MaxEntrySize %d", v, n, l.MaxEntrySize)
		}
		peer := func(what string, m proto.Message) {
			t.Helper()
			if n := proto.Size(m); n > l.MaxPeerMessage {
				t.Errorf("maxValueSize %d: %s of %d bytes exceeds MaxPeerMessage %d", v, what, n, l.MaxPeerMessage)
			}
		}
		msg := raftlogic.Message{Type: raftlogic.MsgApp, From: maxU, To: maxU, Term: maxU, Index: maxU, LogTerm: maxU,
			Commit: maxU, Reject: true, RejectHint: maxU, Context: maxU}
		entry := func(n int) raftlogic.Entry {
			return raftlogic.Entry{Index: maxU, Term: maxU, Type: raftlogic.EntryConfChange, Data: make([]byte, n)}
		}
		one := msg
		one.Entries = []raftlogic.Entry{entry(l.MaxEntrySize)}
		peer("a MsgApp of the largest entry", remote.NewEnvelope(clusterID, one))
		// As many entries as raftlogic packs: the first may be anything up
		// to MaxBytesPerMsg, the rest are empty.
		many := msg
		many.Entries = []raftlogic.Entry{entry(l.MaxBytesPerMsg)}
		for len(many.Entries) < l.MaxEntriesPerMsg {
			many.Entries = append(many.Entries, entry(0))
		}
		peer("a MsgApp of the most entries", remote.NewEnvelope(clusterID, many))
		snap := msg
		snap.Type = raftlogic.MsgSnap
		snap.Snapshot = raftlogic.Snapshot{Meta: raftlogic.SnapshotMeta{Index: maxU, Term: maxU, ConfState: raftlogic.ConfState{Voters: voters}}}
		peer("a MsgSnap", remote.NewEnvelope(clusterID, snap))
		peer("a forwarded proposal", &raftpb.ProposeRequest{Payload: make([]byte, l.MaxEntrySize), ClusterId: clusterID})
		peer("a forwarded read's answer", &raftpb.GetResponse{Value: value, ErrorCode: raftpb.ErrorCode(math.MaxInt32),
			LeaderId: maxU, Message: strings.Repeat("m", 1024)})
		peer("a forwarded read", &raftpb.GetRequest{ClusterId: clusterID, Key: key})
		peer("a snapshot chunk", &raftpb.SnapshotChunk{ClusterId: clusterID, From: maxU, To: maxU, Term: maxU, Index: maxU,
			SnapTerm: maxU, Voters: voters, Offset: maxU, Data: make([]byte, l.SnapshotChunkSize), Last: true})

		write := &clientpb.WriteRequest{ClientId: maxU, Seq: maxU, Op: clientpb.Op(math.MaxInt32), Key: key, Value: value}
		if n := proto.Size(write); n > l.ClientMaxRecvMsgSize {
			t.Errorf("maxValueSize %d: the largest write request (%d bytes) exceeds the server's receive limit %d", v, n, l.ClientMaxRecvMsgSize)
		}
		if n := proto.Size(&clientpb.ReadResponse{Value: value}); n > l.ClientMaxSendMsgSize {
			t.Errorf("maxValueSize %d: the largest read answer (%d bytes) exceeds the server's send limit %d", v, n, l.ClientMaxSendMsgSize)
		}
		if v == limits.MaxValueSize {
			if n := proto.Size(write); n > limits.ClientCallMaxSendMsgSize {
				t.Errorf("the largest write request (%d bytes) exceeds the client's send limit %d", n, limits.ClientCallMaxSendMsgSize)
			}
			if n := proto.Size(&clientpb.ReadResponse{Value: value}); n > limits.ClientCallMaxRecvMsgSize {
				t.Errorf("the largest read answer (%d bytes) exceeds the client's receive limit %d", n, limits.ClientCallMaxRecvMsgSize)
			}
		}
	}
	status := &clientpb.ClusterStatusResponse{}
	addr := strings.Repeat("h", 253) + ":65535"
	for i := range limits.MaxServers {
		status.Nodes = append(status.Nodes, &clientpb.NodeStatus{Id: maxU - uint64(i), Address: addr, ClientAddress: addr, Reachable: true,
			Status: &raftpb.StatusResponse{Id: maxU, Role: "pre-candidate", Term: maxU, Leader: maxU, Commit: maxU, Applied: maxU,
				FirstIndex: maxU, LastIndex: maxU, SnapshotIndex: maxU, LsmBytes: maxU, VlogBytes: maxU, DiskBytes: maxU, DiskFreeBytes: maxU, LeaderChanges: maxU, Proposals: maxU}})
	}
	l, _ := limits.For(1)
	if n := proto.Size(status); n > l.ClientMaxSendMsgSize || n > limits.ClientCallMaxRecvMsgSize {
		t.Errorf("a status of %d nodes (%d bytes) exceeds the client API's limits", limits.MaxServers, n)
	}
}

// TestTransportAcceptsDerivedOptions hands the derived options to
// remote.Start, which checks that a full batch fits the receive limit. The
// port is taken, so Start stops right after that check (ErrAddressInUse
// means the options passed) and no Remote is started.
func TestTransportAcceptsDerivedOptions(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	for _, v := range limits.Sweep() {
		l, err := limits.For(v)
		if err != nil {
			t.Fatal(err)
		}
		_, err = remote.Start(sys, "127.0.0.1", port,
			remote.WithMaxMessageSize(l.MaxPeerMessage), remote.WithWriterBatchSize(l.PeerWriterBatch),
			remote.WithMaxRecvMsgSize(l.PeerMaxRecvMsgSize))
		if !errors.Is(err, remote.ErrAddressInUse) {
			t.Fatalf("maxValueSize %d: remote.Start with the derived options: %v; want only ErrAddressInUse", v, err)
		}
	}
	// The check is real: one message more per batch does not fit.
	l, _ := limits.For(8 << 20)
	_, err = remote.Start(sys, "127.0.0.1", port,
		remote.WithMaxMessageSize(l.MaxPeerMessage), remote.WithWriterBatchSize(l.PeerWriterBatch*10),
		remote.WithMaxRecvMsgSize(l.PeerMaxRecvMsgSize))
	if !errors.Is(err, remote.ErrInvalidOptions) {
		t.Fatalf("a batch of %d: %v; want ErrInvalidOptions", l.PeerWriterBatch*10, err)
	}
}

// TestLargestEntryIsStored writes the largest entry the largest
// configuration allows through the real storage, a database opened for it
// (persist.WithLargestValue(MaxStoredEntry)): the Raft log (one Badger value
// of MaxStoredEntry bytes, every varint at its widest) and the state
// machine (kvstate: the longest key and a value of MaxValueSize), and reads
// both back.
func TestLargestEntryIsStored(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writes 128 MiB")
	}
	l, err := limits.For(limits.MaxValueSize)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := persist.OpenDB(t.TempDir(), persist.WithLogger(quiet), persist.WithLargestValue(l.MaxStoredEntry))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	value := bytes.Repeat([]byte("0123456789abcdef"), limits.MaxValueSize/16+1)[:limits.MaxValueSize]
	cmd := kvstate.Command{ClientID: math.MaxUint64, Seq: math.MaxUint64, Op: kvstate.OpPut, Key: strings.Repeat("k", kvstate.MaxKeySize), Value: value}
	data := cmd.Encode()
	if len(data) > l.MaxEntrySize {
		t.Fatalf("the largest command is %d bytes, over MaxEntrySize %d", len(data), l.MaxEntrySize)
	}

	log := persist.NewLogStore(db, persist.WithLogger(quiet))
	if _, err := log.Load(); err != nil {
		t.Fatal(err)
	}
	// The widest index and term a stored entry has, and data padded to
	// MaxEntrySize: the stored value is MaxStoredEntry bytes.
	idx := uint64(math.MaxUint64 >> 1)
	padded := append(bytes.Clone(data), make([]byte, l.MaxEntrySize-len(data))...)
	e := raftlogic.Entry{Index: idx, Term: math.MaxUint64, Type: raftlogic.EntryNormal, Data: padded}
	snap := raftlogic.SnapshotMeta{Index: idx - 1, Term: 1, ConfState: raftlogic.ConfState{Voters: []uint64{1}}}
	if err := log.Save(raftlogic.HardState{Term: e.Term}, []raftlogic.Entry{e}, snap); err != nil {
		t.Fatalf("save an entry of %d bytes (%d stored): %v", len(padded), l.MaxStoredEntry, err)
	}
	st, err := log.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 1 || !bytes.Equal(st.Entries[0].Data, padded) {
		t.Fatalf("loaded %d entries; want the one saved", len(st.Entries))
	}
	st.Entries = nil

	sm, err := kvstate.Open(db, kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Applied without a session (sessions must be registered through the
	// log first): the session fields only add bytes, checked above.
	first := cmd
	first.ClientID, first.Seq = 0, 0
	res, err := sm.Apply([]raftlogic.Entry{{Index: 1, Term: 1, Data: first.Encode()}}, nil)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("apply the largest command: %v, %+v", err, res)
	}
	got, err := sm.Get(cmd.Key)
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("get the largest value: %d bytes, %v", len(got), err)
	}
}
