package kvstate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Reading an image (the format is described in image.go): every length
// checked before use, nothing kept in memory beyond one record.

// VerifySnapshot reads an image from r as Restore would, without writing
// anything, and returns the applied index and term it covers. An image that
// is truncated, corrupted or followed by trailing bytes gives an error
// wrapping ErrBadSnapshot. It holds no more than one key in memory, however
// large the image or its values, so a receiver can check an image it has
// stored before anyone relies on it.
func VerifySnapshot(r io.Reader) (index, term uint64, err error) {
	return readImage(r, nil)
}

// stage reads an image from r into the staging area and verifies it;

// readImage reads one image from r, checking every length, the checksum and
// the end of the stream, and hands each record to put as the key and value
// it is stored under. put's slices are its own. With a nil put values are
// skipped instead of read into memory. A nil error means the whole image
// checked out; records put before an error belong to a bad image.
func readImage(r io.Reader, put func(key, value []byte) error) (index, term uint64, err error) {
	sr := &snapReader{r: bufio.NewReaderSize(r, 64<<10), crc: newCRC()}
	hdr := sr.read(21)
	if sr.err != nil {
		return 0, 0, sr.fail("header")
	}
	if string(hdr[:4]) != snapMagic {
		return 0, 0, fmt.Errorf("%w: not a kvstate snapshot (magic %q)", ErrBadSnapshot, hdr[:4])
	}
	version := hdr[4]
	switch version {
	case snapVersion, 2:
	case 1:
		return 0, 0, fmt.Errorf("%w: format version 1 comes from an older RaftKV (sessions created by their first command); this version reads only version %d", ErrBadSnapshot, snapVersion)
	default:
		return 0, 0, fmt.Errorf("%w: unknown format version %d", ErrBadSnapshot, hdr[4])
	}
	index, term = binary.BigEndian.Uint64(hdr[5:]), binary.BigEndian.Uint64(hdr[13:])

	var count uint64
	sawConf := false
	for {
		tag := sr.read(1)
		if sr.err != nil {
			return 0, 0, sr.fail(fmt.Sprintf("record %d", count))
		}
		switch tag[0] {
		case tagData:
			klen := sr.uvarint()
			if sr.err == nil && (klen == 0 || klen > MaxKeySize) {
				return 0, 0, fmt.Errorf("%w: record %d: key length %d", ErrBadSnapshot, count, klen)
			}
			key := sr.read(klen)
			vlen := sr.uvarint()
			if sr.err == nil && vlen > maxSnapValue {
				return 0, 0, fmt.Errorf("%w: record %d: value length %d", ErrBadSnapshot, count, vlen)
			}
			var val []byte
			if put == nil {
				sr.skip(vlen)
			} else {
				val = sr.read(vlen)
			}
			if sr.err != nil {
				return 0, 0, sr.fail(fmt.Sprintf("record %d", count))
			}
			if put != nil {
				if err := put(append([]byte(prefixData), key...), val); err != nil {
					return 0, 0, err
				}
			}
		case tagSession:
			b := sr.read(25)
			if sr.err != nil {
				return 0, 0, sr.fail(fmt.Sprintf("record %d", count))
			}
			id := binary.BigEndian.Uint64(b)
			ss := session{seq: binary.BigEndian.Uint64(b[8:]), lastIndex: binary.BigEndian.Uint64(b[16:]), code: b[24]}
			if id == 0 || id > ss.lastIndex || ss.lastIndex > index || ss.code > codeNotFound {
				return 0, 0, fmt.Errorf("%w: record %d: invalid session for client %d", ErrBadSnapshot, count, id)
			}
			if put != nil {
				if err := put(sessionKey(id), ss.encode()); err != nil {
					return 0, 0, err
				}
				if err := put(expiryKey(ss.lastIndex), u64(id)); err != nil {
					return 0, 0, err
				}
			}
		case tagMember:
			if version < 3 {
				return 0, 0, fmt.Errorf("%w: record %d: member record in a version %d image", ErrBadSnapshot, count, version)
			}
			id := sr.read(8)
			var addrs [2][]byte
			for i := range addrs {
				n := sr.uvarint()
				if sr.err == nil && n > MaxAddressLen {
					return 0, 0, fmt.Errorf("%w: record %d: address of %d bytes", ErrBadSnapshot, count, n)
				}
				addrs[i] = sr.read(n)
			}
			if sr.err != nil {
				return 0, 0, sr.fail(fmt.Sprintf("record %d", count))
			}
			m := Member{ID: binary.BigEndian.Uint64(id), PeerAddress: string(addrs[0]), ClientAddress: string(addrs[1])}
			if err := m.Validate(); err != nil {
				return 0, 0, fmt.Errorf("%w: record %d: %w", ErrBadSnapshot, count, err)
			}
			if put != nil {
				if err := put(memberKey(m.ID), encodeMemberRecord(m)); err != nil {
					return 0, 0, err
				}
			}
		case tagConf:
			n := sr.uvarint()
			if sr.err == nil && n > maxConfRecord {
				return 0, 0, fmt.Errorf("%w: record %d: configuration of %d bytes", ErrBadSnapshot, count, n)
			}
			rec := sr.read(n)
			if sr.err != nil {
				return 0, 0, sr.fail(fmt.Sprintf("record %d", count))
			}
			if version < 3 || sawConf {
				return 0, 0, fmt.Errorf("%w: record %d: unexpected configuration record", ErrBadSnapshot, count)
			}
			sawConf = true
			if _, err := decodeConf(rec); err != nil {
				return 0, 0, fmt.Errorf("%w: record %d: %w", ErrBadSnapshot, count, err)
			}
			if put != nil {
				if err := put([]byte(keyConf), rec); err != nil {
					return 0, 0, err
				}
			}
		case tagEnd:
			n := sr.read(8)
			if sr.err != nil {
				return 0, 0, sr.fail("end record")
			}
			want := sr.crc.Sum32()
			got := make([]byte, 4)
			if _, err := io.ReadFull(sr.r, got); err != nil {
				return 0, 0, fmt.Errorf("%w: checksum: %w", ErrBadSnapshot, unexpected(err))
			}
			if binary.BigEndian.Uint32(got) != want {
				return 0, 0, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
			}
			if c := binary.BigEndian.Uint64(n); c != count {
				return 0, 0, fmt.Errorf("%w: end record counts %d records, read %d", ErrBadSnapshot, c, count)
			}
			if _, err := sr.r.ReadByte(); err != io.EOF {
				if err == nil {
					return 0, 0, fmt.Errorf("%w: trailing bytes after the checksum", ErrBadSnapshot)
				}
				return 0, 0, fmt.Errorf("kvstate: restore: reading past the checksum: %w", err)
			}
			return index, term, nil
		default:
			return 0, 0, fmt.Errorf("%w: record %d: unknown tag 0x%02x", ErrBadSnapshot, count, tag[0])
		}
		count++
	}
}

// snapReader reads and checksums, keeping the first error.
type snapReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	err error
	// scratch is skip's buffer.
	scratch []byte
}

// skip reads and checksums the next n bytes without keeping them.
func (sr *snapReader) skip(n uint64) {
	if sr.err != nil {
		return
	}
	if sr.scratch == nil {
		sr.scratch = make([]byte, 32<<10)
	}
	for n > 0 {
		b := sr.scratch[:min(n, uint64(len(sr.scratch)))]
		if _, err := io.ReadFull(sr.r, b); err != nil {
			sr.err = err
			return
		}
		sr.crc.Write(b)
		n -= uint64(len(b))
	}
}

// read returns the next n bytes in a new slice. Large reads grow the slice
// as data arrives, so a corrupted length cannot force a huge allocation.
func (sr *snapReader) read(n uint64) []byte {
	if sr.err != nil {
		return nil
	}
	const chunk = 1 << 20
	b := make([]byte, 0, min(n, chunk))
	for uint64(len(b)) < n {
		m := min(n-uint64(len(b)), chunk)
		start := len(b)
		b = append(b, make([]byte, m)...)
		if _, err := io.ReadFull(sr.r, b[start:]); err != nil {
			sr.err = err
			return nil
		}
	}
	sr.crc.Write(b)
	return b
}

func (sr *snapReader) uvarint() uint64 {
	if sr.err != nil {
		return 0
	}
	var buf [binary.MaxVarintLen64]byte
	for i := range buf {
		c, err := sr.r.ReadByte()
		if err != nil {
			sr.err = err
			return 0
		}
		buf[i] = c
		if c < 0x80 {
			sr.crc.Write(buf[:i+1])
			v, n := binary.Uvarint(buf[:i+1])
			if n <= 0 {
				sr.err = errBadVarint
				return 0
			}
			return v
		}
	}
	sr.err = errBadVarint
	return 0
}

// fail turns a read error into the error Restore returns: end of input and
// malformed varints mean a bad image; anything else is the reader's fault.
func (sr *snapReader) fail(where string) error {
	err := unexpected(sr.err)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errBadVarint) {
		return fmt.Errorf("%w: %s: %w", ErrBadSnapshot, where, err)
	}
	return fmt.Errorf("kvstate: restore: reading %s: %w", where, err)
}

// errBadVarint is snapReader's own format error.
var errBadVarint = errors.New("malformed varint")

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
