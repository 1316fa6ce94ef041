package raftkv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// answerDropper loses the nodes' answers to proposals while it is armed,
// as a network or a dying process would: the proposal itself goes through
// and is applied, only its sender never hears so.
type answerDropper struct {
	armed   atomic.Bool
	dropped atomic.Int64
}

func (d *answerDropper) middleware() actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			if _, ok := env.Message.(*raftpb.ProposeResponse); ok && d.armed.Load() {
				d.dropped.Add(1)
				return
			}
			next(c, target, env)
		}
	}
}

// waitValue polls Get until key holds want (or is absent, for want nil).
func waitValue(t testing.TB, db *DB, key string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v, err := db.Get(ctxT(t), key)
		if (want == nil && errors.Is(err, ErrNotFound)) || (want != nil && err == nil && string(v) == string(want)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never became %q", key, want)
}

// mustValue fails unless key holds want.
func mustValue(t testing.TB, db *DB, key, want string) {
	t.Helper()
	v, err := db.Get(ctxT(t), key)
	if err != nil || string(v) != want {
		t.Fatalf("Get %s = %q, %v; want %q", key, v, err, want)
	}
}

// seedSession registers a session and puts it in the DB's pool, so the
// next write runs as its first command (seq 1) without registering inside
// the call.
func seedSession(t testing.TB, db *DB) uint64 {
	t.Helper()
	id, err := db.gw.registerSession(ctxT(t))
	if err != nil {
		t.Fatalf("register session: %v", err)
	}
	db.gw.sessions.put(&session{id: id})
	return id
}

// A write whose answer was lost and that is retried after its session
// expired must not run again, whether it was the session's first command
// (seq 1, which once created its session implicitly) or a later one (which
// the DB once re-sent under a fresh session): running it again would
// overwrite a write acknowledged in between. The DB reports the write as
// ErrOutcomeUnknown instead.
func TestLateRetryAfterSessionExpiryNeverRunsTwice(t *testing.T) {
	const ttl = 16
	for _, tc := range []struct {
		name   string
		warmUp bool // one write on the session before the victim
	}{{"first command of a session", false}, {"later command of a session", true}} {
		t.Run(tc.name, func(t *testing.T) {
			drop := &answerDropper{}
			db := openTest(t, testConfig(t, 3), withSessionTTL(ttl), withSenderMiddleware(drop.middleware()))
			defer db.Close()
			ctx := ctxT(t)
			seedSession(t, db)
			if tc.warmUp {
				if err := db.Put(ctx, "warm", []byte("up")); err != nil {
					t.Fatal(err)
				}
			}
			leader := waitLeader(t, db)
			db.route.leader.Store(leader)

			// The victim is applied, but its answer is lost.
			drop.armed.Store(true)
			victim := make(chan error, 1)
			go func() { victim <- db.Put(ctx, "k", []byte("victim")) }()
			waitValue(t, db, "k", []byte("victim"))
			drop.armed.Store(false) // the victim's answer has been dropped already

			// A later write to the same key is acknowledged, and the victim's
			// session expires under more than ttl other entries.
			if err := db.Put(ctx, "k", []byte("acked")); err != nil {
				t.Fatalf("Put acked: %v", err)
			}
			for i := 0; i < ttl+4; i++ {
				if err := db.Put(ctx, fmt.Sprint("filler", i), []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			// The leader dies: the victim's sender re-sends it to the next
			// leader, far too late.
			if err := db.stopNode(leader); err != nil {
				t.Fatal(err)
			}
			err := <-victim
			if v, err := db.Get(ctx, "k"); err != nil || string(v) != "acked" {
				t.Errorf("k = %q, %v after the late retry; want the acknowledged %q", v, err, "acked")
			}
			if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrSessionExpired) {
				t.Errorf("victim Put = %v, want ErrOutcomeUnknown with ErrSessionExpired", err)
			}
		})
	}
}

// The same rule end to end at the state machine, through the DB's own
// proposal path: a late copy of an applied command, sent after its session
// expired, answers ErrSessionExpired and changes nothing.
func TestLateCopyAfterExpiryIsRefused(t *testing.T) {
	const ttl = 16
	db := openTest(t, testConfig(t, 3), withSessionTTL(ttl))
	defer db.Close()
	ctx := ctxT(t)
	id, err := db.gw.registerSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := kvstate.Command{ClientID: id, Seq: 1, Op: kvstate.OpPut, Key: "k1", Value: []byte("first")}
	second := kvstate.Command{ClientID: id, Seq: 2, Op: kvstate.OpPut, Key: "k2", Value: []byte("second")}
	for _, c := range []kvstate.Command{first, second} {
		if final, err := db.gw.propose(ctx, c); !final || err != nil {
			t.Fatalf("propose seq %d: final %v, %v", c.Seq, final, err)
		}
	}
	for i := 0; i < ttl+4; i++ {
		if err := db.Put(ctx, fmt.Sprint("k", i%2+1), []byte("acked")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []kvstate.Command{first, second} {
		final, err := db.gw.propose(ctx, c)
		if !final || !errors.Is(err, ErrSessionExpired) {
			t.Fatalf("late copy of seq %d: final %v, %v; want a final ErrSessionExpired", c.Seq, final, err)
		}
	}
	mustValue(t, db, "k1", "acked")
	mustValue(t, db, "k2", "acked")
}

// A session that expired while idle in the pool is replaced, invisibly:
// the write it was picked for had not run anywhere.
func TestIdleExpiredSessionIsReplaced(t *testing.T) {
	const ttl = 8
	db := openTest(t, testConfig(t, 3), withSessionTTL(ttl))
	defer db.Close()
	ctx := ctxT(t)
	idle := seedSession(t, db)
	// Other traffic on a session of its own expires the idle one.
	busy, err := db.gw.registerSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= ttl+2; seq++ {
		if _, err := db.gw.propose(ctx, kvstate.Command{ClientID: busy, Seq: seq, Op: kvstate.OpPut, Key: "other", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put on an idle expired session: %v, want it sent again under a new one", err)
	}
	mustValue(t, db, "k", "v")
	if len(db.gw.sessions.free) != 1 || db.gw.sessions.free[0].id == idle {
		t.Fatalf("pool after the write: %+v, want one new session", db.gw.sessions.free)
	}
}

// A gRPC write without a session is refused with INVALID_ARGUMENT and
// nothing is proposed: the node re-sends a write it cannot confirm, and
// without a session every copy would run.
func TestGRPCWriteWithoutSessionIsRefused(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	addr := serveClients(t, db)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kv := clientpb.NewKVClient(conn)
	ctx := ctxT(t)
	if _, err := kv.Status(ctx, &clientpb.ClusterStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	before := appliedIndexes(t, db)
	for _, req := range []*clientpb.WriteRequest{
		{Op: clientpb.Op_OP_PUT, Key: "k", Value: []byte("v")},
		{Seq: 1, Op: clientpb.Op_OP_PUT, Key: "k", Value: []byte("v")},
		{Seq: 7, Op: clientpb.Op_OP_REMOVE, Key: "k"},
		{ClientId: 5, Op: clientpb.Op_OP_PUT, Key: "k", Value: []byte("v")}, // seq 0
	} {
		_, err := kv.Write(ctx, req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Write(client %d, seq %d) = %v, want INVALID_ARGUMENT", req.GetClientId(), req.GetSeq(), err)
		}
	}
	if after := appliedIndexes(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("log indexes moved from %v to %v: a refused write reached the log", before, after)
	}
	if _, err := db.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get k = %v, want ErrNotFound", err)
	}

	// The protocol for network clients: register, then write with the id.
	reg, err := kv.RegisterSession(ctx, &clientpb.RegisterSessionRequest{})
	if err != nil || reg.GetClientId() == 0 {
		t.Fatalf("RegisterSession = %v, %v", reg, err)
	}
	w := &clientpb.WriteRequest{ClientId: reg.GetClientId(), Seq: 1, Op: clientpb.Op_OP_PUT, Key: "k", Value: []byte("v")}
	for range 2 { // the second is a retry: answered, not run
		if _, err := kv.Write(ctx, w); err != nil {
			t.Fatalf("Write with a session: %v", err)
		}
	}
	_, err = kv.Write(ctx, &clientpb.WriteRequest{ClientId: reg.GetClientId() + 1000, Seq: 1, Op: clientpb.Op_OP_PUT, Key: "k", Value: []byte("x")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Write on a session never registered = %v, want FAILED_PRECONDITION", err)
	}
	mustValue(t, db, "k", "v")
}

// A Remove whose answer is lost is re-sent (here: its leader dies after
// applying it) and must answer what its first copy did, OK, not NotFound
// from a second copy finding the key gone. Through the network client and
// the server's own routing.
func TestRemoveRetriedAfterLostAnswerAnswersOK(t *testing.T) {
	drop := &answerDropper{}
	db := openTest(t, testConfig(t, 3), withSenderMiddleware(drop.middleware()))
	defer db.Close()
	addr := serveClients(t, db)
	ctx := ctxT(t)
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	leader := waitLeader(t, db)
	db.route.leader.Store(leader)

	drop.armed.Store(true)
	removed := make(chan error, 1)
	go func() { removed <- c.Remove(ctx, "k") }()
	waitValue(t, db, "k", nil)
	drop.armed.Store(false)
	if drop.dropped.Load() == 0 {
		t.Fatal("setup: no answer was dropped")
	}
	if err := db.stopNode(leader); err != nil {
		t.Fatal(err)
	}
	if err := <-removed; err != nil {
		t.Fatalf("Remove = %v, want nil: its first copy removed the key", err)
	}
	if _, err := db.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get k = %v, want ErrNotFound", err)
	}
}

// delayToLeader holds back every message a follower sends to the leader
// for d, so commits take at least d (an entry commits only once a
// follower's acknowledgement arrives) while the followers still hear the
// leader at once and hold no election.
type delayToLeader struct {
	leader atomic.Uint64
	d      time.Duration
}

func (dl *delayToLeader) middleware() actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			l := dl.leader.Load()
			lead := fmt.Sprintf("n%d", l)
			if _, ok := env.Message.(*raftpb.RaftEnvelope); !ok || l == 0 || target.Id != lead ||
				c.Self() == nil || c.Self().Id == lead || strings.HasPrefix(c.Self().Id, lead+"/") {
				next(c, target, env)
				return
			}
			// A timer must not use the actor's context; the root carries the
			// sender along.
			root, msg, sender := c.ActorSystem().Root, env.Message, env.Sender
			time.AfterFunc(dl.d, func() { root.RequestWithCustomSender(target, msg, sender) })
		}
	}
}

// When commits are slower than the old one-second try timeout, a write
// still enters the log once: the DB waits for the leader's answer instead
// of proposing the write again every second. (It used to enter about once
// per second of delay, ~10 times at the 10 s default deadline, keeping an
// overloaded cluster overloaded.)
func TestSlowCommitProposesOnce(t *testing.T) {
	cfg := testConfig(t, 3)
	// An election timeout well above the injected delay, so the leader's
	// quorum check tolerates followers that answer late.
	cfg.ElectionTicks = 250
	const delay = 1500 * time.Millisecond
	dl := &delayToLeader{d: delay}
	db := openTest(t, cfg, withSenderMiddleware(dl.middleware()))
	defer db.Close()
	ctx := ctxT(t)
	if err := db.Put(ctx, "warm", []byte("up")); err != nil { // registers the session
		t.Fatal(err)
	}
	leader := waitLeader(t, db)
	db.route.leader.Store(leader)
	proposals := func() uint64 {
		st, err := db.gw.status(ctxT(t), []uint64{leader})
		if err != nil || !st[0].Reachable || st[0].Role != "leader" {
			t.Fatalf("leader %d status: %+v, %v", leader, st, err)
		}
		return st[0].Proposals
	}
	before := proposals()
	dl.leader.Store(leader)
	start := time.Now()
	putCtx, cancel := context.WithTimeout(context.Background(), DefaultRequestTimeout)
	defer cancel()
	err := db.Put(putCtx, "k", []byte("v"))
	took := time.Since(start)
	dl.leader.Store(0)
	if n := proposals() - before; err != nil || n != 1 {
		t.Fatalf("one Put under slow commits returned %v after %v and created %d log entries; want nil and 1", err, took.Round(time.Millisecond), n)
	}
	if took < delay {
		t.Fatalf("setup: the Put committed in %v, faster than the injected %v", took, delay)
	}
}

// Close while writes are in flight: each returns at once with ErrClosed,
// and a write that had been sent also matches ErrOutcomeUnknown (here one
// that was applied, so "closed" alone would have been a lie). A write
// after Close was never sent: ErrClosed alone.
func TestCloseDuringWritesReportsOutcomeUnknown(t *testing.T) {
	cfg := testConfig(t, 3)
	drop := &answerDropper{}
	db := openTest(t, cfg, withSenderMiddleware(drop.middleware()))
	ctx := ctxT(t)
	if err := db.Put(ctx, "warm", []byte("up")); err != nil {
		t.Fatal(err)
	}
	// One write surely in flight: applied, its answer lost.
	drop.armed.Store(true)
	inFlight := make(chan error, 1)
	go func() { inFlight <- db.Put(ctx, "inflight", []byte("v")) }()
	waitValue(t, db, "inflight", []byte("v"))
	drop.armed.Store(false)

	// Writers racing Close.
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := db.Put(ctx, fmt.Sprintf("w%d-%d", w, i), []byte("x"))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them get going; correctness does not depend on it

	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(stop)
	wg.Wait()
	close(errs)
	if err := <-inFlight; !errors.Is(err, ErrClosed) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("write in flight at Close = %v, want ErrClosed and ErrOutcomeUnknown", err)
	}
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("racing writer: %v, want ErrClosed", err)
		}
	}
	if err := db.Put(ctx, "after", []byte("x")); !errors.Is(err, ErrClosed) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Put after Close = %v, want ErrClosed alone (nothing was sent)", err)
	}
	// The unknown outcome was in fact "applied".
	db = openTest(t, cfg)
	defer db.Close()
	mustValue(t, db, "inflight", "v")
}
