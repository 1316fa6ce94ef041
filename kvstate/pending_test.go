package kvstate

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
)

// Tests of the pending transaction: Apply applies without committing,
// Flush commits, and what is not committed is lost whole by a crash.

// reopenable is a State whose database a test can "crash" and open again.
type reopenable struct {
	t   *testing.T
	dir string
	db  *badger.DB
	s   *State
}

func newReopenable(t *testing.T, tweak ...func(badger.Options) badger.Options) *reopenable {
	r := &reopenable{t: t, dir: filepath.Join(t.TempDir(), "db")}
	r.open(tweak...)
	t.Cleanup(func() {
		if r.db != nil {
			r.db.Close()
		}
	})
	return r
}

func (r *reopenable) open(tweak ...func(badger.Options) badger.Options) {
	r.t.Helper()
	r.db = openDB(r.t, r.dir, tweak...)
	s, err := Open(r.db, Options{})
	if err != nil {
		r.t.Fatalf("Open: %v", err)
	}
	r.s = s
}

// crash loses the pending transaction as a power cut would (none of it
// reached the database), closes the database and opens the state again.
func (r *reopenable) crash() {
	r.t.Helper()
	r.s.pendMu.Lock()
	if r.s.pend != nil {
		r.s.pend.txn.Discard()
		r.s.pend = nil
	}
	r.s.pendMu.Unlock()
	if err := r.db.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.db = nil
	r.open()
}

func mustIndexes(t *testing.T, s *State, applied, durable uint64) {
	t.Helper()
	a, _ := s.Applied()
	d, _ := s.Durable()
	if a != applied || d != durable {
		t.Fatalf("Applied %d, Durable %d; want %d, %d", a, d, applied, durable)
	}
}

func TestApplyLeavesDurableBehindUntilFlush(t *testing.T) {
	s, _, _ := newState(t, Options{})
	mustApply(t, s, ent(1, 1, put(0, 0, "a", "committed")))
	mustIndexes(t, s, 1, 1)
	mustApplyPending(t, s, ent(2, 1, put(0, 0, "a", "pending")), ent(3, 2, put(0, 0, "b", "new")))
	mustIndexes(t, s, 3, 1)
	if _, term := s.Applied(); term != 2 {
		t.Fatalf("applied term %d, want 2", term)
	}
	// Reads see the pending writes.
	mustGet(t, s, "a", "pending")
	mustGet(t, s, "b", "new")
	mustApplyPending(t, s, ent(4, 2, remove(0, 0, "b")))
	mustMissing(t, s, "b")
	mustIndexes(t, s, 4, 1)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIndexes(t, s, 4, 4)
	if _, term := s.Durable(); term != 2 {
		t.Fatalf("durable term %d, want 2", term)
	}
	mustGet(t, s, "a", "pending")
	if err := s.Flush(); err != nil { // nothing pending: a no-op
		t.Fatal(err)
	}
	mustIndexes(t, s, 4, 4)
}

// log12 is a log of session commands: 1-4 register two sessions and put,
// 5-12 update, remove, retry and register.
func log12() []raftlogic.Entry {
	return []raftlogic.Entry{
		register(1, 1), register(2, 1),
		ent(3, 1, put(1, 1, "a", "1")),
		ent(4, 1, put(2, 1, "b", "1")),
		ent(5, 2, update(1, 2, "a", "2")),
		ent(6, 2, remove(2, 2, "b")),
		ent(7, 2, update(2, 3, "b", "x")), // not found
		ent(8, 2, put(1, 2, "a", "dup")),  // a retry of 5
		ent(9, 2, remove(1, 3, "a")),
		register(10, 2),
		ent(11, 2, put(10, 1, "c", "z")),
		ent(12, 2, remove(2, 2, "b")), // a retry of 6
	}
}

func resultStrings(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d/%d c%d s%d %v", r.Index, r.Term, r.ClientID, r.Seq, r.Err))
	}
	return out
}

func image(t *testing.T, s *State) []byte {
	t.Helper()
	b, _, _, err := s.snapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A crash before Flush comes back at Durable, and applying the same entries
// again gives the same answers and runs every command once.
func TestCrashBeforeFlushReplaysExactlyOnce(t *testing.T) {
	log := log12()
	ref, _, _ := newState(t, Options{})
	want := resultStrings(mustApply(t, ref, log...))

	r := newReopenable(t)
	mustApply(t, r.s, log[:4]...)
	var first []Result
	for _, b := range [][]raftlogic.Entry{log[4:6], log[6:9], log[9:12]} {
		first = append(first, mustApplyPending(t, r.s, b...)...)
	}
	if got := resultStrings(first); fmt.Sprint(got) != fmt.Sprint(want[4:]) {
		t.Fatalf("pending results\n%v\nwant\n%v", got, want[4:])
	}
	mustIndexes(t, r.s, 12, 4)
	mustMissing(t, r.s, "a")
	mustGet(t, r.s, "c", "z")

	r.crash()
	mustIndexes(t, r.s, 4, 4)
	mustGet(t, r.s, "a", "1")
	mustGet(t, r.s, "b", "1")
	mustMissing(t, r.s, "c")

	// The caller replays from the log, in other batches.
	again := mustApplyPending(t, r.s, log[:7]...)
	again = append(again, mustApplyPending(t, r.s, log[7:]...)...)
	if got := resultStrings(again); fmt.Sprint(got) != fmt.Sprint(want[4:]) {
		t.Fatalf("replayed results\n%v\nwant\n%v", got, want[4:])
	}
	if err := r.s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(image(t, r.s), image(t, ref)) {
		t.Fatal("the replayed state differs from the state that applied the log once")
	}
	r.crash()
	mustIndexes(t, r.s, 12, 12)
	if !bytes.Equal(image(t, r.s), image(t, ref)) {
		t.Fatal("the flushed state did not survive a crash")
	}
}

// puts returns entries from..to, each a put of a 256-byte value by one of
// sessions 1..50 (registered by entries 1..50).
func puts(from, to uint64) []raftlogic.Entry {
	val := string(bytes.Repeat([]byte("v"), 256))
	var es []raftlogic.Entry
	for i := from; i <= to; i++ {
		es = append(es, ent(i, 1, put((i-51)%50+1, (i-51)/50+1, fmt.Sprint("key", i), val)))
	}
	return es
}

func smallTxns(o badger.Options) badger.Options {
	return o.WithMemTableSize(1 << 20).WithValueThreshold(1 << 10)
}

// Apply commits the pending transaction before it grows past its bound.
func TestPendingTransactionIsBounded(t *testing.T) {
	r := newReopenable(t, smallTxns)
	s := r.s
	mustApply(t, s, registered(50)...)
	const batch = 50
	perBatch := int64(0)
	for from := uint64(51); from < 51+40*batch; from += batch {
		before := int64(0)
		s.pendMu.Lock()
		if s.pend != nil {
			before = s.pend.txn.writes
		}
		s.pendMu.Unlock()
		mustApplyPending(t, s, puts(from, from+batch-1)...)
		s.pendMu.Lock()
		writes := s.pend.txn.writes
		if writes > before {
			perBatch = max(perBatch, writes-before)
		}
		s.pendMu.Unlock()
		if writes > s.maxPendWrites+perBatch {
			t.Fatalf("after entry %d the pending transaction holds %d writes, bound %d (+%d for one batch)",
				from+batch-1, writes, s.maxPendWrites, perBatch)
		}
	}
	if d, _ := s.Durable(); d <= 50 {
		t.Fatalf("Durable %d: nothing committed in 2000 entries", d)
	}
	mustIndexes(t, s, 50+40*batch, func() uint64 { d, _ := s.Durable(); return d }())
}

// When Badger refuses a transaction that holds earlier uncommitted batches,
// they are applied again with the new batch, from the durable state, in
// transactions that fit; every entry is answered once, and the state is
// the one of applying the log in any batches.
func TestTxnTooBigWithEarlierPendingBatches(t *testing.T) {
	ref, _, _ := newState(t, Options{})
	mustApply(t, ref, registered(50)...)
	mustApply(t, ref, puts(51, 1050)...)

	r := newReopenable(t, smallTxns)
	s := r.s
	// No bound of our own: let the pending transaction grow until Badger
	// refuses it.
	s.maxPendWrites, s.maxPendBytes = r.db.MaxBatchCount()*10, r.db.MaxBatchSize()*10
	mustApply(t, s, registered(50)...)
	answered := map[uint64]int{}
	decided := func(rs []Result) {
		for _, x := range rs {
			answered[x.Index]++
		}
	}
	fellBack := false
	for from := uint64(51); from <= 1050; from += 100 {
		res, err := s.Apply(puts(from, from+99), decided)
		if err != nil {
			t.Fatalf("Apply %d..%d: %v", from, from+99, err)
		}
		if len(res) != 100 || res[0].Index != from || res[99].Index != from+99 {
			t.Fatalf("Apply %d..%d answered %d entries from %d", from, from+99, len(res), res[0].Index)
		}
		for _, x := range res {
			if x.Err != nil {
				t.Fatalf("entry %d: %v", x.Index, x.Err)
			}
		}
		if d, _ := s.Durable(); d > 50 {
			fellBack = true
		}
	}
	if !fellBack {
		t.Fatal("Badger never refused the pending transaction: the test does not test the fallback")
	}
	for i := uint64(51); i <= 1050; i++ {
		if answered[i] != 1 {
			t.Fatalf("entry %d answered %d times", i, answered[i])
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIndexes(t, s, 1050, 1050)
	if !bytes.Equal(image(t, s), image(t, ref)) {
		t.Fatal("the state differs from applying the log in one go")
	}
}

var errInjected = errors.New("injected failure")

// A failure part way through a batch discards the whole pending
// transaction (earlier batches too): nothing half-applied is seen or
// committed, and the session cache does not remember the discarded writes.
func TestFailureMidBatchDiscardsPending(t *testing.T) {
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			r := newReopenable(t)
			s := r.s
			mustApply(t, s, register(1, 1), ent(2, 1, put(1, 1, "k", "one")))
			mustApplyPending(t, s, ent(3, 1, put(1, 2, "k", "two")))
			s.beforeEntry = func(e raftlogic.Entry) error {
				if e.Index == 5 {
					if mode == "panic" {
						panic(errInjected)
					}
					return errInjected
				}
				return nil
			}
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = p.(error)
					}
				}()
				_, err = s.Apply([]raftlogic.Entry{ent(4, 1, put(0, 0, "x", "1")), ent(5, 1, put(0, 0, "y", "1"))}, nil)
				return err
			}()
			if !errors.Is(err, errInjected) {
				t.Fatalf("Apply: %v, want the injected failure", err)
			}
			s.beforeEntry = nil
			mustIndexes(t, s, 2, 2)
			mustGet(t, s, "k", "one")
			mustMissing(t, s, "x")

			// Applied again from the log, in the same process: entry 3
			// runs (the session cache must not remember the discarded
			// write and take it for a duplicate).
			res := mustApplyPending(t, s, ent(3, 1, put(1, 2, "k", "two")), ent(4, 1, put(0, 0, "x", "1")), ent(5, 1, put(0, 0, "y", "1")))
			if len(res) != 3 || res[0].Err != nil {
				t.Fatalf("results %v", resultStrings(res))
			}
			mustGet(t, s, "k", "two")
			mustGet(t, s, "y", "1")
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			r.crash()
			mustIndexes(t, r.s, 5, 5)
			mustGet(t, r.s, "k", "two")
			mustGet(t, r.s, "x", "1")
		})
	}
}

// Collecting expired sessions stops at the pending transaction's bound.
func TestSessionCollectionStaysWithinBound(t *testing.T) {
	r := newReopenable(t, smallTxns)
	mustApply(t, r.s, registered(1000)...)
	// The same data under a short session lifetime: all 1000 are expired.
	s, err := Open(r.db, Options{SessionTTL: 10})
	if err != nil {
		t.Fatal(err)
	}
	mustApplyPending(t, s, noop(1001, 1))
	s.pendMu.Lock()
	writes := s.pend.txn.writes
	s.pendMu.Unlock()
	if writes < 100 {
		t.Fatalf("only %d writes: nothing was collected, the test tests nothing", writes)
	}
	if writes > s.maxPendWrites+2 {
		t.Fatalf("collecting sessions wrote %d records into the pending transaction, bound %d", writes, s.maxPendWrites)
	}
}

// Snapshot images the committed state: Durable, not the pending writes.
func TestSnapshotWithPendingWrites(t *testing.T) {
	log := log12()
	src, _, _ := newState(t, Options{})
	mustApply(t, src, log[:4]...)
	mustApplyPending(t, src, log[4:]...)
	data, index, _, err := src.snapshotBytes()
	if err != nil || index != 4 {
		t.Fatalf("snapshot at %d (%v), want 4", index, err)
	}
	ref, _, _ := newState(t, Options{})
	mustApply(t, ref, log[:4]...)
	if want := image(t, ref); !bytes.Equal(data, want) {
		t.Fatal("the image is not the committed state")
	}
	dst, _, _ := newState(t, Options{})
	if _, _, err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	mustGet(t, dst, "a", "1")
	mustMissing(t, dst, "c")
	// dst continues from the image's index as src did.
	rd := resultStrings(mustApply(t, dst, log[4:]...))
	rs := resultStrings(mustApply(t, ref, log[4:]...))
	if fmt.Sprint(rd) != fmt.Sprint(rs) {
		t.Fatalf("after the image: %v, want %v", rd, rs)
	}
}

// Restore over pending writes commits them first, then replaces them: no
// pending write survives into the restored state, now or after a crash; a
// Restore refused before its switch leaves the applied state, committed.
func TestRestoreWithPendingWrites(t *testing.T) {
	other, _, _ := newState(t, Options{})
	var es []raftlogic.Entry
	for i := uint64(1); i <= 20; i++ {
		es = append(es, ent(i, 3, put(0, 0, fmt.Sprint("img", i), "v")))
	}
	mustApply(t, other, es...)
	img := image(t, other)

	r := newReopenable(t)
	mustApply(t, r.s, ent(1, 1, put(0, 0, "old", "v")))
	mustApplyPending(t, r.s, ent(2, 1, put(0, 0, "pending", "v")))

	bad := bytes.Clone(img)
	bad[len(bad)/2] ^= 0xff
	if _, _, err := r.s.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("Restore of a corrupt image: %v", err)
	}
	mustIndexes(t, r.s, 2, 2)
	mustGet(t, r.s, "pending", "v")

	mustApplyPending(t, r.s, ent(3, 1, put(0, 0, "pending2", "v")))
	if idx, _, err := r.s.Restore(bytes.NewReader(img)); err != nil || idx != 20 {
		t.Fatalf("Restore: %d, %v", idx, err)
	}
	mustIndexes(t, r.s, 20, 20)
	mustMissing(t, r.s, "pending2")
	mustMissing(t, r.s, "old")
	mustGet(t, r.s, "img7", "v")
	if err := r.s.Flush(); err != nil {
		t.Fatal(err)
	}
	r.crash()
	mustIndexes(t, r.s, 20, 20)
	mustMissing(t, r.s, "pending2")
	if !bytes.Equal(image(t, r.s), img) {
		t.Fatal("the restored state is not the image")
	}
}

// The value-log collector runs on committed state, with nothing pending.
func TestPauseWritesFlushesFirst(t *testing.T) {
	s, _, _ := newState(t, Options{})
	mustApplyPending(t, s, ent(1, 1, put(0, 0, "a", "v")))
	err := s.PauseWrites(func() error {
		s.pendMu.Lock()
		defer s.pendMu.Unlock()
		if s.pend != nil {
			return errors.New("a transaction is pending while writes are paused")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustIndexes(t, s, 1, 1)
}

// Members and Conf see configuration changes applied and not committed.
func TestMembersSeePendingChanges(t *testing.T) {
	s, _, _ := newState(t, Options{})
	m := Member{ID: 4, PeerAddress: "127.0.0.1:7004", ClientAddress: "127.0.0.1:8004"}
	mustApplyPending(t, s, confEntry(t, 1, 1, []Member{m}, addLearner(4)))
	ms, err := s.Members()
	if err != nil || len(ms) != 1 || ms[0] != m {
		t.Fatalf("Members = %v, %v; want the pending learner", ms, err)
	}
	conf, err := s.Conf()
	if err != nil || !reflect.DeepEqual(conf, confOf(1)) {
		t.Fatalf("Conf = %+v, %v; want %+v", conf, err, confOf(1))
	}
}
