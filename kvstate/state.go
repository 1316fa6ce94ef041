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
// concurrent use: writers (Apply, Flush, Restore, PauseWrites) run one at a
// time, while Get, Applied, Durable, Members, Conf and Snapshot run
// alongside them.
//
// Apply does not commit: it leaves its writes in one open Badger
// transaction, the pending transaction, which later Apply calls extend and
// Flush commits (see Apply). Get, Applied, Members and Conf see the pending
// writes; Snapshot and Durable see only what was committed.
type State struct {
	db  *badger.DB
	ttl uint64
	// threshold is the database's value threshold, for counting a pending
	// transaction's size as Badger does.
	threshold int64
	// maxPendWrites and maxPendBytes bound the pending transaction (see
	// pendingLimits); past either, Apply commits it before adding more.
	maxPendWrites, maxPendBytes int64

	// writeMu serialises writers (Apply, Flush, Restore, PauseWrites).
	// nextGC and sessions belong to it.
	writeMu sync.Mutex
	nextGC  uint64
	// sessions caches committed session records, so applying a command
	// does not read Badger for its session (a point read was 15% of the
	// CPU of a write-heavy load). A nil value records a known absence.
	// The pending transaction's session writes stay in its sessionView
	// until it commits, so a discarded transaction leaves no trace here.
	sessions map[uint64]*session

	// pendMu guards pend: writers hold it (under writeMu) while they write
	// to or replace it, readers while they read through it, because a
	// Badger transaction is not safe for concurrent use.
	pendMu sync.Mutex
	pend   *pendingTxn

	// viewMu guards the fields below. Restore holds it exclusively while it
	// switches images, so readers never see a half-restored state.
	viewMu sync.RWMutex
	// applied and term: the last entry applied, pending or committed (what
	// Get reflects). durable and durableTerm: the last entry committed.
	applied, term        uint64
	durable, durableTerm uint64
	broken               error // set when a Restore failed past its point of no return

	// beforeEntry, when set, runs before each entry is applied; this
	// package's tests make Apply fail or panic part way with it.
	beforeEntry func(raftlogic.Entry) error
}

// pendingTxn is the open transaction Apply writes into, and what it holds.
type pendingTxn struct {
	txn *countedTxn
	sv  *sessionView
	// entries are the entries applied into txn, kept so that they can be
	// applied again in smaller transactions if Badger refuses txn as too
	// big (Apply). They are bounded with txn (State.full).
	entries []raftlogic.Entry
}

// countedTxn is a Badger update transaction that counts the writes it was
// given and their size as Badger counts them against its transaction
// limits (every Set and Delete counts, a key written twice twice).
type countedTxn struct {
	*badger.Txn
	threshold     int64
	writes, bytes int64
}

// Set writes key's value and counts it.
func (t *countedTxn) Set(key, value []byte) error {
	if err := t.Txn.Set(key, value); err != nil {
		return err
	}
	t.count(key, value)
	return nil
}

// Delete deletes key and counts it.
func (t *countedTxn) Delete(key []byte) error {
	if err := t.Txn.Delete(key); err != nil {
		return err
	}
	t.count(key, nil)
	return nil
}

// count adds one write as Badger estimates it: the key, the value if it
// is stored in the LSM tree (else a value pointer), and about 12 bytes of
// version and metadata.
func (t *countedTxn) count(key, value []byte) {
	n := int64(len(key)) + 12
	if v := int64(len(value)); v < t.threshold {
		n += v
	} else {
		n += 12
	}
	t.writes++
	t.bytes += n
}

// pendingLimits returns the bounds of a pending transaction in db: half of
// Badger's transaction limits (with persist's 1 MiB memtables Badger
// refuses a transaction of about 1,600 writes or 150 KiB), so that a
// typical batch still fits after the bound is reached and Badger rarely
// refuses one (see Apply for when it does).
func pendingLimits(db *badger.DB) (writes, bytes int64) {
	return max(db.MaxBatchCount()/2, 1), max(db.MaxBatchSize()/2, 1)
}

// full reports whether p has reached the bounds of a pending transaction:
// Apply commits it before adding to it. Entries count too, so that a run
// of entries that write nothing (no-ops) does not grow p.entries unbounded.
func (s *State) full(p *pendingTxn) bool {
	return p.txn.writes >= s.maxPendWrites || p.txn.bytes >= s.maxPendBytes ||
		int64(len(p.entries)) >= s.maxPendWrites
}

// Open loads the state machine kept in db (the zero Options are the
// defaults). It first settles any Restore a crash interrupted: before its
// switch point the staged image is discarded (the old state stays); after it
// the switch is completed.
func Open(db *badger.DB, opts Options) (*State, error) {
	if db == nil {
		return nil, errors.New("kvstate: nil database")
	}
	s := &State{db: db, ttl: opts.SessionTTL, sessions: map[uint64]*session{},
		threshold: db.Opts().ValueThreshold}
	s.maxPendWrites, s.maxPendBytes = pendingLimits(db)
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
		s.durable, s.durableTerm = s.applied, s.term
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

// PauseWrites commits the pending transaction, then runs f while no Apply,
// Flush or Restore writes to the database, and returns f's error (or the
// commit's). The database's value-log collector uses it
// (persist.NewCollector); committing first means no open transaction pins
// old versions while it runs.
func (s *State) PauseWrites(f func() error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	return f()
}

// Applied returns the index and term of the last entry applied, committed
// or not. Data returned by Get afterwards reflects at least that entry.
func (s *State) Applied() (index, term uint64) {
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	return s.applied, s.term
}

// Durable returns the index and term of the last entry whose effects are
// committed to the database (synced: see persist.OpenDB): after a crash the
// state comes back exactly there, and the entries up to it may be compacted
// out of the Raft log. It trails Applied by the entries applied since the
// last Flush.
func (s *State) Durable() (index, term uint64) {
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	return s.durable, s.durableTerm
}

// read runs fn on the state as applied: through the pending transaction if
// there is one, else on a read transaction of the committed state.
func (s *State) read(fn func(txn *badger.Txn) error) error {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	if s.broken != nil {
		return s.broken
	}
	if s.pend != nil {
		return fn(s.pend.txn.Txn)
	}
	return s.db.View(fn)
}

// Get returns a copy of key's value, or ErrNotFound. It sees every entry
// applied (Applied), committed or not.
func (s *State) Get(key string) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	var v []byte
	err := s.read(func(txn *badger.Txn) error {
		item, err := txn.Get(dataKey([]byte(key)))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		if errors.Is(err, errRestoreUnfinished) {
			return nil, err
		}
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
// Apply does not commit. It writes the entries' effects, with the new
// applied index and term, into the pending transaction, which stays open
// across calls until Flush commits it (synced), or until it has grown past
// a bound well below Badger's transaction limit: then Apply commits it
// before adding the next batch. So Applied (and Get) move at once, Durable
// only at a commit, and the caller may compact the Raft log only up to
// Durable. A crash loses the uncommitted entries' effects as a whole, and
// applying the same entries again gives the same Results.
//
// If Badger still refuses the pending transaction as too big, it is
// discarded and its entries and this batch are applied again from the
// durable state in as many transactions as it takes, each committed with
// the applied index of its last entry; batches split this way are
// committed when Apply returns. No commit ever holds part of an entry's
// effects, or effects without the applied index that covers them.
//
// decided, if not nil, is called with the Results as soon as they are
// known, possibly before they are committed. They are final: they depend
// only on the committed entries and the state before them, so a crash
// before the commit ends in the same Results when the entries are applied
// again. decided must not call the State's methods.
//
// A non-nil error (or a panic) discards the pending transaction: the
// applied state falls back to Durable, and the caller applies again from
// there, refetching the entries it needs. The Results returned cover
// entries committed before the failure.
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
	if len(todo) == 0 {
		return []Result{}, nil
	}
	if s.pend != nil && s.full(s.pend) {
		if err := s.flushLocked(); err != nil {
			return nil, err
		}
	}
	res, _, earlier, err := s.applyBatch(todo)
	if errors.Is(err, badger.ErrTxnTooBig) {
		// Badger refusing a transaction as full is handled here, not with
		// persist.TxnWriter: that commits what fits and carries on, which
		// would commit part of an entry's effects, or effects without the
		// applied index that covers them.
		return s.applySplit(append(earlier, todo...), todo[0].Index, decided)
	}
	if err != nil {
		return nil, err
	}
	if decided != nil {
		decided(res)
	}
	return res, nil
}

// applySplit applies entries from the durable state (nothing is pending)
// in as few transactions as Badger accepts, committing each; it answers
// (decided, and the Results returned) only the entries from index from on,
// the earlier ones having been answered when they were first applied.
func (s *State) applySplit(entries []raftlogic.Entry, from uint64, decided func([]Result)) ([]Result, error) {
	results := make([]Result, 0, len(entries))
	limit := len(entries) // entries per transaction; lowered as Badger refuses them
	for len(entries) > 0 {
		n := min(len(entries), limit)
		for {
			res, fitted, _, err := s.applyBatch(entries[:n])
			if errors.Is(err, badger.ErrTxnTooBig) {
				// The first `fitted` entries fit with room to spare only if the
				// applied record fits too; retry with fewer until it does.
				if fitted >= n {
					fitted = n - 1
				}
				if fitted == 0 {
					return results, fmt.Errorf("kvstate: entry %d alone exceeds a Badger transaction: %w", entries[0].Index, err)
				}
				n, limit = fitted, fitted
				continue
			}
			if err != nil {
				return results, err
			}
			if err := s.flushLocked(); err != nil {
				return results, err
			}
			k := 0
			for k < len(res) && res[k].Index < from {
				k++
			}
			if res = res[k:]; len(res) > 0 {
				if decided != nil {
					decided(res)
				}
				results = append(results, res...)
			}
			break
		}
		entries = entries[n:]
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

// applyBatch writes entries (non-empty, following the applied index) into
// the pending transaction, opening one if there is none, and makes them
// the applied state. It is all or nothing: on any error, or a panic, it
// discards the whole pending transaction, so the applied state falls back
// to Durable, and returns the entries the discarded transaction held
// before this batch (earlier). On badger.ErrTxnTooBig fitted says how many
// whole entries of this batch were written before Badger refused.
func (s *State) applyBatch(entries []raftlogic.Entry) (res []Result, fitted int, earlier []raftlogic.Entry, err error) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if s.pend == nil {
		txn := s.db.NewTransaction(true)
		s.pend = &pendingTxn{
			txn: &countedTxn{Txn: txn, threshold: s.threshold},
			sv:  &sessionView{cache: s.sessions, dirty: map[uint64]*session{}},
		}
		s.pend.sv.txn = s.pend.txn
	}
	p := s.pend
	done := false
	defer func() {
		if !done {
			earlier = s.discardLocked()
		}
	}()
	res = make([]Result, 0, len(entries))
	for k, e := range entries {
		if s.beforeEntry != nil {
			if err := s.beforeEntry(e); err != nil {
				return nil, k, nil, err
			}
		}
		r, err := s.applyEntry(p.sv, e)
		if err != nil {
			return nil, k, nil, err
		}
		res = append(res, r)
	}
	last := entries[len(entries)-1]
	if err := p.txn.Set([]byte(keyApplied), encodeIndexTerm(last.Index, last.Term)); err != nil {
		return nil, len(entries), nil, err
	}
	if last.Index >= s.nextGC {
		next, err := gcSessions(p.sv, last.Index, s.ttl, func() bool { return s.full(p) })
		if errors.Is(err, badger.ErrTxnTooBig) {
			next = 0 // the transaction is full; collect the rest next time
		} else if err != nil {
			return nil, 0, nil, err
		}
		// A hint only (see gcSessions): a discarded transaction resets it.
		s.nextGC = next
	}
	p.entries = append(p.entries, entries...)
	s.viewMu.Lock()
	s.applied, s.term = last.Index, last.Term
	s.viewMu.Unlock()
	done = true
	return res, len(entries), nil, nil
}

// discardLocked drops the pending transaction, if any, with everything it
// holds: the applied state falls back to Durable. It returns the entries
// the transaction held. The caller holds writeMu and pendMu.
func (s *State) discardLocked() []raftlogic.Entry {
	p := s.pend
	if p == nil {
		return nil
	}
	s.pend = nil
	p.txn.Discard()
	s.nextGC = 0
	s.viewMu.Lock()
	s.applied, s.term = s.durable, s.durableTerm
	s.viewMu.Unlock()
	return p.entries
}

// Flush commits the pending transaction, if any, and returns once it is
// durable (the database syncs every commit): Durable then equals Applied.
// If the commit fails, the pending transaction is discarded and Applied
// falls back to Durable, as after a failed Apply.
func (s *State) Flush() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.flushLocked()
}

// flushLocked is Flush for a caller holding writeMu.
func (s *State) flushLocked() error {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	p := s.pend
	if p == nil {
		return nil
	}
	first, last := p.entries[0].Index, p.entries[len(p.entries)-1]
	if err := p.txn.Commit(); err != nil {
		s.discardLocked()
		return fmt.Errorf("kvstate: committing entries %d-%d: %w", first, last.Index, err)
	}
	s.pend = nil
	p.sv.commit()
	s.viewMu.Lock()
	s.durable, s.durableTerm = last.Index, last.Term
	s.viewMu.Unlock()
	return nil
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
func execute(txn *countedTxn, c rawCommand) (byte, error) {
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
