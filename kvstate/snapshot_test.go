package kvstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// populate applies a log with data, deletions and sessions.
func populate(t testing.TB, s *State) {
	t.Helper()
	es := registered(5)
	for i := uint64(1); i <= 200; i++ {
		id := i%5 + 1
		seq := (i-1)/5 + 1
		v := strings.Repeat(fmt.Sprint(i), int(i%40))
		es = append(es, ent(i+5, 1+i/50, put(id, seq, fmt.Sprintf("key/%03d", i%120), v)))
	}
	es = append(es, ent(206, 5, remove(1, 41, "key/005")), ent(207, 5, update(2, 41, "nope", "x")))
	mustApply(t, s, es...)
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src, _, _ := newState(t, Options{})
	populate(t, src)
	img, idx, term, err := src.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	if idx != 207 || term != 5 {
		t.Fatalf("snapshot covers %d/%d, want 207/5", idx, term)
	}

	// Restore into a fresh DB, and into one that already holds other state
	// and a foreign key that must survive.
	for _, prefill := range []bool{false, true} {
		dst, db, dir := newState(t, Options{})
		if prefill {
			mustApply(t, dst, register(1, 1), ent(2, 1, put(1, 1, "stale", "x")), ent(3, 1, put(0, 0, "key/001", "old")))
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("r/keep"), []byte("1")) }); err != nil {
				t.Fatal(err)
			}
		}
		gi, gt, err := dst.Restore(bytes.NewReader(img))
		if err != nil || gi != idx || gt != term {
			t.Fatalf("Restore = %d, %d, %v", gi, gt, err)
		}
		if ai, at := dst.Applied(); ai != idx || at != term {
			t.Fatalf("Applied after restore = %d, %d", ai, at)
		}
		img2, _, _, err := dst.snapshotBytes()
		if err != nil || !bytes.Equal(img, img2) {
			t.Fatalf("restored state differs from the source (err %v)", err)
		}
		mustMissing(t, dst, "stale")
		mustMissing(t, dst, "key/005")
		v, _ := src.Get("key/001")
		mustGet(t, dst, "key/001", string(v))
		if k := rawKeys(t, db, prefixStaging); len(k) != 0 {
			t.Fatalf("staging left behind: %d keys", len(k))
		}
		if prefill {
			if k := rawKeys(t, db, "r/"); len(k) != 1 {
				t.Fatalf("foreign keys = %q", k)
			}
		}

		// Sessions came across: retries get their first answers, and both
		// replicas go on identically.
		next := []raftlogic.Entry{
			ent(208, 5, update(2, 41, "nope", "x")),   // retry: ErrNotFound again
			ent(209, 5, put(3, 40, "key/077", "dup")), // retry of an applied put
			ent(210, 5, put(3, 41, "fresh", "1")),
		}
		ra := mustApply(t, src, next...)
		rb := mustApply(t, dst, next...)
		if fmt.Sprint(ra) != fmt.Sprint(rb) || ra[0].Err != ErrNotFound || ra[1].Err != nil {
			t.Fatalf("answers after restore differ: %v vs %v", ra, rb)
		}
		a, _, _, _ := src.snapshotBytes()
		b, _, _, _ := dst.snapshotBytes()
		if !bytes.Equal(a, b) {
			t.Fatal("states diverged after restore")
		}
		// The restored state survives a reopen.
		db.Close()
		db2 := openDB(t, dir)
		s2, err := Open(db2, Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, _, _, _ := s2.snapshotBytes()
		if !bytes.Equal(a, c) {
			t.Fatal("restored state changed across reopen")
		}
		db2.Close()

		// Roll src back to the image so the next iteration compares alike.
		if _, _, err := src.Restore(bytes.NewReader(img)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotOfEmptyState(t *testing.T) {
	src, _, _ := newState(t, Options{})
	img, idx, term, err := src.snapshotBytes()
	if err != nil || idx != 0 || term != 0 {
		t.Fatalf("SnapshotBytes = %d, %d, %v", idx, term, err)
	}
	dst, _, _ := newState(t, Options{})
	mustApply(t, dst, ent(1, 1, put(0, 0, "a", "b")))
	if _, _, err := dst.Restore(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	mustMissing(t, dst, "a")
	if i, _ := dst.Applied(); i != 0 {
		t.Fatalf("Applied = %d", i)
	}
}

func TestRestoreRejectsBadImages(t *testing.T) {
	src, _, _ := newState(t, Options{})
	populate(t, src)
	img, _, _, err := src.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}

	dst, db, _ := newState(t, Options{})
	mustApply(t, dst, register(1, 1), ent(2, 1, put(1, 1, "mine", "v")))
	before, _, _, _ := dst.snapshotBytes()

	bad := map[string][]byte{
		"empty":     {},
		"magic":     append([]byte("XKVS"), img[4:]...),
		"version":   append(append([]byte("RKVS"), 9), img[5:]...),
		"version 1": recrc(t, img, func(body []byte) { body[4] = 1 }),
		"trailing":  append(append([]byte{}, img...), 0),
	}
	// Every truncation point of the header and a spread over the body.
	for n := 0; n < len(img); n += 1 + n/8 {
		bad[fmt.Sprint("truncated at ", n)] = img[:n]
	}
	bad["truncated by one"] = img[:len(img)-1]
	// Single-bit flips spread across the image, checksum included.
	for off := 0; off < len(img); off += 1 + len(img)/60 {
		b := append([]byte{}, img...)
		b[off] ^= 0x10
		bad[fmt.Sprint("flip at ", off)] = b
	}
	b := append([]byte{}, img...)
	b[len(b)-1] ^= 1
	bad["flip in checksum"] = b
	// A well-formed image whose record count lies, with a valid checksum.
	bad["count mismatch"] = recrc(t, img, func(body []byte) {
		binary.BigEndian.PutUint64(body[len(body)-8:], 1)
	})

	for name, b := range bad {
		if _, _, err := VerifySnapshot(bytes.NewReader(b)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: VerifySnapshot = %v, want ErrBadSnapshot", name, err)
		}
		_, _, err := dst.Restore(bytes.NewReader(b))
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: Restore = %v, want ErrBadSnapshot", name, err)
			continue
		}
		after, _, _, err := dst.snapshotBytes()
		if err != nil || !bytes.Equal(before, after) {
			t.Fatalf("%s: a rejected restore changed the state (%v)", name, err)
		}
		if k := rawKeys(t, db, prefixStaging); len(k) != 0 {
			t.Fatalf("%s: staging left behind: %d keys", name, len(k))
		}
	}
	if ai, _ := dst.Applied(); ai != 2 {
		t.Fatalf("Applied = %d", ai)
	}
	mustGet(t, dst, "mine", "v")
}

// recrc lets edit change the image body (without its CRC) and recomputes
// the checksum, to test checks beyond the checksum.
func recrc(t *testing.T, img []byte, edit func(body []byte)) []byte {
	t.Helper()
	body := append([]byte{}, img[:len(img)-4]...)
	edit(body)
	var buf bytes.Buffer
	sw := &snapWriter{w: &buf, crc: newCRC()}
	sw.write(body)
	return binary.BigEndian.AppendUint32(buf.Bytes(), sw.crc.Sum32())
}

// A crash during Restore: before the switch point the old state stays;
// after it, Open finishes the restore.
func TestRestoreCrashRecovery(t *testing.T) {
	src, _, _ := newState(t, Options{})
	populate(t, src)
	img, idx, _, _ := src.snapshotBytes()

	for _, crashAt := range []string{"staged", "switched", "phase2", "half-moved"} {
		t.Run(crashAt, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, dir)
			s, err := Open(db, Options{})
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, s, ent(1, 1, put(0, 0, "old", "v")))
			oldImg, _, _, _ := s.snapshotBytes()

			// Run Restore's steps by hand, stopping at crashAt.
			i, term, err := stage(db, bytes.NewReader(img), nil)
			if err != nil {
				t.Fatal(err)
			}
			if crashAt != "staged" {
				if err := db.Update(func(txn *badger.Txn) error {
					return txn.Set([]byte(keyRestore), restoreMarker(i, term, 1))
				}); err != nil {
					t.Fatal(err)
				}
			}
			if crashAt == "phase2" || crashAt == "half-moved" {
				if err := deletePrefix(db, prefixData, nil, nil); err != nil {
					t.Fatal(err)
				}
				if err := db.Update(func(txn *badger.Txn) error {
					if err := txn.Delete([]byte(keyApplied)); err != nil {
						return err
					}
					return txn.Set([]byte(keyRestore), restoreMarker(i, term, 2))
				}); err != nil {
					t.Fatal(err)
				}
			}
			if crashAt == "half-moved" {
				staged := rawKeys(t, db, prefixStaging)
				w := persist.NewTxnWriter(db, nil)
				for _, k := range staged[:len(staged)/2] {
					if err := w.Set([]byte(k[len(prefixStaging):]), []byte("placeholder")); err != nil {
						t.Fatal(err)
					}
					if err := w.Delete([]byte(k)); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()

			db = openDB(t, dir)
			defer db.Close()
			s, err = Open(db, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, gi, _, err := s.snapshotBytes()
			if err != nil {
				t.Fatal(err)
			}
			if len(rawKeys(t, db, prefixStaging)) != 0 || len(rawKeys(t, db, keyRestore)) != 0 {
				t.Fatal("restore leftovers after Open")
			}
			switch crashAt {
			case "staged":
				if !bytes.Equal(got, oldImg) || gi != 1 {
					t.Fatal("a crash before the switch did not keep the old state")
				}
			case "half-moved":
				// Moved keys were overwritten with placeholders to prove Open
				// does not redo phase 1; the rest must be in place.
				if gi != idx {
					t.Fatalf("applied %d, want %d", gi, idx)
				}
				mustMissing(t, s, "old")
			default:
				if !bytes.Equal(got, img) || gi != idx {
					t.Fatal("a crash after the switch did not end with the new state")
				}
			}
		})
	}
}

func FuzzRestore(f *testing.F) {
	src, _, _ := newState(f, Options{})
	mustApply(f, src, register(1, 1), ent(2, 1, put(1, 1, "a", "1")), ent(3, 1, put(0, 0, "b", "")))
	img, _, _, err := src.snapshotBytes()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(img)
	f.Add(img[:30])
	f.Add([]byte("RKVS\x02"))
	dst, _, _ := newState(f, Options{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, err := dst.Restore(bytes.NewReader(b))
		if err != nil && !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("Restore error %v does not wrap ErrBadSnapshot", err)
		}
	})
}

// VerifySnapshot accepts exactly the images Restore accepts, and checks
// values it skips: a flipped bit deep inside a value larger than its read
// buffer is caught, and the image's index and term come back.
func TestVerifySnapshot(t *testing.T) {
	src, _, _ := newState(t, Options{})
	big := strings.Repeat("0123456789abcdef", 20<<10) // 320 KiB, several skip buffers
	mustApply(t, src, ent(1, 2, put(0, 0, "big", big)), ent(2, 3, put(0, 0, "small", "v")))
	img, idx, term, err := src.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	if gi, gt, err := VerifySnapshot(bytes.NewReader(img)); err != nil || gi != idx || gt != term {
		t.Fatalf("VerifySnapshot(good image) = %d, %d, %v; want %d, %d, nil", gi, gt, err, idx, term)
	}
	at := bytes.Index(img, []byte(big)) + len(big) - 100<<10
	for _, off := range []int{at, at + 40<<10, len(img) - 4} {
		b := append([]byte{}, img...)
		b[off] ^= 0x01
		if _, _, err := VerifySnapshot(bytes.NewReader(b)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("flip at %d of %d: VerifySnapshot = %v, want ErrBadSnapshot", off, len(img), err)
		}
	}
}

// Restore reports progress while it stages the image and again after the
// switch point, while it deletes the old state and moves the new one in,
// so a caller can watch a long restore through every phase.
func TestRestoreReportsProgress(t *testing.T) {
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(2 << 20).WithValueThreshold(64 << 10) } // ~300 KiB transactions, values inline
	open := func() (*State, *badger.DB) {
		db := openDB(t, t.TempDir(), small)
		t.Cleanup(func() { db.Close() })
		s, err := Open(db, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s, db
	}
	fill := func(s *State, tag string) {
		v := strings.Repeat(tag, 8<<10)
		var es []raftlogic.Entry
		for i := uint64(1); i <= 300; i++ {
			es = append(es, ent(i, 1, put(0, 0, fmt.Sprintf("%s/%03d", tag, i), v)))
		}
		mustApply(t, s, es...)
	}
	src, _ := open()
	fill(src, "n")
	img, _, _, err := src.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	dst, db := open()
	fill(dst, "o")

	var before, after int
	_, _, err = dst.Restore(bytes.NewReader(img), WithRestoreProgress(func() {
		switched := false
		_ = db.View(func(txn *badger.Txn) error {
			_, err := txn.Get([]byte(keyRestore))
			switched = err == nil
			return nil
		})
		if switched {
			after++
		} else {
			before++
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("progress: %d calls before the switch, %d after (image %d bytes)", before, after, len(img))
	if before < 3 || after < 3 {
		t.Fatalf("progress reported %d times before the switch and %d after; want several in each", before, after)
	}
	mustGet(t, dst, "n/001", strings.Repeat("n", 8<<10))
	mustMissing(t, dst, "o/001")
}
