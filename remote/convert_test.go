package remote

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// sampleMessages has one rich message of every type.
func sampleMessages() []raftlogic.Message {
	ents := []raftlogic.Entry{
		{Index: 8, Term: 3}, // leader no-op: no data
		{Index: 9, Term: 3, Type: raftlogic.EntryNormal, Data: []byte("put k v")},
		{Index: 10, Term: 4, Type: raftlogic.EntryConfChange, Data: []byte{0, 1, 2, 255}},
	}
	return []raftlogic.Message{
		{Type: raftlogic.MsgApp, From: 1, To: 2, Term: 4, Index: 7, LogTerm: 3, Entries: ents, Commit: 6},
		{Type: raftlogic.MsgAppResp, From: 2, To: 1, Term: 4, Index: 10},
		{Type: raftlogic.MsgAppResp, From: 2, To: 1, Term: 4, Index: 7, Reject: true, RejectHint: 5, LogTerm: 2},
		{Type: raftlogic.MsgVote, From: 3, To: 1, Term: 5, Index: 10, LogTerm: 4, Context: 1},
		{Type: raftlogic.MsgVoteResp, From: 1, To: 3, Term: 5, Reject: true},
		{Type: raftlogic.MsgPreVote, From: 3, To: 2, Term: 6, Index: 10, LogTerm: 4},
		{Type: raftlogic.MsgPreVoteResp, From: 2, To: 3, Term: 6},
		{Type: raftlogic.MsgHeartbeat, From: 1, To: 2, Term: 4, Commit: 9, Context: 42},
		{Type: raftlogic.MsgHeartbeatResp, From: 2, To: 1, Term: 4, Context: 42},
		{Type: raftlogic.MsgSnap, From: 1, To: 3, Term: 4, Snapshot: raftlogic.Snapshot{
			Meta: raftlogic.SnapshotMeta{Index: 100, Term: 4, ConfState: raftlogic.ConfState{Voters: []uint64{1, 2, 3}}},
			Data: []byte("image"),
		}},
		{Type: raftlogic.MsgSnap, From: 1, To: 4, Term: 4, Snapshot: raftlogic.Snapshot{ // joint, with a learner
			Meta: raftlogic.SnapshotMeta{Index: 100, Term: 4, ConfState: raftlogic.ConfState{
				Voters: []uint64{1, 2, 4}, VotersOutgoing: []uint64{1, 2, 3}, Learners: []uint64{5}}},
		}},
		{Type: raftlogic.MsgSnap, From: 1, To: 3, Term: 4, Snapshot: raftlogic.Snapshot{ // metadata only
			Meta: raftlogic.SnapshotMeta{Index: 100, Term: 4, ConfState: raftlogic.ConfState{Voters: []uint64{1, 2, 3}}},
		}},
		{Type: raftlogic.MsgTimeoutNow, From: 1, To: 2, Term: 4},
		{Type: raftlogic.MsgApp, From: 1, To: 2, Term: ^uint64(0), Index: ^uint64(0), LogTerm: ^uint64(0), Commit: ^uint64(0), Context: ^uint64(0)},
	}
}

func TestRoundTripAllTypes(t *testing.T) {
	seen := map[raftlogic.MessageType]bool{}
	for _, m := range sampleMessages() {
		seen[m.Type] = true
		// In memory.
		got, err := fromProto(toProto(m))
		if err != nil {
			t.Fatalf("%v: fromProto(toProto) = %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: in-memory round trip\n got %+v\nwant %+v", m.Type, got, m)
		}
		// Over the wire.
		b, err := proto.Marshal(NewEnvelope("c1", m))
		if err != nil {
			t.Fatalf("%v: marshal: %v", m.Type, err)
		}
		var env raftpb.RaftEnvelope
		if err := proto.Unmarshal(b, &env); err != nil {
			t.Fatalf("%v: unmarshal: %v", m.Type, err)
		}
		got, err = OpenEnvelope("c1", &env)
		if err != nil {
			t.Fatalf("%v: OpenEnvelope = %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: wire round trip\n got %+v\nwant %+v", m.Type, got, m)
		}
	}
	for mt := raftlogic.MsgApp; mt <= raftlogic.MsgTimeoutNow; mt++ {
		if !seen[mt] {
			t.Errorf("no sample of %v", mt)
		}
	}
}

// TestEnumTablesComplete fails when raft.proto or raftlogic gains a type the
// conversion tables do not cover.
func TestEnumTablesComplete(t *testing.T) {
	if got, want := len(msgTypes), int(raftlogic.MsgTimeoutNow); got != want {
		t.Errorf("msgTypes has %d entries, raftlogic defines %d message types", got, want)
	}
	if got, want := len(raftpb.MessageType_name), len(msgTypes)+1; got != want { // +UNSPECIFIED
		t.Errorf("raftpb.MessageType has %d values, want %d (update msgTypes)", got, want)
	}
	if got, want := len(raftpb.EntryType_name), len(entryTypes); got != want {
		t.Errorf("raftpb.EntryType has %d values, want %d (update entryTypes)", got, want)
	}
	for lt, pt := range msgTypes {
		if int32(lt) != int32(pt) { // equal numbers keep the wire readable next to raftlogic
			t.Errorf("%v = %d but %v = %d", lt, lt, pt, pt)
		}
	}
	if len(msgTypesBack) != len(msgTypes) || len(entryTypesBack) != len(entryTypes) {
		t.Error("conversion tables are not one-to-one")
	}
}

func TestRoundTripCanonicalizesEmpty(t *testing.T) {
	m := raftlogic.Message{Type: raftlogic.MsgApp, From: 1, To: 2, Term: 1,
		Entries: []raftlogic.Entry{{Index: 1, Term: 1, Data: []byte{}}}}
	got, err := fromProto(toProto(m))
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries[0].Data != nil {
		t.Errorf("empty data came back as %#v, want nil", got.Entries[0].Data)
	}
	m.Entries = []raftlogic.Entry{}
	if got, _ := fromProto(toProto(m)); got.Entries != nil {
		t.Errorf("empty entries came back as %#v, want nil", got.Entries)
	}
	// A snapshot with all-zero metadata and no data is no snapshot.
	p := toProto(raftlogic.Message{Type: raftlogic.MsgHeartbeat, From: 1, To: 2, Term: 1})
	if p.Snapshot != nil {
		t.Errorf("zero snapshot encoded as %v", p.Snapshot)
	}
	p.Snapshot = &raftpb.Snapshot{Meta: &raftpb.SnapshotMeta{}}
	if got, err := fromProto(p); err != nil || !reflect.DeepEqual(got.Snapshot, raftlogic.Snapshot{}) {
		t.Errorf("fromProto(empty snapshot) = %+v, %v", got.Snapshot, err)
	}
}

func TestFromProtoRejects(t *testing.T) {
	valid := func() *raftpb.Message {
		return toProto(raftlogic.Message{Type: raftlogic.MsgApp, From: 1, To: 2, Term: 3, Index: 1, LogTerm: 1,
			Entries: []raftlogic.Entry{{Index: 2, Term: 3, Data: []byte("x")}}})
	}
	cases := []struct {
		name string
		p    *raftpb.Message
	}{
		{"nil", nil},
		{"unspecified type", &raftpb.Message{From: 1, To: 2, Term: 1}},
		{"type past the end", &raftpb.Message{Type: raftpb.MessageType(11), From: 1, To: 2, Term: 1}},
		{"negative type", &raftpb.Message{Type: raftpb.MessageType(-1), From: 1, To: 2, Term: 1}},
		{"type that would truncate to MsgApp", &raftpb.Message{Type: raftpb.MessageType(257), From: 1, To: 2, Term: 1}},
		{"nil entry", func() *raftpb.Message { p := valid(); p.Entries = append(p.Entries, nil); return p }()},
		{"entry type out of range", func() *raftpb.Message { p := valid(); p.Entries[0].Type = 2; return p }()},
		{"negative entry type", func() *raftpb.Message { p := valid(); p.Entries[0].Type = -1; return p }()},
		{"entry type that would truncate to normal", func() *raftpb.Message { p := valid(); p.Entries[0].Type = 256; return p }()},
		{"snapshot data without metadata", func() *raftpb.Message {
			p := valid()
			p.Type = raftpb.MessageType_MESSAGE_TYPE_SNAP
			p.Snapshot = &raftpb.Snapshot{Data: []byte("image")}
			return p
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := fromProto(c.p)
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("fromProto = %+v, %v; want an error wrapping errBadMessage", m, err)
			}
			if !reflect.DeepEqual(m, raftlogic.Message{}) {
				t.Errorf("fromProto returned %+v with its error, want the zero Message", m)
			}
		})
	}
	// toProto carries unknown raftlogic types by number; fromProto refuses them.
	for _, m := range []raftlogic.Message{
		{Type: 0, From: 1, To: 2, Term: 1},
		{Type: raftlogic.MsgTimeoutNow + 1, From: 1, To: 2, Term: 1},
		{Type: raftlogic.MsgApp, From: 1, To: 2, Term: 1, Entries: []raftlogic.Entry{{Index: 1, Term: 1, Type: 7}}},
	} {
		if _, err := fromProto(toProto(m)); !errors.Is(err, errBadMessage) {
			t.Errorf("fromProto(toProto(%+v)) = %v, want errBadMessage", m, err)
		}
	}
}

func TestOpenEnvelope(t *testing.T) {
	m := raftlogic.Message{Type: raftlogic.MsgHeartbeat, From: 1, To: 2, Term: 7, Commit: 3}
	if _, err := OpenEnvelope("prod", NewEnvelope("staging", m)); !errors.Is(err, errForeignCluster) {
		t.Errorf("foreign cluster: err = %v, want errForeignCluster", err)
	}
	if _, err := OpenEnvelope("prod", nil); !errors.Is(err, errBadMessage) {
		t.Errorf("nil envelope: err = %v, want errBadMessage", err)
	}
	if _, err := OpenEnvelope("prod", &raftpb.RaftEnvelope{ClusterId: "prod"}); !errors.Is(err, errBadMessage) {
		t.Errorf("envelope without message: err = %v, want errBadMessage", err)
	}
	got, err := OpenEnvelope("prod", NewEnvelope("prod", m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("OpenEnvelope = %+v, %v; want %+v", got, err, m)
	}
}

// FuzzFromProto feeds arbitrary bytes through proto.Unmarshal and fromProto:
// fromProto must never panic, must fail only with errBadMessage, and what it
// accepts must survive another toProto/fromProto unchanged.
func FuzzFromProto(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := proto.Marshal(toProto(m))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, p := range []*raftpb.Message{
		{Type: 99},
		{Type: 1, Entries: []*raftpb.Entry{{Type: 5}}},
		{Type: 9, Snapshot: &raftpb.Snapshot{Data: []byte("x")}},
	} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p raftpb.Message
		if err := proto.Unmarshal(data, &p); err != nil {
			return
		}
		m, err := fromProto(&p)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("fromProto error %v does not wrap errBadMessage", err)
			}
			return
		}
		again, err := fromProto(toProto(m))
		if err != nil {
			t.Fatalf("accepted %+v, but not after toProto: %v", m, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("second round trip changed the message\n got %+v\nwant %+v", again, m)
		}
	})
}
