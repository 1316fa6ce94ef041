package kvstate

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
)

// Snapshot format (version 3). A byte stream that can be written and read in
// one pass, with every length checked before use:
//
//	header   "RKVS" | version (1 byte, =3) | applied index (u64) | applied term (u64)
//	records  tag (1 byte) followed by:
//	  0x01 data     keyLen (uvarint) | key | valueLen (uvarint) | value
//	  0x02 session  client id (u64) | last seq (u64) | last index (u64) | answer code (1 byte)
//	                (id <= last index <= applied index: the id is its register
//	                entry's index; last seq is 0 until its first command ran)
//	  0x03 member   member id (u64) | peerLen (uvarint) | peer address | clientLen (uvarint) | client address
//	  0x04 conf     len (uvarint) | the configuration record (m/conf; at most one)
//	end      0xFF | record count (u64)
//	trailer  CRC-32C (Castagnoli) of every byte above (u32)
//
// Integers are big-endian. Data keys are user keys (without "k/"), in
// ascending order; sessions follow, by client id, then members, by id. The
// stream ends at the trailer: Restore refuses trailing bytes, so r must hold
// exactly one image. The image is one Badger read transaction, so the data,
// the sessions, the members and the applied index are the same point in
// time. Version 2 is version 3 without member records (it came before
// membership changes) and is still read. Version 1 had the same records,
// but its sessions were created by their first command under client-chosen
// ids; a node cannot apply entries under version 2 rules on top of them, so
// version 1 images are refused (see layoutVersion).

const (
	snapMagic   = "RKVS"
	snapVersion = 3

	tagData    byte = 0x01
	tagSession byte = 0x02
	tagMember  byte = 0x03
	tagConf    byte = 0x04
	tagEnd     byte = 0xFF

	// maxSnapValue bounds a value length read from a snapshot, so a
	// corrupted length fails instead of asking for an absurd allocation
	// (values are also read in chunks, so a truncated stream fails early).
	maxSnapValue = 1 << 30
	// maxConfRecord bounds a configuration record read from a snapshot:
	// thousands of members.
	maxConfRecord = 1 << 20
)

// Snapshot writes a consistent image of the committed state to w and
// returns the applied index and term it covers (see SnapshotMeta): Durable
// at the time, not Applied, since the entries in the pending transaction
// are not committed. That is what a follower may be sent: the image is a
// state that survives a crash, and its index is never below a point the
// log was compacted to (the node compacts only up to Durable). It reads one
// Badger transaction, so it runs alongside Apply and Flush without
// blocking them and reflects exactly the entries up to the returned index. Sessions already expired at that index are left
// out (they answer nothing any more).
func (s *State) Snapshot(w io.Writer) (index, term uint64, err error) {
	meta, err := s.SnapshotMeta(w)
	return meta.Index, meta.Term, err
}

// SnapshotMeta is Snapshot, returning the configuration the image was
// taken under too (empty if the state records none; see Conf): the
// metadata a receiver installs the image with.
func (s *State) SnapshotMeta(w io.Writer) (meta raftlogic.SnapshotMeta, err error) {
	s.viewMu.RLock()
	if s.broken != nil {
		s.viewMu.RUnlock()
		return raftlogic.SnapshotMeta{}, s.broken
	}
	txn := s.db.NewTransaction(false)
	s.viewMu.RUnlock()
	defer txn.Discard()

	index, term, err := readApplied(txn)
	if err != nil {
		return raftlogic.SnapshotMeta{}, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	sw := &snapWriter{w: bw, crc: newCRC()}
	hdr := make([]byte, 0, 21)
	hdr = append(hdr, snapMagic...)
	hdr = append(hdr, snapVersion)
	hdr = append(hdr, encodeIndexTerm(index, term)...)
	sw.write(hdr)

	var count uint64
	var buf []byte
	err = iterate(txn, prefixData, true, func(item *badger.Item) error {
		key := item.Key()[len(prefixData):]
		return item.Value(func(v []byte) error {
			buf = append(buf[:0], tagData)
			buf = binary.AppendUvarint(buf, uint64(len(key)))
			buf = append(buf, key...)
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			sw.write(buf)
			sw.write(v)
			count++
			return sw.err
		})
	})
	if err != nil {
		return raftlogic.SnapshotMeta{}, fmt.Errorf("kvstate: snapshot: %w", err)
	}
	err = iterate(txn, prefixSession, true, func(item *badger.Item) error {
		id, ok := parseU64Key(item.Key(), prefixSession)
		if !ok {
			return fmt.Errorf("%w: session key %q", errCorruptState, item.Key())
		}
		return item.Value(func(v []byte) error {
			ss, err := decodeSession(v)
			if err != nil {
				return err
			}
			if !live(ss.lastIndex, index, s.ttl) {
				return nil
			}
			buf = append(buf[:0], tagSession)
			buf = binary.BigEndian.AppendUint64(buf, id)
			buf = binary.BigEndian.AppendUint64(buf, ss.seq)
			buf = binary.BigEndian.AppendUint64(buf, ss.lastIndex)
			buf = append(buf, ss.code)
			sw.write(buf)
			count++
			return sw.err
		})
	})
	if err != nil {
		return raftlogic.SnapshotMeta{}, fmt.Errorf("kvstate: snapshot: %w", err)
	}
	err = iterate(txn, prefixMember, true, func(item *badger.Item) error {
		id, ok := parseU64Key(item.Key(), prefixMember)
		if !ok {
			return fmt.Errorf("%w: member key %q", errCorruptState, item.Key())
		}
		return item.Value(func(v []byte) error {
			m, err := decodeMemberRecord(id, v)
			if err != nil {
				return err
			}
			buf = binary.BigEndian.AppendUint64(append(buf[:0], tagMember), id)
			sw.write(appendAddrs(buf, m))
			count++
			return sw.err
		})
	})
	if err != nil {
		return raftlogic.SnapshotMeta{}, fmt.Errorf("kvstate: snapshot: %w", err)
	}
	conf, err := readConf(txn)
	if err != nil {
		return raftlogic.SnapshotMeta{}, fmt.Errorf("kvstate: snapshot: %w", err)
	}
	if !confEmpty(conf) {
		rec := encodeConf(conf)
		sw.write(append(binary.AppendUvarint([]byte{tagConf}, uint64(len(rec))), rec...))
		count++
	}
	sw.write(binary.BigEndian.AppendUint64([]byte{tagEnd}, count))
	if sw.err == nil {
		_, sw.err = bw.Write(binary.BigEndian.AppendUint32(nil, sw.crc.Sum32()))
	}
	if sw.err == nil {
		sw.err = bw.Flush()
	}
	if sw.err != nil {
		return raftlogic.SnapshotMeta{}, fmt.Errorf("kvstate: writing snapshot: %w", sw.err)
	}
	return raftlogic.SnapshotMeta{Index: index, Term: term, ConfState: conf}, nil
}

// newCRC returns the snapshot checksum: CRC-32C, which has hardware support

// newCRC returns the snapshot checksum: CRC-32C, which has hardware support
// on common CPUs.
func newCRC() hash.Hash32 { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }

// snapWriter writes and checksums, keeping the first error.
type snapWriter struct {
	w   io.Writer
	crc hash.Hash32
	err error
}

func (sw *snapWriter) write(b []byte) {
	if sw.err != nil {
		return
	}
	if _, sw.err = sw.w.Write(b); sw.err == nil {
		sw.crc.Write(b)
	}
}
