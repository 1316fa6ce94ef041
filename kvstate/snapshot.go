package kvstate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/dgraph-io/badger/v4"
)

// Snapshot format (version 2). A byte stream that can be written and read in
// one pass, with every length checked before use:
//
//	header   "RKVS" | version (1 byte, =2) | applied index (u64) | applied term (u64)
//	records  tag (1 byte) followed by:
//	  0x01 data     keyLen (uvarint) | key | valueLen (uvarint) | value
//	  0x02 session  client id (u64) | last seq (u64) | last index (u64) | answer code (1 byte)
//	                (id <= last index <= applied index: the id is its register
//	                entry's index; last seq is 0 until its first command ran)
//	end      0xFF | record count (u64)
//	trailer  CRC-32C (Castagnoli) of every byte above (u32)
//
// Integers are big-endian. Data keys are user keys (without "k/"), in
// ascending order; sessions follow, by client id. The stream ends at the
// trailer: Restore refuses trailing bytes, so r must hold exactly one image.
// The image is one Badger read transaction, so the data, the sessions and
// the applied index are the same point in time. Version 1 had the same
// records, but its sessions were created by their first command under
// client-chosen ids; a node cannot apply entries under version 2 rules on
// top of them, so version 1 images are refused (see layoutVersion).

const (
	snapMagic   = "RKVS"
	snapVersion = 2

	tagData    byte = 0x01
	tagSession byte = 0x02
	tagEnd     byte = 0xFF

	// maxSnapValue bounds a value length read from a snapshot, so a
	// corrupted length fails instead of asking for an absurd allocation
	// (values are also read in chunks, so a truncated stream fails early).
	maxSnapValue = 1 << 30
)

// Snapshot writes a consistent image of the state to w and returns the
// applied index and term it covers. It reads one Badger transaction, so it
// runs alongside Apply without blocking it and reflects exactly the entries
// up to the returned index. Sessions already expired at that index are left
// out (they answer nothing any more).
func (s *State) Snapshot(w io.Writer) (index, term uint64, err error) {
	s.viewMu.RLock()
	if s.broken != nil {
		s.viewMu.RUnlock()
		return 0, 0, s.broken
	}
	txn := s.db.NewTransaction(false)
	s.viewMu.RUnlock()
	defer txn.Discard()

	index, term, err = readApplied(txn)
	if err != nil {
		return 0, 0, err
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
		return 0, 0, fmt.Errorf("kvstate: snapshot: %w", err)
	}
	err = iterate(txn, prefixSession, true, func(item *badger.Item) error {
		id, ok := parseU64Key(item.Key(), prefixSession)
		if !ok {
			return fmt.Errorf("%w: session key %q", ErrCorruptState, item.Key())
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
		return 0, 0, fmt.Errorf("kvstate: snapshot: %w", err)
	}
	sw.write(binary.BigEndian.AppendUint64([]byte{tagEnd}, count))
	if sw.err == nil {
		_, sw.err = bw.Write(binary.BigEndian.AppendUint32(nil, sw.crc.Sum32()))
	}
	if sw.err == nil {
		sw.err = bw.Flush()
	}
	if sw.err != nil {
		return 0, 0, fmt.Errorf("kvstate: writing snapshot: %w", sw.err)
	}
	return index, term, nil
}

// SnapshotBytes returns Snapshot's image as one byte slice, with the applied
// index and term it covers. Meant for small states (tests, simulation).
func (s *State) SnapshotBytes() ([]byte, uint64, uint64, error) {
	var b bytes.Buffer
	index, term, err := s.Snapshot(&b)
	if err != nil {
		return nil, 0, 0, err
	}
	return b.Bytes(), index, term, nil
}

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

// iterate calls fn for each key under prefix in txn, in key order.
func iterate(txn *badger.Txn, prefix string, values bool, fn func(*badger.Item) error) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = values
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(opts.Prefix); it.ValidForPrefix(opts.Prefix); it.Next() {
		if err := fn(it.Item()); err != nil {
			return err
		}
	}
	return nil
}

// Restore replaces the whole state (all "k/" and "m/" records) with the
// image read from r and returns the applied index and term it covers. It
// replaces unconditionally: whether an image is newer than the current state
// is the caller's decision.
//
// It proceeds so that a crash at any point leaves either the old state or
// the new one, never a mix that looks complete:
//
//  1. The image is streamed into a staging area (m/x/<real key>), invisible
//     to reads, and its checksum verified at the end. A bad image (error
//     wrapping ErrBadSnapshot) or a crash here leaves the old state as it
//     was; the staged records are deleted now or at the next Open.
//  2. The switch point: one transaction writes m/restore (the image's index
//     and term, phase 1).
//  3. Phase 1 deletes the old "k/" and "m/" records (m/applied among them),
//     then marks phase 2. Phase 2 moves staged records to their real keys
//     (each copied before its staged key is deleted). A last transaction
//     writes m/applied and deletes m/restore.
//
// Both phases are idempotent, and Open completes them when it finds
// m/restore, so a crash after the switch point ends with the new state.
// If a database error stops step 3 in this process, every method returns
// ErrRestoreUnfinished until the State is reopened.
//
// Memory stays bounded whatever the image's size: records go to Badger in
// transactions of bounded size as they are read.
func (s *State) Restore(r io.Reader, opts ...RestoreOption) (index, term uint64, err error) {
	var o restoreOptions
	for _, opt := range opts {
		opt(&o)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// The image replaces every session; whatever happens below, the cache
	// may no longer be trusted.
	clear(s.sessions)
	if _, _, err := s.appliedForWrite(); err != nil {
		return 0, 0, err
	}
	// Leftovers of a restore that failed earlier in this process.
	if err := deletePrefix(s.db, prefixStaging, nil, o.progress); err != nil {
		return 0, 0, err
	}
	index, term, err = stage(s.db, r, o.progress)
	if err != nil {
		if cerr := deletePrefix(s.db, prefixStaging, nil, nil); cerr != nil {
			err = fmt.Errorf("%w (and clearing the staged image failed: %v; the next Open clears it)", err, cerr)
		}
		return 0, 0, err
	}

	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyRestore), restoreMarker(index, term, 1))
	}); err != nil {
		_ = deletePrefix(s.db, prefixStaging, nil, nil) // before the switch: the old state stands
		return 0, 0, fmt.Errorf("kvstate: restore: marking the switch: %w", err)
	}
	if err := finishRestore(s.db, index, term, 1, o.progress); err != nil {
		s.broken = fmt.Errorf("%w: %w", ErrRestoreUnfinished, err)
		return 0, 0, s.broken
	}
	s.applied, s.term = index, term
	s.nextGC = 0
	return index, term, nil
}

func restoreMarker(index, term uint64, phase byte) []byte {
	return append(encodeIndexTerm(index, term), phase)
}

// recoverRestore settles a Restore a crash interrupted (see Restore).
func (s *State) recoverRestore() error {
	var marker []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyRestore))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		marker, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("kvstate: reading restore marker: %w", err)
	}
	if marker == nil {
		// No switch happened: anything staged belongs to an abandoned restore.
		return deletePrefix(s.db, prefixStaging, nil, nil)
	}
	if len(marker) != 17 || marker[16] < 1 || marker[16] > 2 {
		return fmt.Errorf("%w: restore marker of %d bytes", ErrCorruptState, len(marker))
	}
	index, term := binary.BigEndian.Uint64(marker), binary.BigEndian.Uint64(marker[8:])
	return finishRestore(s.db, index, term, marker[16], nil)
}

// RestoreOption adjusts one Restore.
type RestoreOption func(*restoreOptions)

type restoreOptions struct {
	progress func()
}

// WithRestoreProgress makes Restore call fn, on Restore's goroutine, each
// time it has written a batch of records (at most a few MiB): while it
// stages the image, while it deletes the old state and while it moves the
// new one into place. A caller that waits for a long Restore can tell a
// slow one from a stuck one by it.
func WithRestoreProgress(fn func()) RestoreOption {
	return func(o *restoreOptions) { o.progress = fn }
}

// finishRestore runs the phases of Restore step 3 from phase on; progress
// (may be nil) is called after each batch written.
func finishRestore(db *badger.DB, index, term uint64, phase byte, progress func()) error {
	if phase == 1 {
		keep := func(k []byte) bool {
			return bytes.HasPrefix(k, []byte(prefixStaging)) || string(k) == keyRestore || string(k) == keyVersion
		}
		if err := deletePrefix(db, prefixData, nil, progress); err != nil {
			return err
		}
		if err := deletePrefix(db, prefixMeta, keep, progress); err != nil {
			return err
		}
		if err := db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(keyRestore), restoreMarker(index, term, 2))
		}); err != nil {
			return fmt.Errorf("kvstate: restore: marking phase 2: %w", err)
		}
	}
	// Phase 2: move staged records into place.
	bw := &batchWriter{db: db, progress: progress}
	defer bw.discard()
	err := db.View(func(txn *badger.Txn) error {
		return iterate(txn, prefixStaging, true, func(item *badger.Item) error {
			staged := item.KeyCopy(nil)
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := bw.set(staged[len(prefixStaging):], v); err != nil {
				return err
			}
			return bw.del(staged)
		})
	})
	if err == nil {
		err = bw.flush()
	}
	if err != nil {
		return fmt.Errorf("kvstate: restore: moving staged records: %w", err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keyApplied), encodeIndexTerm(index, term)); err != nil {
			return err
		}
		return txn.Delete([]byte(keyRestore))
	}); err != nil {
		return fmt.Errorf("kvstate: restore: recording applied index: %w", err)
	}
	return nil
}

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
// progress (may be nil) is called after each batch written.
func stage(db *badger.DB, r io.Reader, progress func()) (index, term uint64, err error) {
	bw := &batchWriter{db: db, progress: progress}
	defer bw.discard()
	index, term, err = readImage(r, func(key, value []byte) error {
		if err := bw.set(append([]byte(prefixStaging), key...), value); err != nil {
			return fmt.Errorf("kvstate: restore: staging: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if err := bw.flush(); err != nil {
		return 0, 0, fmt.Errorf("kvstate: restore: staging: %w", err)
	}
	return index, term, nil
}

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
	switch hdr[4] {
	case snapVersion:
	case 1:
		return 0, 0, fmt.Errorf("%w: format version 1 comes from an older RaftKV (sessions created by their first command); this version reads only version %d", ErrBadSnapshot, snapVersion)
	default:
		return 0, 0, fmt.Errorf("%w: unknown format version %d", ErrBadSnapshot, hdr[4])
	}
	index, term = binary.BigEndian.Uint64(hdr[5:]), binary.BigEndian.Uint64(hdr[13:])

	var count uint64
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

// batchWriter applies many writes in as few transactions as Badger allows,
// committing and starting over whenever a transaction is full. Keys and
// values must not be modified until flush.
type batchWriter struct {
	db  *badger.DB
	txn *badger.Txn
	// progress, when set, is called after each transaction committed.
	progress func()
}

func (b *batchWriter) set(k, v []byte) error {
	return b.do(func(t *badger.Txn) error { return t.Set(k, v) })
}

func (b *batchWriter) del(k []byte) error {
	return b.do(func(t *badger.Txn) error { return t.Delete(k) })
}

func (b *batchWriter) do(op func(*badger.Txn) error) error {
	if b.txn == nil {
		b.txn = b.db.NewTransaction(true)
	}
	err := op(b.txn)
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return err
	}
	if err := b.flush(); err != nil {
		return err
	}
	b.txn = b.db.NewTransaction(true)
	return op(b.txn)
}

func (b *batchWriter) flush() error {
	if b.txn == nil {
		return nil
	}
	err := b.txn.Commit()
	b.txn = nil
	if err == nil && b.progress != nil {
		b.progress()
	}
	return err
}

func (b *batchWriter) discard() {
	if b.txn != nil {
		b.txn.Discard()
		b.txn = nil
	}
}

// deletePrefix deletes every key under prefix except those keep accepts;
// progress (may be nil) is called after each batch deleted.
func deletePrefix(db *badger.DB, prefix string, keep func([]byte) bool, progress func()) error {
	bw := &batchWriter{db: db, progress: progress}
	defer bw.discard()
	err := db.View(func(txn *badger.Txn) error {
		return iterate(txn, prefix, false, func(item *badger.Item) error {
			if keep != nil && keep(item.Key()) {
				return nil
			}
			return bw.del(item.KeyCopy(nil))
		})
	})
	if err == nil {
		err = bw.flush()
	}
	if err != nil {
		return fmt.Errorf("kvstate: deleting %q records: %w", prefix, err)
	}
	return nil
}
