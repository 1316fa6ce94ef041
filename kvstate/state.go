package kvstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
)

// Key layout (see the package comment). Every key kvstate writes starts with
// prefixData or prefixMeta.
const (
	prefixData    = "k/"
	prefixMeta    = "m/"
	prefixSession = "m/s/"
	prefixExpiry  = "m/l/"
	prefixStaging = "m/x/"

	keyVersion = "m/version"
	keyApplied = "m/applied"
	keyRestore = "m/restore"
)

// layoutVersion is stored under m/version so a layout can tell old records
// from new ones instead of misreading them. Version 2: sessions are
// registered through the log and their ids are log indexes; version 1
// created sessions implicitly under client-chosen ids. The rules decide
// what every entry answers, so a node that applied part of its log under
// version 1 cannot apply the rest under version 2 without diverging from
// its peers: version 1 data is refused, not converted.
const layoutVersion = "2"

func dataKey(key []byte) []byte {
	k := make([]byte, 0, len(prefixData)+len(key))
	return append(append(k, prefixData...), key...)
}

func sessionKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte(prefixSession), id) }
func expiryKey(idx uint64) []byte { return binary.BigEndian.AppendUint64([]byte(prefixExpiry), idx) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func parseU64Key(k []byte, prefix string) (uint64, bool) {
	if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, []byte(prefix)) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(prefix):]), true
}

func encodeIndexTerm(index, term uint64) []byte {
	return binary.BigEndian.AppendUint64(u64(index), term)
}

// defaultSessionTTL is the default Options.SessionTTL: about a million
// entries, so a client's retries are recognised for that long after its last
// command, and the session table holds at most that many sessions (a few
// tens of bytes each on disk). In time that is as long as the cluster takes
// to commit 2^20 entries: about a minute at the fastest write rate measured
// (18,100 puts/s, README); clients bound their retries well inside it.
// This is its only home: it is no operator setting (config has no key for
// it, since every replica must use the same), and only tests change it,
// through Options.
const defaultSessionTTL = 1 << 20

// Options tune a State. They must be identical on every replica of a
// cluster, because SessionTTL changes what commands answer.
type Options struct {
	// SessionTTL is how many applied entries a client session outlives its
	// registration or last executed command (see the session rules in
	// session.go and ErrSessionExpired). Zero means 2^20 (defaultSessionTTL).
	SessionTTL uint64
}

// Result is the answer to one applied entry.
type Result struct {
	Index uint64
	Term  uint64
	// ClientID and Seq echo the command, so the caller can find the waiting
	// request; both are zero for no-ops, configuration changes and entries
	// that did not decode. For an OpRegister, ClientID is the id of the
	// session it registered (Index) and Seq is zero.
	ClientID, Seq uint64
	// Err is nil on success; ErrNotFound for an Update or Remove of a missing
	// key; or wraps ErrBadCommand, ErrStaleSequence or ErrSessionExpired.
	// A retried command gets the answer its first execution got.
	Err error
}

// State is the key-value state machine of one node. Its methods are safe for
// concurrent use: Apply and Restore run one at a time, while Get, Applied and
// Snapshot run alongside Apply (they see the state as of the last committed
// Apply transaction).
type State struct {
	db  *badger.DB
	ttl uint64

	// writeMu serialises writers (Apply, Restore). nextGC and sessions
	// belong to it.
	writeMu sync.Mutex
	nextGC  uint64
	// sessions caches committed session records, so applying a command
	// does not read Badger for its session (a point read was 15% of the
	// CPU of a write-heavy load). A nil value records a known absence.
	sessions map[uint64]*session

	// viewMu guards the fields below. Restore holds it exclusively while it
	// switches images, so readers never see a half-restored state.
	viewMu  sync.RWMutex
	applied uint64
	term    uint64
	broken  error // set when a Restore failed past its point of no return
}

// Open loads the state machine kept in db (the zero Options are the
// defaults). It first settles any Restore a crash interrupted: before its
// switch point the staged image is discarded (the old state stays); after it
// the switch is completed.
func Open(db *badger.DB, opts Options) (*State, error) {
	if db == nil {
		return nil, errors.New("kvstate: nil database")
	}
	s := &State{db: db, ttl: opts.SessionTTL, sessions: map[uint64]*session{}}
	if s.ttl == 0 {
		s.ttl = defaultSessionTTL
	}
	if err := s.recoverRestore(); err != nil {
		return nil, err
	}
	if err := s.checkVersion(); err != nil {
		return nil, err
	}
	err := db.View(func(txn *badger.Txn) error {
		var err error
		s.applied, s.term, err = readApplied(txn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// checkVersion refuses a database written by a layout this code does not
// know, and stamps a fresh one with the current layout.
func (s *State) checkVersion() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyVersion))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set([]byte(keyVersion), []byte(layoutVersion))
		}
		if err != nil {
			return fmt.Errorf("kvstate: reading layout version: %w", err)
		}
		return item.Value(func(v []byte) error {
			switch string(v) {
			case layoutVersion:
				return nil
			case "1":
				return fmt.Errorf("%w: layout version 1 was written by an older RaftKV (sessions created by their first command); "+
					"this version reads only layout %q, where sessions are registered through the log, and cannot convert it: "+
					"a node must apply its whole log under one set of session rules", errCorruptState, layoutVersion)
			}
			return fmt.Errorf("%w: layout version %q, this code reads %q", errCorruptState, v, layoutVersion)
		})
	})
}

// readApplied returns the applied index and term recorded in txn's view;
// zero if nothing was ever applied.
func readApplied(txn *badger.Txn) (index, term uint64, err error) {
	item, err := txn.Get([]byte(keyApplied))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("kvstate: reading applied index: %w", err)
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 16 {
			return fmt.Errorf("%w: applied record of %d bytes", errCorruptState, len(v))
		}
		index, term = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		return nil
	})
	return index, term, err
}

// PauseWrites runs f while no Apply or Restore writes to the database, and
// returns f's error. The database's value-log collector uses it
// (persist.NewCollector).
func (s *State) PauseWrites(f func() error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return f()
}

// Applied returns the index and term of the last entry applied. Data
// returned by Get afterwards reflects at least that entry.
func (s *State) Applied() (index, term uint64) {
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	return s.applied, s.term
}

// Get returns a copy of key's value, or ErrNotFound.
func (s *State) Get(key string) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	if s.broken != nil {
		return nil, s.broken
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	item, err := txn.Get(dataKey([]byte(key)))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("kvstate: get %q: %w", key, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("kvstate: get %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Apply applies committed entries in order and returns one Result per entry
// it applied (entries at or below the applied index are skipped silently,
// so re-applying after a restart is harmless). The remaining entries must be
// consecutive from the applied index with non-decreasing terms; otherwise
// Apply applies nothing and returns an error (entries out of order: a bug in
// the caller).
//
// All entries go into one Badger transaction together with the new applied
// index and term; only if Badger refuses the transaction as too big is the
// batch split, each part again carrying its own applied index. Each commit
// is durable when it returns (the database syncs it), so the entries it
// covers may then be compacted out of the Raft log.
//
// decided, if not nil, is called with each transaction's Results as soon as
// they are known, just before that transaction is committed and synced. The
// Results are final at that point: they depend only on the committed
// entries and the state before them, so a crash before the commit ends in
// the same Results when the entries are applied again. That lets the caller
// answer clients while the sync runs; it must not serve reads from the state
// before Apply returns.
//
// A non-nil error means the database failed; the Results returned cover the
// entries committed before the failure, and Applied tells where to resume.
func (s *State) Apply(entries []raftlogic.Entry, decided func([]Result)) ([]Result, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	applied, term, err := s.appliedForWrite()
	if err != nil {
		return nil, err
	}
	i := 0
	for i < len(entries) && entries[i].Index <= applied {
		i++
	}
	todo := entries[i:]
	if err := checkOrder(todo, applied, term); err != nil {
		return nil, err
	}
	// Badger refusing a transaction as full is handled here, not with
	// persist.TxnWriter: that commits what fits and carries on, which would
	// commit part of an entry's effects, or effects without the applied
	// index that covers them. Instead a refused transaction is discarded
	// whole and the same entries are applied again in smaller ones.
	results := make([]Result, 0, len(todo))
	limit := len(todo) // entries per transaction; lowered once Badger refuses one
	for len(todo) > 0 {
		n := min(len(todo), limit)
		for {
			res, fitted, err := s.applyTxn(todo[:n], decided)
			if errors.Is(err, badger.ErrTxnTooBig) {
				// The first `fitted` entries fit with room to spare only if the
				// applied record fits too; retry with fewer until it does.
				if fitted >= n {
					fitted = n - 1
				}
				if fitted == 0 {
					return results, fmt.Errorf("kvstate: entry %d alone exceeds a Badger transaction: %w", todo[0].Index, err)
				}
				n, limit = fitted, fitted
				continue
			}
			if err != nil {
				return results, err
			}
			results = append(results, res...)
			break
		}
		todo = todo[n:]
	}
	return results, nil
}

// appliedForWrite returns the applied index and term, or the error that
// keeps writers out after an unfinished Restore.
func (s *State) appliedForWrite() (index, term uint64, err error) {
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	return s.applied, s.term, s.broken
}

func checkOrder(entries []raftlogic.Entry, applied, term uint64) error {
	for _, e := range entries {
		if e.Index != applied+1 {
			return fmt.Errorf("%w: entry %d follows applied index %d", errEntryOrder, e.Index, applied)
		}
		if e.Term < term {
			return fmt.Errorf("%w: entry %d has term %d below the previous term %d", errEntryOrder, e.Index, e.Term, term)
		}
		applied, term = e.Index, e.Term
	}
	return nil
}

// applyTxn applies entries in one transaction and commits it. On
// badger.ErrTxnTooBig nothing is committed and fitted says how many whole
// entries were written before Badger refused.
func (s *State) applyTxn(entries []raftlogic.Entry, decided func([]Result)) (res []Result, fitted int, err error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	sv := &sessionView{txn: txn, cache: s.sessions, dirty: map[uint64]*session{}}
	res = make([]Result, 0, len(entries))
	for k, e := range entries {
		r, err := s.applyEntry(sv, e)
		if err != nil {
			return nil, k, err
		}
		res = append(res, r)
	}
	last := entries[len(entries)-1]
	if err := txn.Set([]byte(keyApplied), encodeIndexTerm(last.Index, last.Term)); err != nil {
		return nil, len(entries), err
	}
	nextGC := s.nextGC
	if last.Index >= nextGC {
		nextGC, err = gcSessions(sv, last.Index, s.ttl)
		if errors.Is(err, badger.ErrTxnTooBig) {
			nextGC = 0 // the transaction is full; collect the rest next time
		} else if err != nil {
			return nil, 0, err
		}
	}
	if decided != nil {
		decided(res)
	}
	if err := txn.Commit(); err != nil {
		return nil, 0, fmt.Errorf("kvstate: committing entries %d-%d: %w", entries[0].Index, last.Index, err)
	}
	s.nextGC = nextGC
	sv.commit()
	s.viewMu.Lock()
	s.applied, s.term = last.Index, last.Term
	s.viewMu.Unlock()
	return res, len(entries), nil
}

// applyEntry writes one entry's effects into txn. It returns an error only
// for database failures (including badger.ErrTxnTooBig); whatever a command
// answers goes into the Result.
func (s *State) applyEntry(sv *sessionView, e raftlogic.Entry) (Result, error) {
	r := Result{Index: e.Index, Term: e.Term}
	switch e.Type {
	case raftlogic.EntryConfChange:
		// raftlogic decides membership; the state machine keeps the
		// addresses that go with it (members.go).
		return r, applyConfChange(sv.txn, e, &r)
	case raftlogic.EntryNormal:
	default:
		r.Err = fmt.Errorf("%w: entry %d has unknown type %d", ErrBadCommand, e.Index, e.Type)
		return r, nil
	}
	if len(e.Data) == 0 {
		return r, nil // a new leader's no-op
	}
	c, err := decodeCommand(e.Data)
	if err != nil {
		r.Err = fmt.Errorf("entry %d: %w", e.Index, err)
		return r, nil
	}
	r.ClientID, r.Seq = c.clientID, c.seq
	if c.op == OpRegister {
		// No session can hold this id yet: ids are the indexes of register
		// entries, and this index is applied only once.
		if err := sv.save(e.Index, session{lastIndex: e.Index, code: codeOK}, session{}, false); err != nil {
			return r, err
		}
		r.ClientID = e.Index
		return r, nil
	}

	var old session
	var had bool
	if c.clientID != 0 {
		old, had, err = sv.load(c.clientID)
		if err != nil {
			return r, err
		}
		isLive := had && live(old.lastIndex, e.Index, s.ttl)
		switch {
		case !isLive:
			r.Err = fmt.Errorf("%w: client %d sent seq %d but has no live session (it was never registered, or it expired %d entries after its last command)",
				ErrSessionExpired, c.clientID, c.seq, s.ttl)
			return r, nil
		case c.seq == old.seq:
			r.Err = codeErr(old.code)
			return r, nil
		case c.seq < old.seq:
			r.Err = fmt.Errorf("%w: client %d sent seq %d after seq %d was applied", ErrStaleSequence, c.clientID, c.seq, old.seq)
			return r, nil
		}
	}

	code, err := execute(sv.txn, c)
	if err != nil {
		return r, err
	}
	r.Err = codeErr(code)
	if c.clientID != 0 {
		err := sv.save(c.clientID, session{seq: c.seq, lastIndex: e.Index, code: code}, old, had)
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// execute performs c's operation. Update and Remove of a missing key write
// nothing and answer codeNotFound.
func execute(txn *badger.Txn, c rawCommand) (byte, error) {
	k := dataKey(c.key)
	if c.op == OpUpdate || c.op == OpRemove {
		_, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return codeNotFound, nil
		}
		if err != nil {
			return 0, fmt.Errorf("kvstate: reading %q: %w", c.key, err)
		}
	}
	if c.op == OpRemove {
		return codeOK, txn.Delete(k)
	}
	return codeOK, txn.Set(k, c.value)
}
