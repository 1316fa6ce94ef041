package kvstate

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
)

func TestPutGetUpdateRemove(t *testing.T) {
	s, db, _ := newState(t, Options{})
	mustMissing(t, s, "a")

	res := mustApply(t, s,
		ent(1, 1, put(0, 0, "a", "1")),
		ent(2, 1, update(0, 0, "a", "2")),
		ent(3, 1, update(0, 0, "b", "x")), // missing: nothing written
		ent(4, 1, remove(0, 0, "c")),      // missing: nothing written
		ent(5, 1, put(0, 0, "c", "")),
		ent(6, 1, remove(0, 0, "c")),
	)
	wantErr := []error{nil, nil, ErrNotFound, ErrNotFound, nil, nil}
	if len(res) != len(wantErr) {
		t.Fatalf("%d results, want %d", len(res), len(wantErr))
	}
	for i, r := range res {
		if r.Index != uint64(i+1) || r.Term != 1 || r.Err != wantErr[i] {
			t.Errorf("result %d = %+v, want index %d err %v", i, r, i+1, wantErr[i])
		}
	}
	mustGet(t, s, "a", "2")
	mustMissing(t, s, "b")
	mustMissing(t, s, "c")
	if keys := rawKeys(t, db, prefixData); len(keys) != 1 || keys[0] != "k/a" {
		t.Fatalf("data keys = %q, want only k/a", keys)
	}

	// Empty values read back as empty, not missing.
	mustApply(t, s, ent(7, 1, put(0, 0, "e", "")))
	if v, err := s.Get("e"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get(e) = %q, %v; want empty value", v, err)
	}
	// Get returns a copy.
	v, _ := s.Get("a")
	v[0] = 'X'
	mustGet(t, s, "a", "2")

	if _, err := s.Get(""); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("Get(\"\") = %v, want ErrEmptyKey", err)
	}
	if idx, term := s.Applied(); idx != 7 || term != 1 {
		t.Fatalf("Applied = %d, %d; want 7, 1", idx, term)
	}
}

func TestAppliedPersistsAndReapplyIsNoop(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	// A key of another package must survive everything kvstate does.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("r/log"), []byte("raft")) }); err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := []raftlogic.Entry{
		register(1, 1),
		ent(2, 1, put(1, 1, "x", "a")),
		noop(3, 2),
		ent(4, 2, put(0, 0, "n", "1")),
		ent(5, 2, put(0, 0, "n", "2")),
	}
	mustApply(t, s, log[:3]...)
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	s, err = Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if idx, term := s.Applied(); idx != 3 || term != 2 {
		t.Fatalf("after reopen Applied = %d, %d; want 3, 2", idx, term)
	}
	mustMissing(t, s, "n")
	mustGet(t, s, "x", "a")

	// Re-applying the whole log applies only what is new.
	res := mustApply(t, s, log...)
	if len(res) != 2 || res[0].Index != 4 || res[1].Index != 5 {
		t.Fatalf("re-apply results = %+v, want entries 4 and 5 only", res)
	}
	if res := mustApply(t, s, log...); len(res) != 0 {
		t.Fatalf("second re-apply gave %d results", len(res))
	}
	mustGet(t, s, "n", "2")
	if idx, _ := s.Applied(); idx != 5 {
		t.Fatalf("Applied = %d, want 5", idx)
	}
	if k := rawKeys(t, db, "r/"); len(k) != 1 {
		t.Fatalf("foreign keys = %q", k)
	}
}

func TestApplyRefusesGapsAndBackwardTerms(t *testing.T) {
	s, db, _ := newState(t, Options{})
	mustApply(t, s, ent(1, 2, put(0, 0, "a", "1")))
	cases := map[string][]raftlogic.Entry{
		"gap":           {ent(3, 2, put(0, 0, "b", "1"))},
		"gap in batch":  {ent(2, 2, put(0, 0, "b", "1")), ent(4, 2, put(0, 0, "c", "1"))},
		"term backward": {ent(2, 1, put(0, 0, "b", "1"))},
	}
	for name, es := range cases {
		if _, err := s.Apply(es, nil); !errors.Is(err, errEntryOrder) {
			t.Errorf("%s: Apply = %v, want errEntryOrder", name, err)
		}
	}
	if idx, _ := s.Applied(); idx != 1 {
		t.Fatalf("Applied = %d after refused batches", idx)
	}
	if keys := rawKeys(t, db, prefixData); len(keys) != 1 {
		t.Fatalf("data keys = %q", keys)
	}
}

func TestBadEntriesAdvanceApplied(t *testing.T) {
	s, _, _ := newState(t, Options{})
	res := mustApply(t, s,
		raftlogic.Entry{Index: 1, Term: 1, Type: raftlogic.EntryNormal, Data: []byte{0xde, 0xad}},
		noop(2, 1),
		raftlogic.Entry{Index: 3, Term: 1, Type: raftlogic.EntryConfChange, Data: []byte{1, 2, 3}},
		raftlogic.Entry{Index: 4, Term: 1, Type: 77, Data: put(0, 0, "z", "z").Encode()},
		ent(5, 1, put(0, 0, "ok", "yes")),
	)
	if len(res) != 5 {
		t.Fatalf("%d results", len(res))
	}
	for i, want := range []error{ErrBadCommand, nil, ErrBadCommand, ErrBadCommand, nil} {
		if !errors.Is(res[i].Err, want) || (want == nil && res[i].Err != nil) {
			t.Errorf("entry %d: Err = %v, want %v", i+1, res[i].Err, want)
		}
	}
	if idx, _ := s.Applied(); idx != 5 {
		t.Fatalf("Applied = %d, want 5", idx)
	}
	mustMissing(t, s, "z")
	mustGet(t, s, "ok", "yes")
}

func TestExactlyOnce(t *testing.T) {
	s, _, _ := newState(t, Options{})
	r := mustApply(t, s,
		register(1, 1), // session 1
		register(2, 1), // session 2
		ent(3, 1, put(1, 1, "a", "1")),
		ent(4, 1, update(1, 2, "b", "x")), // b missing: ErrNotFound
		ent(5, 1, put(2, 1, "b", "set-by-2")),
		ent(6, 1, update(1, 2, "b", "x")),  // retry: first answer, not re-run
		ent(7, 1, put(1, 1, "a", "again")), // older retry: stale
		ent(8, 1, update(1, 3, "b", "by-1")),
		ent(9, 1, put(1, 3, "a", "dup")),      // retry of seq 3: its answer (nil), not re-run
		ent(10, 1, put(9, 1, "c", "orphan")),  // never registered (entry 9 was no register), seq 1
		ent(11, 1, put(10, 2, "c", "orphan")), // never registered, seq > 1
		ent(12, 1, put(0, 0, "n", "1")),
		ent(13, 1, put(0, 0, "n", "2")), // client 0: always executed
	)
	want := []error{nil, nil, nil, ErrNotFound, nil, ErrNotFound, ErrStaleSequence, nil, nil, ErrSessionExpired, ErrSessionExpired, nil, nil}
	for i, w := range want {
		if !errors.Is(r[i].Err, w) || (w == nil && r[i].Err != nil) {
			t.Errorf("entry %d: Err = %v, want %v", i+1, r[i].Err, w)
		}
	}
	if r[0].ClientID != 1 || r[1].ClientID != 2 || r[0].Seq != 0 {
		t.Errorf("register results = %+v, %+v; want the sessions' ids 1 and 2 (their indexes)", r[0], r[1])
	}
	if r[5].ClientID != 1 || r[5].Seq != 2 {
		t.Errorf("retry result = %+v, want client 1 seq 2", r[5])
	}
	mustGet(t, s, "a", "1")
	mustGet(t, s, "b", "by-1")
	mustMissing(t, s, "c")
	mustGet(t, s, "n", "2")
}

func TestSessionExpiry(t *testing.T) {
	s, db, _ := newState(t, Options{SessionTTL: 3})
	r := mustApply(t, s,
		register(1, 1),
		ent(2, 1, put(1, 1, "a", "1")),
		ent(3, 1, put(1, 2, "a", "2")),
		noop(4, 1),
		ent(5, 1, put(1, 2, "a", "2")), // 5-3 < 3: live, a duplicate
		noop(6, 1),
		ent(7, 1, put(1, 3, "a", "3")), // 6-3 >= 3: expired
		register(8, 1),
		noop(9, 1),
		noop(10, 1),
		ent(11, 1, put(8, 1, "a", "never")), // 11-8 >= 3: expired before its first command
	)
	if r[4].Err != nil {
		t.Fatalf("duplicate within TTL: %v", r[4].Err)
	}
	if !errors.Is(r[6].Err, ErrSessionExpired) {
		t.Fatalf("after TTL: Err = %v, want ErrSessionExpired", r[6].Err)
	}
	if !errors.Is(r[10].Err, ErrSessionExpired) {
		t.Fatalf("first command after the registration expired: Err = %v, want ErrSessionExpired", r[10].Err)
	}
	mustGet(t, s, "a", "2")
	// The expired sessions have been collected.
	if k := rawKeys(t, db, prefixSession); len(k) != 0 {
		t.Fatalf("session keys after expiry = %q", k)
	}
	if k := rawKeys(t, db, prefixExpiry); len(k) != 0 {
		t.Fatalf("expiry keys after expiry = %q", k)
	}
	// An expired session stays expired, seq 1 included; a new registration
	// gets a new id.
	r = mustApply(t, s, ent(12, 1, put(1, 1, "a", "again")), register(13, 1), ent(14, 1, put(13, 1, "a", "new")))
	if !errors.Is(r[0].Err, ErrSessionExpired) || r[1].ClientID != 13 || r[2].Err != nil {
		t.Fatalf("after expiry: %+v", r)
	}
	mustGet(t, s, "a", "new")
}

// A command whose answer was lost and that is retried after its session
// expired must never run again: not the first command of a session (seq 1,
// which once created the session implicitly) and not a later one. Running
// it again would overwrite a write acknowledged in between.
func TestLateRetryAfterExpiryNeverRunsTwice(t *testing.T) {
	const ttl = 4
	s, _, _ := newState(t, Options{SessionTTL: ttl})
	mustApply(t, s,
		register(1, 1),
		ent(2, 1, put(1, 1, "first", "a1")),  // answer lost
		ent(3, 1, put(1, 2, "second", "a2")), // answer lost
		register(4, 1),
		ent(5, 1, put(4, 1, "first", "b")), // acknowledged
		ent(6, 1, put(4, 2, "second", "b")),
		noop(7, 1), // 7-3 >= ttl: session 1 has expired
	)
	r := mustApply(t, s,
		ent(8, 1, put(1, 1, "first", "a1")),
		ent(9, 1, put(1, 2, "second", "a2")),
		ent(10, 1, put(1, 1, "first", "a1")), // and again: still refused
	)
	for i, res := range r {
		if !errors.Is(res.Err, ErrSessionExpired) {
			t.Errorf("late retry %d: Err = %v, want ErrSessionExpired", i+1, res.Err)
		}
	}
	mustGet(t, s, "first", "b")
	mustGet(t, s, "second", "b")
}

// Replicas that apply the same log in different batches must end identical,
// expiry and session clean-up included.
func TestDeterministicAcrossBatching(t *testing.T) {
	log := registered(7)
	for i := uint64(8); i <= 300; i++ {
		id := i%7 + 1
		switch {
		case i%50 == 0: // a session registered late, never used
			log = append(log, register(i, i/100+1))
		case i%5 == 0:
			log = append(log, noop(i, i/100+1))
		case i%5 == 1:
			log = append(log, ent(i, i/100+1, update(id, i, fmt.Sprint("k", i%13), "u")))
		case i%5 == 2:
			log = append(log, ent(i, i/100+1, remove(id, i, fmt.Sprint("k", i%11))))
		default:
			log = append(log, ent(i, i/100+1, put(id, i, fmt.Sprint("k", i%17), fmt.Sprint(i))))
		}
		if i%9 == 0 { // retries, some live, some expired
			log[len(log)-1] = ent(i, i/100+1, put(id, i-9, "retry", "r"))
		}
	}
	var images [][]byte
	for _, batch := range []int{1, 7, 300} {
		s, _, _ := newState(t, Options{SessionTTL: 20})
		var answers []string
		for i := 0; i < len(log); i += batch {
			for _, r := range mustApply(t, s, log[i:min(i+batch, len(log))]...) {
				answers = append(answers, fmt.Sprint(r.Err))
			}
		}
		img, idx, _, err := s.snapshotBytes()
		if err != nil || idx != 300 {
			t.Fatalf("SnapshotBytes: %v, index %d", err, idx)
		}
		images = append(images, append(img, fmt.Sprint(answers)...))
	}
	for i := 1; i < len(images); i++ {
		if !bytes.Equal(images[0], images[i]) {
			t.Fatalf("batching changed the state or the answers (run %d)", i)
		}
	}
}

func TestApplySplitsTooBigTransactions(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir, func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(1 << 10) })
	defer db.Close()
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	es := registered(50)
	val := string(bytes.Repeat([]byte("v"), 256))
	for i := uint64(51); i <= 3000; i++ {
		es = append(es, ent(i, 1, put((i-51)%50+1, (i-51)/50+1, fmt.Sprint("key", i), val)))
	}
	res := mustApply(t, s, es...)
	if len(res) != len(es) {
		t.Fatalf("%d results for %d entries", len(res), len(es))
	}
	for i, r := range res {
		if r.Index != uint64(i+1) || r.Err != nil {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	if idx, _ := s.Applied(); idx != 3000 {
		t.Fatalf("Applied = %d", idx)
	}
	mustGet(t, s, "key51", val)
	mustGet(t, s, "key3000", val)
}

func TestConcurrentReadsDuringApply(t *testing.T) {
	s, _, _ := newState(t, Options{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				idx, _ := s.Applied()
				v, err := s.Get("counter")
				if idx > 0 && err != nil {
					t.Errorf("Get after applied %d: %v", idx, err)
					return
				}
				if err == nil && len(v) == 0 {
					t.Errorf("empty value")
					return
				}
			}
		}()
	}
	for i := uint64(1); i <= 200; i++ {
		mustApplyPending(t, s, ent(i, 1, put(0, 0, "counter", fmt.Sprint(i))))
	}
	close(stop)
	wg.Wait()
}

func BenchmarkApply(b *testing.B) {
	s, _, _ := newState(b, Options{})
	val := bytes.Repeat([]byte("v"), 256)
	const batch = 64
	const clients = 16
	if _, err := s.Apply(registered(clients), nil); err != nil {
		b.Fatal(err)
	}
	seq := make([]uint64, clients+1)
	idx := uint64(clients)
	es := make([]raftlogic.Entry, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range es {
			idx++
			id := idx%clients + 1
			seq[id]++
			c := Command{ClientID: id, Seq: seq[id], Op: OpPut, Key: fmt.Sprintf("key%08d", idx%100000), Value: val}
			es[j] = raftlogic.Entry{Index: idx, Term: 1, Data: c.Encode()}
		}
		if _, err := s.Apply(es, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ops/s")
}

// A node that applied part of its log under the version 1 session rules
// (sessions created by their first command) cannot apply the rest under the
// version 2 rules without diverging from its peers: its data is refused
// with an error that says so, never read.
func TestOpenRefusesLayoutVersion1(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyVersion), []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	_, err := Open(db, Options{})
	if !errors.Is(err, errCorruptState) || !strings.Contains(err.Error(), "older RaftKV") {
		t.Fatalf("Open of layout 1 = %v, want errCorruptState naming an older RaftKV", err)
	}
}
