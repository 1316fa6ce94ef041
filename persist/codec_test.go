package persist

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/raftkv/raftkv/raftlogic"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, e := range []raftlogic.Entry{
		{},
		{Index: 1, Term: 1},
		{Index: math.MaxUint64, Term: math.MaxUint64, Type: raftlogic.EntryConfChange, Data: []byte("conf")},
		{Index: 7, Term: 3, Data: bytes.Repeat([]byte{0xab}, 1000)},
	} {
		got, err := decodeEntry(appendEntry(nil, e))
		if err != nil || got.Index != e.Index || got.Term != e.Term || got.Type != e.Type || !bytes.Equal(got.Data, e.Data) {
			t.Errorf("entry %+v decoded as %+v, %v", e, got, err)
		}
	}
	hs := raftlogic.HardState{Term: 5, Vote: 2, Commit: math.MaxUint64}
	if got, err := decodeHardState(appendHardState(nil, hs)); err != nil || got != hs {
		t.Errorf("hard state decoded as %+v, %v", got, err)
	}
	for _, m := range []raftlogic.SnapshotMeta{
		{},
		{Index: 9, Term: 2, ConfState: raftlogic.ConfState{Voters: []uint64{1, 300, math.MaxUint64}}},
		{Index: 9, Term: 2, ConfState: raftlogic.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{7}}},
		{Index: 9, Term: 2, ConfState: raftlogic.ConfState{Voters: []uint64{1, 4, 5}, VotersOutgoing: []uint64{1, 2, 3}, Learners: []uint64{9}}},
		{Index: 9, Term: 2, ConfState: raftlogic.ConfState{VotersOutgoing: []uint64{3}}},
	} {
		rec := appendSnapshotMeta(nil, m)
		got, err := decodeSnapshotMeta(rec)
		if err != nil || got.Index != m.Index || got.Term != m.Term || !sameConf(got.ConfState, m.ConfState) {
			t.Errorf("snapshot meta %+v decoded as %+v, %v", m, got, err)
		}
		// Voters alone keep the v1 record, which the release before
		// membership changes reads.
		plain := len(m.ConfState.VotersOutgoing) == 0 && len(m.ConfState.Learners) == 0
		if want := byte(recordV2); plain {
			if rec[0] != recordV1 {
				t.Errorf("snapshot meta %+v written as version %d, want %d", m, rec[0], recordV1)
			}
		} else if rec[0] != want {
			t.Errorf("snapshot meta %+v written as version %d, want %d", m, rec[0], want)
		}
	}
	if got, err := decodeIndexRecord(appendIndexRecord(nil, 42)); err != nil || got != 42 {
		t.Errorf("index decoded as %d, %v", got, err)
	}
	// appendEntry must not disturb what dst already holds.
	prefix := []byte("keep")
	rec := appendEntry(prefix, raftlogic.Entry{Index: 1, Term: 1, Data: []byte("x")})
	if !bytes.HasPrefix(rec, []byte("keep")) {
		t.Errorf("appendEntry overwrote its destination")
	}
	if _, err := decodeEntry(rec[4:]); err != nil {
		t.Errorf("record appended after a prefix: %v", err)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	rec := appendEntry(nil, raftlogic.Entry{Index: 3, Term: 2, Data: []byte("payload")})
	for i := range rec {
		for _, bit := range []byte{0x01, 0x80} {
			bad := slices.Clone(rec)
			bad[i] ^= bit
			if _, err := decodeEntry(bad); !errors.Is(err, errRecord) {
				t.Fatalf("flipping bit %#x of byte %d: %v", bit, i, err)
			}
		}
	}
	for n := range len(rec) {
		if _, err := decodeEntry(rec[:n]); !errors.Is(err, errRecord) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	// A well-sealed body with trailing bytes was not written by us.
	hs := appendHardState(nil, raftlogic.HardState{Term: 1})
	long := sealRecord(append(slices.Clone(hs[:len(hs)-recordTail]), 0), 0)
	if _, err := decodeHardState(long); !errors.Is(err, errRecord) {
		t.Fatalf("trailing bytes: %v", err)
	}
	// So is one with an unknown version.
	v2 := slices.Clone(hs[:len(hs)-recordTail])
	v2[0] = 2
	if _, err := decodeHardState(sealRecord(v2, 0)); !errors.Is(err, errRecord) {
		t.Fatalf("unknown version: %v", err)
	}
}

// The fuzz targets check that no input makes a decoder panic, and that what
// decodes re-encodes to something that decodes the same.

func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, raftlogic.Entry{Index: 1, Term: 1, Data: []byte("set a 1")}))
	f.Add(appendEntry(nil, raftlogic.Entry{Index: math.MaxUint64, Term: 9, Type: raftlogic.EntryConfChange}))
	f.Add([]byte{})
	f.Add([]byte{recordV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		again, err := decodeEntry(appendEntry(nil, e))
		if err != nil || again.Index != e.Index || again.Term != e.Term || again.Type != e.Type || !bytes.Equal(again.Data, e.Data) {
			t.Fatalf("%+v re-decoded as %+v, %v", e, again, err)
		}
	})
}

func FuzzDecodeHardState(f *testing.F) {
	f.Add(appendHardState(nil, raftlogic.HardState{Term: 3, Vote: 1, Commit: 10}))
	f.Add([]byte{recordV1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := decodeHardState(b)
		if err != nil {
			return
		}
		if again, err := decodeHardState(appendHardState(nil, hs)); err != nil || again != hs {
			t.Fatalf("%+v re-decoded as %+v, %v", hs, again, err)
		}
	})
}

func FuzzDecodeSnapshotMeta(f *testing.F) {
	f.Add(appendSnapshotMeta(nil, raftlogic.SnapshotMeta{Index: 5, Term: 2, ConfState: raftlogic.ConfState{Voters: []uint64{1, 2, 3}}}))
	f.Add(sealRecord([]byte{recordV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, 0))
	f.Add(appendSnapshotMeta(nil, raftlogic.SnapshotMeta{Index: 5, Term: 2, ConfState: raftlogic.ConfState{Voters: []uint64{1}, VotersOutgoing: []uint64{2}, Learners: []uint64{3}}}))
	f.Add(sealRecord([]byte{recordV2, 0, 0, 0, 0, 0xff, 0x0f}, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSnapshotMeta(b)
		if err != nil {
			return
		}
		again, err := decodeSnapshotMeta(appendSnapshotMeta(nil, m))
		if err != nil || again.Index != m.Index || again.Term != m.Term || !sameConf(again.ConfState, m.ConfState) {
			t.Fatalf("%+v re-decoded as %+v, %v", m, again, err)
		}
	})
}

func FuzzDecodeIndexRecord(f *testing.F) {
	f.Add(appendIndexRecord(nil, 77))
	f.Fuzz(func(t *testing.T, b []byte) {
		i, err := decodeIndexRecord(b)
		if err != nil {
			return
		}
		if again, err := decodeIndexRecord(appendIndexRecord(nil, i)); err != nil || again != i {
			t.Fatalf("%d re-decoded as %d, %v", i, again, err)
		}
	})
}

func FuzzEntryKey(f *testing.F) {
	f.Add([]byte("r/e/\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte("r/hs"))
	f.Fuzz(func(t *testing.T, k []byte) {
		i, ok := parseEntryKey(k)
		if ok && !bytes.Equal(appendEntryKey(nil, i), k) {
			t.Fatalf("%q parsed as %d", k, i)
		}
	})
}

// FuzzDecodeSealed gets past the checksum, which random inputs almost never
// match, to reach the body parsers: it seals arbitrary bodies as version-1
// records and feeds them to every decoder.
func FuzzDecodeSealed(f *testing.F) {
	f.Add([]byte{0, 1, 1, 'x'})
	f.Add([]byte{3, 1, 10})
	f.Add([]byte{5, 2, 3, 1, 2, 3})
	f.Add([]byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := sealRecord(append([]byte{recordV1}, body...), 0)
		if e, err := decodeEntry(rec); err == nil {
			if again, err := decodeEntry(appendEntry(nil, e)); err != nil || again.Index != e.Index || !bytes.Equal(again.Data, e.Data) {
				t.Fatalf("entry %+v re-decoded as %+v, %v", e, again, err)
			}
		}
		if hs, err := decodeHardState(rec); err == nil {
			if again, err := decodeHardState(appendHardState(nil, hs)); err != nil || again != hs {
				t.Fatalf("hard state %+v re-decoded as %+v, %v", hs, again, err)
			}
		}
		if m, err := decodeSnapshotMeta(rec); err == nil {
			if again, err := decodeSnapshotMeta(appendSnapshotMeta(nil, m)); err != nil || !sameConf(again.ConfState, m.ConfState) {
				t.Fatalf("snapshot meta %+v re-decoded as %+v, %v", m, again, err)
			}
		}
		if i, err := decodeIndexRecord(rec); err == nil {
			if again, err := decodeIndexRecord(appendIndexRecord(nil, i)); err != nil || again != i {
				t.Fatalf("index %d re-decoded as %d, %v", i, again, err)
			}
		}
	})
}

func sameConf(a, b raftlogic.ConfState) bool {
	return slices.Equal(a.Voters, b.Voters) && slices.Equal(a.VotersOutgoing, b.VotersOutgoing) && slices.Equal(a.Learners, b.Learners)
}
