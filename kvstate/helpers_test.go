package kvstate

import (
	"bytes"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
)

func openDB(t testing.TB, dir string, tweak ...func(badger.Options) badger.Options) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(false)
	for _, f := range tweak {
		opts = f(opts)
	}
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatalf("badger.Open: %v", err)
	}
	return db
}

// newState opens a fresh DB in a temp dir and a State on it; both are closed
// at the end of the test.
func newState(t testing.TB, opts Options) (*State, *badger.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db := openDB(t, dir)
	t.Cleanup(func() { db.Close() })
	s, err := Open(db, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, db, dir
}

func ent(idx, term uint64, c Command) raftlogic.Entry {
	return raftlogic.Entry{Index: idx, Term: term, Type: raftlogic.EntryNormal, Data: c.Encode()}
}

func put(id, seq uint64, k, v string) Command {
	return Command{ClientID: id, Seq: seq, Op: OpPut, Key: k, Value: []byte(v)}
}

func update(id, seq uint64, k, v string) Command {
	return Command{ClientID: id, Seq: seq, Op: OpUpdate, Key: k, Value: []byte(v)}
}

func remove(id, seq uint64, k string) Command {
	return Command{ClientID: id, Seq: seq, Op: OpRemove, Key: k}
}

// register is the entry at idx that registers session idx.
func register(idx, term uint64) raftlogic.Entry {
	return ent(idx, term, Command{Op: OpRegister})
}

// registered returns entries 1..n, registering sessions 1..n in term 1.
func registered(n uint64) []raftlogic.Entry {
	var es []raftlogic.Entry
	for i := uint64(1); i <= n; i++ {
		es = append(es, register(i, 1))
	}
	return es
}

func noop(idx, term uint64) raftlogic.Entry {
	return raftlogic.Entry{Index: idx, Term: term, Type: raftlogic.EntryNormal}
}

// mustApply applies entries and commits them (Apply, then Flush), as most
// tests want the state they check to be the durable one.
func mustApply(t testing.TB, s *State, entries ...raftlogic.Entry) []Result {
	t.Helper()
	res := mustApplyPending(t, s, entries...)
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return res
}

// mustApplyPending applies entries and leaves them uncommitted.
func mustApplyPending(t testing.TB, s *State, entries ...raftlogic.Entry) []Result {
	t.Helper()
	res, err := s.Apply(entries, nil)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func mustGet(t testing.TB, s *State, key, want string) {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %q", key, err, want)
	}
	if string(v) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, v, want)
	}
}

func mustMissing(t testing.TB, s *State, key string) {
	t.Helper()
	if v, err := s.Get(key); err != ErrNotFound {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
	}
}

// rawKeys lists every key in db under prefix.
func rawKeys(t testing.TB, db *badger.DB, prefix string) []string {
	t.Helper()
	var keys []string
	err := db.View(func(txn *badger.Txn) error {
		return iterate(txn, prefix, false, func(item *badger.Item) error {
			keys = append(keys, string(item.Key()))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// snapshotBytes returns Snapshot's image as one byte slice, with the applied
// index and term it covers. Meant for small states (tests, simulation).
func (s *State) snapshotBytes() ([]byte, uint64, uint64, error) {
	var b bytes.Buffer
	index, term, err := s.Snapshot(&b)
	if err != nil {
		return nil, 0, 0, err
	}
	return b.Bytes(), index, term, nil
}

// decodeCopy parses bytes made by Command.Encode. Anything else (wrong
// version, unknown op, short or overlong input, empty or oversized key, a
// value on a remove, a session with sequence 0, a register carrying
// anything) gives an error wrapping ErrBadCommand. The returned Value is a
// copy; b may be reused.
func decodeCopy(b []byte) (Command, error) {
	rc, err := decodeCommand(b)
	if err != nil {
		return Command{}, err
	}
	c := Command{ClientID: rc.clientID, Seq: rc.seq, Op: rc.op, Key: string(rc.key)}
	if rc.value != nil {
		c.Value = append([]byte{}, rc.value...)
	}
	return c, nil
}
