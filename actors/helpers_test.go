package actors

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// waitTimeout bounds every wait in these tests. It is generous on purpose:
// a test waits for something that must happen, never for how fast.
const waitTimeout = 10 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// snapshotBytes returns sm's snapshot image in memory, with the applied
// index and term it covers.
func snapshotBytes(sm *kvstate.State) ([]byte, uint64, uint64, error) {
	var b bytes.Buffer
	index, term, err := sm.Snapshot(&b)
	return b.Bytes(), index, term, err
}

// newSystem returns a local actor system (no Remote) that logs nothing.
func newSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quietLogger() }))
	t.Cleanup(sys.Shutdown)
	return sys
}

// store is a node's real Badger databases with the state machine and the
// log store on them, as a node opens them.
type store struct {
	dir      string
	logDB    *badger.DB
	stateDB  *badger.DB
	sm       *kvstate.State
	logStore *persist.LogStore
}

// openStore opens a store in a fresh temp dir. It is closed at the end of
// the test; call it before spawning the actors that use it, so they are
// stopped (cleanups run last-in first-out) before it is closed.
func openStore(t *testing.T) *store {
	t.Helper()
	return openStoreAt(t, t.TempDir())
}

// openStoreAt opens the store kept in dir, with extra persist options.
func openStoreAt(t *testing.T, dir string, opts ...persist.Option) *store {
	t.Helper()
	open := func(dir string) *badger.DB {
		db, err := persist.OpenDB(dir, append([]persist.Option{persist.WithLogger(quietLogger())}, opts...)...)
		if err != nil {
			t.Fatalf("OpenDB: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	logDB, stateDB := open(persist.LogDir(dir)), open(persist.StateDir(dir))
	sm, err := kvstate.Open(stateDB, kvstate.Options{})
	if err != nil {
		t.Fatalf("kvstate.Open: %v", err)
	}
	ls := persist.NewLogStore(logDB, persist.WithLogger(quietLogger()))
	if _, err := ls.Load(); err != nil {
		t.Fatalf("LogStore.Load: %v", err)
	}
	return &store{dir: dir, logDB: logDB, stateDB: stateDB, sm: sm, logStore: ls}
}

// recorder keeps the messages a probe received, for the test goroutine to
// wait on. Unbounded, so a chatty sender never blocks a probe.
type recorder struct {
	mu     sync.Mutex
	msgs   []any
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) add(m any) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.msgs...)
}

// take removes and returns the first recorded message of type T that
// match accepts (nil accepts any).
func take[T any](r *recorder, match func(T) bool) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.msgs {
		if v, ok := m.(T); ok && (match == nil || match(v)) {
			r.msgs = append(r.msgs[:i], r.msgs[i+1:]...)
			return v, true
		}
	}
	var zero T
	return zero, false
}

// expect waits for a message of type T that match accepts, removes it and
// returns it.
func expect[T any](t *testing.T, r *recorder, match func(T) bool) T {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		if v, ok := take(r, match); ok {
			return v
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			var zero T
			t.Fatalf("no %T arrived within %v; recorded: %s", zero, waitTimeout, describe(r.snapshot()))
		}
	}
}

// count reports how many recorded messages have type T.
func count[T any](r *recorder) int {
	n := 0
	for _, m := range r.snapshot() {
		if _, ok := m.(T); ok {
			n++
		}
	}
	return n
}

func describe(msgs []any) string {
	s := "["
	for i, m := range msgs {
		if i > 0 {
			s += " "
		}
		s += reflect.TypeOf(m).String()
	}
	return s + "]"
}

// probe is an actor that records what it receives. It can spawn one child
// (standing in for a node with that child) and handle some messages itself.
type probe struct {
	rec       *recorder
	handle    func(ctx actor.Context) bool
	child     *actor.Props
	childName string
	childPID  chan *actor.PID
}

func (p *probe) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		if p.child != nil {
			pid, err := ctx.SpawnNamed(p.child, p.childName)
			if err != nil {
				panic(fmt.Sprintf("spawn %s: %v", p.childName, err))
			}
			p.childPID <- pid
		}
		return
	case *actor.Stopping, *actor.Stopped, *actor.Restarting:
		return
	}
	if p.handle != nil && p.handle(ctx) {
		return
	}
	p.rec.add(ctx.Message())
}

// probeOpts configures spawnProbe.
type probeOpts struct {
	handle     func(ctx actor.Context) bool
	child      actor.Producer
	childName  string
	middleware []actor.SenderMiddleware
	// rec, when set, is the recorder to use (a handler may record too).
	rec *recorder
}

// spawnProbe spawns a probe named name at the root (a generated name if
// empty). With a child producer it stands in for a node: the child is
// supervised with the node's strategy and sees the probe as its parent.
// It returns the probe's PID, its child's (nil without one) and its
// recorder. Both are stopped at the end of the test.
func spawnProbe(t *testing.T, sys *actor.ActorSystem, name string, o probeOpts) (pid, child *actor.PID, rec *recorder) {
	t.Helper()
	rec = o.rec
	if rec == nil {
		rec = newRecorder()
	}
	var childProps *actor.Props
	if o.child != nil {
		var copts []actor.PropsOption
		if len(o.middleware) > 0 {
			copts = append(copts, actor.WithSenderMiddleware(o.middleware...))
		}
		childProps = actor.PropsFromProducer(o.child, copts...)
	}
	childPID := make(chan *actor.PID, 1)
	opts := []actor.PropsOption{actor.WithSupervisor(childStrategy())}
	if len(o.middleware) > 0 {
		opts = append(opts, actor.WithSenderMiddleware(o.middleware...))
	}
	props := actor.PropsFromProducer(func() actor.Actor {
		return &probe{rec: rec, handle: o.handle, child: childProps, childName: o.childName, childPID: childPID}
	}, opts...)
	var err error
	if name == "" {
		pid = sys.Root.Spawn(props)
	} else if pid, err = sys.Root.SpawnNamed(props, name); err != nil {
		t.Fatalf("spawn %s: %v", name, err)
	}
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	if o.child != nil {
		select {
		case child = <-childPID:
		case <-time.After(waitTimeout):
			t.Fatalf("probe %s did not spawn its child", name)
		}
	}
	return pid, child, rec
}

// supervisorEvents records the actor failures of sys.
func supervisorEvents(t *testing.T, sys *actor.ActorSystem) *recorder {
	rec := newRecorder()
	sub := sys.EventStream.Subscribe(func(e any) {
		if ev, ok := e.(*actor.SupervisorEvent); ok {
			rec.add(ev)
		}
	})
	t.Cleanup(func() { sys.EventStream.Unsubscribe(sub) })
	return rec
}

// eventually polls cond until it holds or the wait times out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Entries and commands.

func cmdEntry(index, term uint64, c kvstate.Command) raftlogic.Entry {
	return raftlogic.Entry{Index: index, Term: term, Type: raftlogic.EntryNormal, Data: c.Encode()}
}

func putCmd(key, value string) kvstate.Command {
	return kvstate.Command{Op: kvstate.OpPut, Key: key, Value: []byte(value)}
}

func updateCmd(key, value string) kvstate.Command {
	return kvstate.Command{Op: kvstate.OpUpdate, Key: key, Value: []byte(value)}
}

func removeCmd(key string) kvstate.Command {
	return kvstate.Command{Op: kvstate.OpRemove, Key: key}
}

func mustGet(t *testing.T, sm *kvstate.State, key, want string) {
	t.Helper()
	v, err := sm.Get(key)
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
	}
}
