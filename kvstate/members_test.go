package kvstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/raftlogic"
)

func confEntry(t testing.TB, idx, term uint64, added []Member, changes ...raftlogic.ConfChangeSingle) raftlogic.Entry {
	t.Helper()
	ctx, err := EncodeMembers(added)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) == 0 {
		ctx = nil
	}
	// The configuration an entry results in is raftlogic's to compute; any
	// valid one will do here, and it names the entry's index so that tests
	// can tell which entry's configuration the state holds.
	data := raftlogic.EncodeConfChange(raftlogic.ConfChange{Changes: changes, Context: ctx}, confOf(idx))
	return raftlogic.Entry{Index: idx, Term: term, Type: raftlogic.EntryConfChange, Data: data}
}

func confOf(idx uint64) raftlogic.ConfState {
	return raftlogic.ConfState{Voters: []uint64{1}, Learners: []uint64{100 + idx}}
}

func mustConf(t testing.TB, s *State, want raftlogic.ConfState) {
	t.Helper()
	got, err := s.Conf()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Conf = %+v, %v; want %+v", got, err, want)
	}
}

func addLearner(id uint64) raftlogic.ConfChangeSingle {
	return raftlogic.ConfChangeSingle{Type: raftlogic.ConfChangeAddLearner, NodeID: id}
}

func mustMembers(t testing.TB, s *State, want ...Member) {
	t.Helper()
	got, err := s.Members()
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Fatalf("Members = %+v, want %+v", got, want)
	}
}

var (
	m1 = Member{ID: 1, PeerAddress: "10.0.0.1:7001", ClientAddress: "10.0.0.1:8001"}
	m2 = Member{ID: 2, PeerAddress: "10.0.0.2:7001", ClientAddress: "10.0.0.2:8001"}
	m4 = Member{ID: 4, PeerAddress: "db4.example:7001"}
)

func TestMembersEncodingRoundTrip(t *testing.T) {
	for _, ms := range [][]Member{nil, {m1}, {m1, m2, m4}, {{ID: 1 << 60}}} {
		b, err := EncodeMembers(ms)
		if err != nil {
			t.Fatalf("EncodeMembers(%+v): %v", ms, err)
		}
		got, err := DecodeMembers(b)
		if err != nil || len(got) != len(ms) || (len(ms) > 0 && !reflect.DeepEqual(got, ms)) {
			t.Fatalf("DecodeMembers(EncodeMembers(%+v)) = %+v, %v", ms, got, err)
		}
	}
}

func TestMembersEncodingRefusesBadInput(t *testing.T) {
	long := strings.Repeat("a", MaxAddressLen+1)
	for name, ms := range map[string][]Member{
		"zero id":             {{ID: 0, PeerAddress: "x:1"}},
		"duplicate id":        {m1, m1},
		"long peer address":   {{ID: 3, PeerAddress: long}},
		"long client address": {{ID: 3, ClientAddress: long}},
	} {
		if _, err := EncodeMembers(ms); !errors.Is(err, ErrBadMember) {
			t.Errorf("%s: EncodeMembers error = %v, want ErrBadMember", name, err)
		}
	}
	good, _ := EncodeMembers([]Member{m1, m2})
	for name, b := range map[string][]byte{
		"unknown version": append([]byte{9}, good[1:]...),
		"truncated":       good[:len(good)-3],
		"trailing bytes":  append(good[:len(good):len(good)], 0),
		"huge count":      {membersV1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"zero id":         {membersV1, 1, 0, 0, 0},
		"duplicate id":    {membersV1, 2, 5, 0, 0, 5, 0, 0},
	} {
		if ms, err := DecodeMembers(b); !errors.Is(err, ErrBadMember) {
			t.Errorf("%s: DecodeMembers = %+v, %v; want ErrBadMember", name, ms, err)
		}
	}
}

func FuzzDecodeMembers(f *testing.F) {
	good, _ := EncodeMembers([]Member{m1, m2})
	f.Add(good)
	f.Add([]byte{membersV1, 1, 7, 3, 'a', ':', '1', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := DecodeMembers(b)
		if err != nil {
			return
		}
		again, err := EncodeMembers(ms)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", ms, err)
		}
		if ms2, err := DecodeMembers(again); err != nil || len(ms2) != len(ms) || (len(ms) > 0 && !reflect.DeepEqual(ms2, ms)) {
			t.Fatalf("%+v re-decoded as %+v, %v", ms, ms2, err)
		}
	})
}

func TestConfChangesMaintainTheMemberTable(t *testing.T) {
	s, _, _ := newState(t, Options{})
	if err := s.InitMembers([]Member{m1, m2}); err != nil {
		t.Fatal(err)
	}
	mustMembers(t, s, m1, m2)
	mustConf(t, s, raftlogic.ConfState{Voters: []uint64{1, 2}})
	res := mustApply(t, s,
		confEntry(t, 1, 1, []Member{m4}, addLearner(4)),
		// A promotion carries no addresses and keeps the record.
		confEntry(t, 2, 1, nil, raftlogic.ConfChangeSingle{Type: raftlogic.ConfChangeAddVoter, NodeID: 4}),
	)
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("entry %d: %v", r.Index, r.Err)
		}
	}
	mustMembers(t, s, m1, m2, m4)
	mustConf(t, s, confOf(2))
	mustApply(t, s, confEntry(t, 3, 1, nil, raftlogic.ConfChangeSingle{Type: raftlogic.ConfChangeRemoveNode, NodeID: 2}))
	mustMembers(t, s, m1, m4)
	// A learner added without its addresses in the Context is recorded
	// without them, so the table still lists every member.
	mustApply(t, s, confEntry(t, 4, 1, []Member{m2}, addLearner(5)))
	mustMembers(t, s, m1, m4, Member{ID: 5})
}

func TestBadConfChangeAdvancesAppliedAndChangesNoMember(t *testing.T) {
	s, _, _ := newState(t, Options{})
	if err := s.InitMembers([]Member{m1}); err != nil {
		t.Fatal(err)
	}
	bad := confEntry(t, 1, 1, nil, addLearner(4))
	// Replace the Context with bytes that do not decode as members.
	cc, cs, err := raftlogic.DecodeConfChange(bad.Data)
	if err != nil {
		t.Fatal(err)
	}
	cc.Context = []byte{membersV1, 1, 4}
	bad.Data = raftlogic.EncodeConfChange(cc, cs)
	res := mustApply(t, s, bad, raftlogic.Entry{Index: 2, Term: 1, Type: raftlogic.EntryConfChange, Data: []byte("junk")})
	if !errors.Is(res[0].Err, ErrBadMember) {
		t.Errorf("bad Context: Err = %v, want ErrBadMember", res[0].Err)
	}
	if !errors.Is(res[1].Err, ErrBadCommand) {
		t.Errorf("undecodable change: Err = %v, want ErrBadCommand", res[1].Err)
	}
	if i, _ := s.Applied(); i != 2 {
		t.Fatalf("Applied = %d, want 2", i)
	}
	// The configuration follows the entry whose Context was bad, as
	// raftlogic does; the undecodable one changes nothing.
	mustMembers(t, s, m1)
	mustConf(t, s, confOf(1))
}

func TestInitMembersOnlyOnANewState(t *testing.T) {
	s, _, _ := newState(t, Options{})
	if err := s.InitMembers([]Member{m1, {ID: 0}}); !errors.Is(err, ErrBadMember) {
		t.Fatalf("InitMembers with id 0 = %v, want ErrBadMember", err)
	}
	mustMembers(t, s)
	if err := s.InitMembers([]Member{m1}); err != nil {
		t.Fatal(err)
	}
	// A second call (a restart reading config.yaml again) changes nothing.
	if err := s.InitMembers([]Member{m2}); err != nil {
		t.Fatal(err)
	}
	mustMembers(t, s, m1)

	// Nor does a call once entries are applied, even with an empty table.
	s2, _, _ := newState(t, Options{})
	mustApply(t, s2, noop(1, 1))
	if err := s2.InitMembers([]Member{m2}); err != nil {
		t.Fatal(err)
	}
	mustMembers(t, s2)
}

func TestSnapshotCarriesMembers(t *testing.T) {
	src, _, _ := newState(t, Options{})
	if err := src.InitMembers([]Member{m1, m2}); err != nil {
		t.Fatal(err)
	}
	mustApply(t, src, ent(1, 1, put(0, 0, "a", "b")), confEntry(t, 2, 1, []Member{m4}, addLearner(4)))
	img, _, _, err := src.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	dst, _, _ := newState(t, Options{})
	if err := dst.InitMembers([]Member{{ID: 9, PeerAddress: "old:1"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dst.Restore(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	mustMembers(t, dst, m1, m2, m4)
	mustConf(t, dst, confOf(2))
	mustGet(t, dst, "a", "b")
	meta, err := src.SnapshotMeta(io.Discard)
	if err != nil || meta.Index != 2 || !reflect.DeepEqual(meta.ConfState, confOf(2)) {
		t.Fatalf("SnapshotMeta = %+v, %v; want index 2 and the configuration of entry 2", meta, err)
	}
}

// reversion rewrites an image's version byte and checksum.
func reversion(img []byte, v byte) []byte {
	out := bytes.Clone(img)
	out[4] = v
	n := len(out) - 4
	binary.BigEndian.PutUint32(out[n:], crc32.Checksum(out[:n], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

func TestVersion2ImagesStillRestoreAndHoldNoMembers(t *testing.T) {
	src, _, _ := newState(t, Options{})
	mustApply(t, src, ent(1, 1, put(0, 0, "a", "b")))
	img, _, _, err := src.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	dst, _, _ := newState(t, Options{})
	if _, _, err := dst.Restore(bytes.NewReader(reversion(img, 2))); err != nil {
		t.Fatalf("version 2 image: %v", err)
	}
	mustGet(t, dst, "a", "b")

	if err := src.InitMembers([]Member{m1}); err != nil { // no-op: applied > 0
		t.Fatal(err)
	}
	withMember, _, _ := newState(t, Options{})
	if err := withMember.InitMembers([]Member{m1}); err != nil {
		t.Fatal(err)
	}
	img, _, _, err = withMember.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dst.Restore(bytes.NewReader(reversion(img, 2))); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("member record in a version 2 image: %v, want ErrBadSnapshot", err)
	}
	mustGet(t, dst, "a", "b")
}
