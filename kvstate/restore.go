package kvstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4"

	"github.com/raftkv/raftkv/persist"
)

// The restore protocol: how an image replaces the state so that a crash at
// any point leaves the old state or the new one.

// Restore replaces the whole state (all "k/" and "m/" records) with the
// image read from r and returns the applied index and term it covers. It
// replaces unconditionally: whether an image is newer than the current state
// is the caller's decision. It commits the pending transaction first (see
// Flush), and the restored state is durable when it returns (Durable and
// Applied are the image's index).
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
// an error ("restore unfinished") until the State is reopened.
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
	// Entries applied but not committed are committed first, so that a
	// Restore that fails before its switch point leaves the state as
	// applied (the caller's view of it), and nothing is open on the
	// database while the image replaces it.
	if err := s.flushLocked(); err != nil {
		return 0, 0, err
	}
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
		s.broken = fmt.Errorf("%w: %w", errRestoreUnfinished, err)
		return 0, 0, s.broken
	}
	s.applied, s.term = index, term
	s.durable, s.durableTerm = index, term
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
		return fmt.Errorf("%w: restore marker of %d bytes", errCorruptState, len(marker))
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
	w := persist.NewTxnWriter(db, progress)
	defer w.Discard()
	err := db.View(func(txn *badger.Txn) error {
		return iterate(txn, prefixStaging, true, func(item *badger.Item) error {
			staged := item.KeyCopy(nil)
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := w.Set(staged[len(prefixStaging):], v); err != nil {
				return err
			}
			return w.Delete(staged)
		})
	})
	if err == nil {
		err = w.Commit()
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

// stage reads an image from r into the staging area and verifies it;
// progress (may be nil) is called after each batch written.
func stage(db *badger.DB, r io.Reader, progress func()) (index, term uint64, err error) {
	w := persist.NewTxnWriter(db, progress)
	defer w.Discard()
	index, term, err = readImage(r, func(key, value []byte) error {
		if err := w.Set(append([]byte(prefixStaging), key...), value); err != nil {
			return fmt.Errorf("kvstate: restore: staging: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if err := w.Commit(); err != nil {
		return 0, 0, fmt.Errorf("kvstate: restore: staging: %w", err)
	}
	return index, term, nil
}

// readImage reads one image from r, checking every length, the checksum and
// the end of the stream, and hands each record to put as the key and value
// it is stored under. put's slices are its own. With a nil put values are
// skipped instead of read into memory. A nil error means the whole image
