package kvstate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Client sessions give exactly-once execution to retried commands
// (Raft thesis 6.3). A client first registers a session through the log
// (OpRegister); the session's id is the index of that entry. For each
// session the state machine keeps the last Seq it executed and that
// command's answer.
//
// Bounding the table. A session expires once SessionTTL entries have been
// applied since its registration or its last executed command, whichever
// is later: at entry index I, the session last used at index L is live iff
// I-L < SessionTTL. Expiry depends on log indexes only, never on the clock
// or on how entries were batched, so every replica agrees on which sessions
// are live at every index. Since each entry registers or executes at most
// one command, at most SessionTTL sessions are live at once; expired ones
// are deleted lazily (a few at the end of each Apply transaction), which
// changes no answer because expired sessions are already treated as absent.
//
// No command runs without a live session. A command whose session was
// never registered or has expired answers ErrSessionExpired and runs
// nothing, whatever its Seq: had it been executed as new, a late retry of
// an already applied command would run twice. An expired session never
// comes back (its id was an index, and indexes are not reused), so once a
// command has been refused this way every later copy of it is refused too.
// Its outcome is final but unknown to the client: an earlier copy may have
// run before the session expired.
//
// Duplicates (Seq <= last Seq) neither execute nor refresh the session: the
// session's expiry counts from the last command that ran.

// Session-record result codes: the answer of the last command, as stored.
const (
	codeOK       byte = 0
	codeNotFound byte = 1
)

func codeErr(c byte) error {
	if c == codeNotFound {
		return ErrNotFound
	}
	return nil
}

// session is the value of m/s/<client id>.
type session struct {
	seq       uint64 // last Seq executed; 0 until the first command runs
	lastIndex uint64 // log index of that command, or of the registration
	code      byte   // its answer
}

const sessionLen = 17

func (s session) encode() []byte {
	b := make([]byte, sessionLen)
	binary.BigEndian.PutUint64(b[0:], s.seq)
	binary.BigEndian.PutUint64(b[8:], s.lastIndex)
	b[16] = s.code
	return b
}

func decodeSession(b []byte) (session, error) {
	if len(b) != sessionLen || b[16] > codeNotFound {
		return session{}, fmt.Errorf("%w: session record of %d bytes", errCorruptState, len(b))
	}
	return session{
		seq:       binary.BigEndian.Uint64(b[0:]),
		lastIndex: binary.BigEndian.Uint64(b[8:]),
		code:      b[16],
	}, nil
}

// live reports whether a session last used at lastIndex still counts at
// entry index.
func live(lastIndex, index, ttl uint64) bool {
	return index < lastIndex || index-lastIndex < ttl
}

// loadSession returns the stored session of id, live or not.
func loadSession(txn *badger.Txn, id uint64) (session, bool, error) {
	item, err := txn.Get(sessionKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, fmt.Errorf("kvstate: reading session %d: %w", id, err)
	}
	var s session
	err = item.Value(func(v []byte) error {
		var derr error
		s, derr = decodeSession(v)
		return derr
	})
	if err != nil {
		return session{}, false, fmt.Errorf("kvstate: session %d: %w", id, err)
	}
	return s, true, nil
}

// saveSession records that client id's command s ran, replacing the stored
// session old (if had) and its expiry index entry.
func saveSession(txn *countedTxn, id uint64, s session, old session, had bool) error {
	if had && old.lastIndex != s.lastIndex {
		if err := txn.Delete(expiryKey(old.lastIndex)); err != nil {
			return err
		}
	}
	if err := txn.Set(sessionKey(id), s.encode()); err != nil {
		return err
	}
	return txn.Set(expiryKey(s.lastIndex), u64(id))
}

// maxGCPerTxn bounds the expired sessions deleted in one Apply transaction,
// so clean-up never makes a transaction much bigger than its entries. Each
// entry registers at most one session, so deleting more than the entries
// applied keeps up.
const maxGCPerTxn = 1024

// gcSessions deletes sessions that are expired at index upto, oldest first.
// It is best effort: it stops at maxGCPerTxn or when the transaction is full
// (Badger refuses it, or full reports the pending transaction's bound),
// since an expired session that lingers changes no answer. It returns the
// lowest index at which another pass can find something to delete (0: as
// soon as possible), so Apply can skip passes that would find nothing.
func gcSessions(sv *sessionView, upto, ttl uint64, full func() bool) (next uint64, err error) {
	txn := sv.txn
	type victim struct{ index, id uint64 }
	var victims []victim
	next = satAdd(upto+1, ttl) // no session: the next one created expires after that
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixExpiry)
	it := txn.NewIterator(opts)
	for it.Seek(opts.Prefix); it.ValidForPrefix(opts.Prefix); it.Next() {
		item := it.Item()
		idx, ok := parseU64Key(item.Key(), prefixExpiry)
		if !ok {
			it.Close()
			return 0, fmt.Errorf("%w: expiry key %q", errCorruptState, item.Key())
		}
		if live(idx, upto, ttl) {
			next = satAdd(idx, ttl)
			break
		}
		if len(victims) == maxGCPerTxn {
			next = 0
			break
		}
		var id uint64
		if err := item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: expiry record of %d bytes", errCorruptState, len(v))
			}
			id = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			it.Close()
			return 0, err
		}
		victims = append(victims, victim{idx, id})
	}
	it.Close()

	for _, v := range victims {
		if full() {
			return 0, nil // the transaction is at its bound; collect the rest next time
		}
		s, ok, err := sv.load(v.id)
		if err != nil {
			return 0, err
		}
		// Delete the session before its expiry key: if the transaction fills
		// up in between, the leftover expiry key is found again next pass,
		// whereas a session without one would never be collected.
		if ok && s.lastIndex == v.index {
			if err := txn.Delete(sessionKey(v.id)); err != nil {
				return 0, err
			}
			sv.dirty[v.id] = nil
		}
		if err := txn.Delete(expiryKey(v.index)); err != nil {
			return 0, err
		}
	}
	return next, nil
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// maxCachedSessions bounds the session cache; past it the cache starts over
// (correctness never depends on it, only speed).
const maxCachedSessions = 1 << 16

// sessionView reads and writes sessions within the pending transaction:
// its own writes first, then the cache of committed records, then Badger.
type sessionView struct {
	txn   *countedTxn
	cache map[uint64]*session
	// dirty holds the pending transaction's writes (nil: deleted), over
	// every batch applied into it; they reach the cache only once the
	// transaction commits, and vanish with it if it is discarded.
	dirty map[uint64]*session
}

func (sv *sessionView) load(id uint64) (session, bool, error) {
	p, ok := sv.dirty[id]
	if !ok {
		p, ok = sv.cache[id]
	}
	if ok {
		if p == nil {
			return session{}, false, nil
		}
		return *p, true, nil
	}
	s, had, err := loadSession(sv.txn.Txn, id)
	if err != nil {
		return session{}, false, err
	}
	// Nothing in dirty, so the transaction read committed state.
	if had {
		sv.cache[id] = &s
	} else {
		sv.cache[id] = nil
	}
	return s, had, nil
}

func (sv *sessionView) save(id uint64, s session, old session, had bool) error {
	if err := saveSession(sv.txn, id, s, old, had); err != nil {
		return err
	}
	sv.dirty[id] = &s
	return nil
}

// commit moves the transaction's writes into the cache; call it only after
// the transaction committed.
func (sv *sessionView) commit() {
	if len(sv.cache)+len(sv.dirty) > maxCachedSessions {
		clear(sv.cache)
	}
	for id, p := range sv.dirty {
		sv.cache[id] = p
	}
}
