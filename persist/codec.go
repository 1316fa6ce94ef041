package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/raftkv/raftkv/raftlogic"
)

// Every record is laid out as
//
//	version (1 byte) | body | CRC-32C of version and body (4 bytes, little-endian)
//
// The version byte lets a later release change a body without guessing what
// an old file holds; the checksum catches torn or overwritten values that
// would otherwise still parse (Badger checks its own blocks, but not every
// path, and not what someone else wrote under our keys). Integers in bodies
// are unsigned varints: indexes and terms are small numbers, so a typical
// entry header costs a handful of bytes.
const (
	recordV1 = 1
	// recordV2 is only used by snapshot metadata, for a configuration with
	// learners or a joint half (v1 holds voters only). Metadata without
	// them is still written as v1, so a data directory that never changed
	// membership stays readable by the release before.
	recordV2 = 2
)

const (
	recordHead = 1 // version byte
	recordTail = 4 // checksum
	// recordMin is the size of a record with an empty body.
	recordMin = recordHead + recordTail
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errRecord is the cause decoders report; callers wrap it with errCorrupt
// and the key it was read from, which the decoder does not know.
var errRecord = errors.New("malformed record")

// sealRecord appends the checksum over rec[start:], which must already hold
// the version byte and body.
func sealRecord(rec []byte, start int) []byte {
	return binary.LittleEndian.AppendUint32(rec, crc32.Checksum(rec[start:], castagnoli))
}

// openRecord checks a v1 record's frame and returns its body.
func openRecord(b []byte) ([]byte, error) {
	v, body, err := openVersioned(b, recordV1)
	if err == nil && v != recordV1 {
		err = fmt.Errorf("%w: unknown version %d", errRecord, v)
	}
	return body, err
}

// openVersioned checks a record's frame and returns its version, at most
// newest, and body.
func openVersioned(b []byte, newest byte) (byte, []byte, error) {
	if len(b) < recordMin {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte frame", errRecord, len(b), recordMin)
	}
	n := len(b) - recordTail
	if want, got := binary.LittleEndian.Uint32(b[n:]), crc32.Checksum(b[:n], castagnoli); want != got {
		return 0, nil, fmt.Errorf("%w: checksum %08x, computed %08x", errRecord, want, got)
	}
	if b[0] < recordV1 || b[0] > newest {
		return 0, nil, fmt.Errorf("%w: unknown version %d", errRecord, b[0])
	}
	return b[0], b[recordHead:n], nil
}

// reader walks a record body; the first failure sticks so decoders can read
// every field and check once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint for %s", errRecord, field)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte(field string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = fmt.Errorf("%w: missing %s", errRecord, field)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// end fails if bytes are left over: a body that is longer than its fields
// was not written by this code.
func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errRecord, len(r.b))
	}
	return r.err
}

// entryHeaderMax bounds the encoded size of an entry apart from its data,
// so a batch can size its buffer once.
const entryHeaderMax = recordMin + 1 + 2*binary.MaxVarintLen64

// MaxEntryOverhead bounds what storing a log entry adds to its data (record
// frame, type, index and term): an entry of n data bytes is one Badger value
// of at most n + MaxEntryOverhead bytes.
const MaxEntryOverhead = entryHeaderMax

// appendEntry appends e's record: type, index, term, then the data, whose
// length is what is left before the checksum.
func appendEntry(dst []byte, e raftlogic.Entry) []byte {
	start := len(dst)
	dst = append(dst, recordV1, byte(e.Type))
	dst = binary.AppendUvarint(dst, e.Index)
	dst = binary.AppendUvarint(dst, e.Term)
	dst = append(dst, e.Data...)
	return sealRecord(dst, start)
}

// decodeEntry decodes an entry record. The returned Data aliases b (nil when
// empty); callers that keep it past b's lifetime must copy it.
func decodeEntry(b []byte) (raftlogic.Entry, error) {
	body, err := openRecord(b)
	if err != nil {
		return raftlogic.Entry{}, err
	}
	r := reader{b: body}
	var e raftlogic.Entry
	e.Type = raftlogic.EntryType(r.byte("type"))
	e.Index = r.uvarint("index")
	e.Term = r.uvarint("term")
	if r.err != nil {
		return raftlogic.Entry{}, r.err
	}
	if len(r.b) > 0 {
		e.Data = r.b[:len(r.b):len(r.b)]
	}
	return e, nil
}

// appendHardState appends hs's record: term, vote, commit.
func appendHardState(dst []byte, hs raftlogic.HardState) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.AppendUvarint(dst, hs.Term)
	dst = binary.AppendUvarint(dst, hs.Vote)
	dst = binary.AppendUvarint(dst, hs.Commit)
	return sealRecord(dst, start)
}

func decodeHardState(b []byte) (raftlogic.HardState, error) {
	body, err := openRecord(b)
	if err != nil {
		return raftlogic.HardState{}, err
	}
	r := reader{b: body}
	hs := raftlogic.HardState{Term: r.uvarint("term"), Vote: r.uvarint("vote"), Commit: r.uvarint("commit")}
	if err := r.end(); err != nil {
		return raftlogic.HardState{}, err
	}
	return hs, nil
}

// appendSnapshotMeta appends m's record: index, term, then the voters as a
// count and ids; version 2 adds the outgoing voters and the learners, the
// same way.
func appendSnapshotMeta(dst []byte, m raftlogic.SnapshotMeta) []byte {
	start := len(dst)
	cs := m.ConfState
	v2 := len(cs.VotersOutgoing) > 0 || len(cs.Learners) > 0
	if v2 {
		dst = append(dst, recordV2)
	} else {
		dst = append(dst, recordV1)
	}
	dst = binary.AppendUvarint(dst, m.Index)
	dst = binary.AppendUvarint(dst, m.Term)
	dst = appendIDs(dst, cs.Voters)
	if v2 {
		dst = appendIDs(dst, cs.VotersOutgoing)
		dst = appendIDs(dst, cs.Learners)
	}
	return sealRecord(dst, start)
}

func appendIDs(dst []byte, ids []uint64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = binary.AppendUvarint(dst, id)
	}
	return dst
}

func decodeSnapshotMeta(b []byte) (raftlogic.SnapshotMeta, error) {
	v, body, err := openVersioned(b, recordV2)
	if err != nil {
		return raftlogic.SnapshotMeta{}, err
	}
	r := reader{b: body}
	m := raftlogic.SnapshotMeta{Index: r.uvarint("index"), Term: r.uvarint("term")}
	m.ConfState.Voters = r.ids("voter")
	if v == recordV2 {
		m.ConfState.VotersOutgoing = r.ids("outgoing voter")
		m.ConfState.Learners = r.ids("learner")
	}
	if err := r.end(); err != nil {
		return raftlogic.SnapshotMeta{}, err
	}
	return m, nil
}

// ids reads a count and that many ids (nil for none).
func (r *reader) ids(what string) []uint64 {
	n := r.uvarint(what + " count")
	// Each id takes at least one byte, so a count larger than what is left
	// is damage; checking first keeps a bad count from sizing a huge
	// allocation.
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: %d %ss in %d bytes", errRecord, n, what, len(r.b))
	}
	if r.err != nil || n == 0 {
		return nil
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.uvarint(what)
	}
	return out
}

// appendIndexRecord appends the record of a bare log index (the r/last key).
func appendIndexRecord(dst []byte, i uint64) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.AppendUvarint(dst, i)
	return sealRecord(dst, start)
}

func decodeIndexRecord(b []byte) (uint64, error) {
	body, err := openRecord(b)
	if err != nil {
		return 0, err
	}
	r := reader{b: body}
	i := r.uvarint("index")
	if err := r.end(); err != nil {
		return 0, err
	}
	return i, nil
}
