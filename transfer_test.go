package raftkv

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/internal/faults"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// statusOf returns node id's status as it answers it.
func statusOf(t *testing.T, db *DB, id uint64) NodeStatus {
	t.Helper()
	st, err := db.Status(ctxT(t))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, s := range st {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no status for node %d in %+v", id, st)
	return NodeStatus{}
}

// followerOf returns a node of 1..3 other than the ones in not.
func followerOf(not ...uint64) uint64 {
	for id := uint64(1); id <= 3; id++ {
		other := true
		for _, n := range not {
			other = other && id != n
		}
		if other {
			return id
		}
	}
	return 0
}

// TransferLeadership returns once the target leads, in a later term, and
// the cluster keeps serving; with 0 the leader hands over to another node.
func TestTransferLeadership(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	ctx := ctxT(t)
	if err := db.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	old := waitLeader(t, db)
	oldTerm := statusOf(t, db, old).Term
	to := followerOf(old)
	if err := db.TransferLeadership(ctx, to); err != nil {
		t.Fatalf("TransferLeadership(%d) from leader %d: %v", to, old, err)
	}
	// The old leader saw to lead before answering; to itself says so too
	// unless it lost leadership since, which nothing here provokes.
	if s := statusOf(t, db, to); s.Role != "leader" || s.Term <= oldTerm {
		t.Fatalf("after the transfer node %d is %s in term %d; want leader in a term after %d", to, s.Role, s.Term, oldTerm)
	}
	if s := statusOf(t, db, old); s.Role == "leader" {
		t.Fatalf("old leader %d still leads after the transfer: %+v", old, s)
	}
	if err := db.Put(ctx, "k", []byte("v2")); err != nil {
		t.Fatalf("Put after the transfer: %v", err)
	}
	if v, err := db.Get(ctx, "k"); err != nil || string(v) != "v2" {
		t.Fatalf("Get after the transfer = %q, %v; want v2", v, err)
	}

	// 0: the leader chooses; it must be another node.
	term := statusOf(t, db, to).Term
	if err := db.TransferLeadership(ctx, 0); err != nil {
		t.Fatalf("TransferLeadership(0) from leader %d: %v", to, err)
	}
	now := currentLeader(db)
	if now == to || now == 0 {
		t.Fatalf("after TransferLeadership(0) the leader is %d; want a node other than %d", now, to)
	}
	if s := statusOf(t, db, now); s.Term <= term {
		t.Fatalf("new leader %d is in term %d, want after %d", now, s.Term, term)
	}
}

// A transfer that cannot be done is refused, and leadership stays put.
func TestTransferLeadershipRefused(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	ctx := ctxT(t)
	l := waitLeader(t, db)
	term := statusOf(t, db, l).Term
	for _, c := range []struct {
		name string
		to   uint64
	}{
		{"unknown node", 9},
		{"largest id", ^uint64(0)},
		{"the leader itself", l},
	} {
		err := db.TransferLeadership(ctx, c.to)
		if !errors.Is(err, ErrInvalidTransfer) {
			t.Errorf("%s (%d): %v, want ErrInvalidTransfer", c.name, c.to, err)
		}
		if errors.Is(err, ErrTransferFailed) || errors.Is(err, ErrTransferInProgress) {
			t.Errorf("%s: %v also matches another transfer error", c.name, err)
		}
	}
	if s := statusOf(t, db, l); s.Role != "leader" || s.Term != term {
		t.Fatalf("after refused transfers node %d is %s in term %d; want leader in term %d", l, s.Role, s.Term, term)
	}
	if err := db.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put after refused transfers: %v", err)
	}
}

// A transfer to a node cut off from the leader fails when raftlogic
// abandons it (an election timeout), without hanging; meanwhile a transfer
// to another node is refused as in progress, and one to the same node
// waits for the same outcome. With 0, the leader picks the follower it
// still hears from.
func TestTransferLeadershipFails(t *testing.T) {
	cfg := testConfig(t, 3)
	// 300 ms for a transfer to be abandoned: time for the requests below
	// to reach the leader while it runs.
	cfg.ElectionTicks = 30
	network := faults.NewNetwork(1)
	db := openTest(t, cfg, withSenderMiddleware(network.Middleware()))
	defer db.Close()
	ctx := ctxT(t)
	if err := db.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	l := waitLeader(t, db)
	term := statusOf(t, db, l).Term
	cut := followerOf(l)
	other := followerOf(l, cut)
	network.Isolate(cut, 1, 2, 3)

	// Straight to the leader's mailbox, in this order: the second and
	// third arrive while the first runs.
	pid := db.route.pid(l)
	req := func(to uint64) *raftpb.TransferRequest {
		return &raftpb.TransferRequest{ClusterId: db.cfg.ClusterID, To: to}
	}
	start := time.Now()
	first := db.sys.Root.RequestFuture(pid, req(cut), 10*time.Second)
	busy := db.sys.Root.RequestFuture(pid, req(other), 10*time.Second)
	same := db.sys.Root.RequestFuture(pid, req(cut), 10*time.Second)
	// And one through the API, which must report the error as its own.
	if err := db.TransferLeadership(ctx, other); !errors.Is(err, ErrTransferInProgress) {
		t.Errorf("TransferLeadership(%d) during a transfer to %d: %v, want ErrTransferInProgress", other, cut, err)
	}
	for name, f := range map[string]interface{ Result() (any, error) }{"first": first, "busy": busy, "same": same} {
		res, err := f.Result()
		if err != nil {
			t.Fatalf("%s transfer: %v", name, err)
		}
		r := res.(*raftpb.TransferResponse)
		want := raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED
		if name == "busy" {
			want = raftpb.ErrorCode_ERROR_CODE_TRANSFER_BUSY
		}
		if r.GetErrorCode() != want || r.GetLeaderId() != l {
			t.Errorf("%s transfer answered %v (leader %d, %q); want %v naming leader %d", name, r.GetErrorCode(), r.GetLeaderId(), r.GetMessage(), want, l)
		}
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("the failed transfer took %v to answer; raftlogic gives up after 300 ms", waited)
	}
	if s := statusOf(t, db, l); s.Role != "leader" || s.Term != term {
		t.Fatalf("after the failed transfer node %d is %s in term %d; want leader in term %d", l, s.Role, s.Term, term)
	}
	if err := db.Put(ctx, "k", []byte("w")); err != nil {
		t.Fatalf("Put after the failed transfer: %v", err)
	}
	// Through the API: the same failure, as ErrTransferFailed.
	if err := db.TransferLeadership(ctx, cut); !errors.Is(err, ErrTransferFailed) {
		t.Fatalf("TransferLeadership(%d) to a cut-off node: %v, want ErrTransferFailed", cut, err)
	}

	// The cut-off node has not answered for over an election timeout, so
	// 0 must pick the other follower.
	if err := db.TransferLeadership(ctx, 0); err != nil {
		t.Fatalf("TransferLeadership(0) with node %d cut off: %v", cut, err)
	}
	if now := currentLeader(db); now != other {
		t.Fatalf("TransferLeadership(0) with node %d cut off moved leadership to %d, want %d", cut, now, other)
	}
}

// A caller's context bounds the wait.
func TestTransferLeadershipContext(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	waitLeader(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.TransferLeadership(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("TransferLeadership with a cancelled context: %v, want context.Canceled", err)
	}
}

// Client.TransferLeadership goes through the client API (real gRPC) and
// reports the same outcomes as the DB's.
func TestClientTransferLeadership(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.ElectionTicks = 30 // see TestTransferLeadershipFails
	network := faults.NewNetwork(1)
	db := openTest(t, cfg, withSenderMiddleware(network.Middleware()))
	defer db.Close()
	ctx := ctxT(t)
	c, err := Dial(ctx, serveClients(t, db))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	old := waitLeader(t, db)
	oldTerm := statusOf(t, db, old).Term
	to := followerOf(old)
	if err := c.TransferLeadership(ctx, to); err != nil {
		t.Fatalf("Client.TransferLeadership(%d) from leader %d: %v", to, old, err)
	}
	if s := statusOf(t, db, to); s.Role != "leader" || s.Term <= oldTerm {
		t.Fatalf("after the transfer node %d is %s in term %d; want leader in a term after %d", to, s.Role, s.Term, oldTerm)
	}
	for _, bad := range []uint64{9, to} {
		if err := c.TransferLeadership(ctx, bad); !errors.Is(err, ErrInvalidTransfer) {
			t.Errorf("Client.TransferLeadership(%d): %v, want ErrInvalidTransfer", bad, err)
		}
	}

	cut := followerOf(to)
	network.Isolate(cut, 1, 2, 3)
	first := db.sys.Root.RequestFuture(db.route.pid(to), &raftpb.TransferRequest{ClusterId: db.cfg.ClusterID, To: cut}, 10*time.Second)
	if err := c.TransferLeadership(ctx, followerOf(to, cut)); !errors.Is(err, ErrTransferInProgress) {
		t.Errorf("Client.TransferLeadership during a transfer: %v, want ErrTransferInProgress", err)
	}
	if _, err := first.Result(); err != nil {
		t.Fatal(err)
	}
	if err := c.TransferLeadership(ctx, cut); !errors.Is(err, ErrTransferFailed) {
		t.Errorf("Client.TransferLeadership(%d) to a cut-off node: %v, want ErrTransferFailed", cut, err)
	}
	if now := currentLeader(db); now != to {
		t.Fatalf("after failed transfers node %d leads, want %d", now, to)
	}
}

// A write that arrives while the leader hands over waits for the transfer
// to end, pausing between attempts: the old leader and its transferee each
// point at the other until then, and following them without a pause sent
// over 50,000 requests in 300 ms.
func TestWriteDuringTransferDoesNotSpin(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.ElectionTicks = 30 // the transfer below fails after 300 ms
	network := faults.NewNetwork(1)
	db := openTest(t, cfg, withSenderMiddleware(network.Middleware()))
	defer db.Close()
	ctx := ctxT(t)
	if err := db.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	l := waitLeader(t, db)
	cut := followerOf(l)
	network.Isolate(cut, 1, 2, 3)
	f := db.sys.Root.RequestFuture(db.route.pid(l), &raftpb.TransferRequest{ClusterId: db.cfg.ClusterID, To: cut}, 10*time.Second)
	// Queued behind the transfer request at the leader.
	db.route.leader.Store(l)
	before := db.route.attempts.Load()
	if err := db.Put(ctx, "k", []byte("w")); err != nil {
		t.Fatalf("Put during a transfer: %v", err)
	}
	attempts := db.route.attempts.Load() - before
	res, err := f.Result()
	if err != nil {
		t.Fatal(err)
	}
	if r := res.(*raftpb.TransferResponse); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED {
		t.Fatalf("the transfer to cut-off node %d answered %v; the test needs it to run until it fails", cut, r.GetErrorCode())
	}
	if attempts > 100 {
		t.Fatalf("a Put during a 300 ms transfer took %d attempts; want it to pause between them", attempts)
	}
	t.Logf("a Put during the transfer took %d attempts", attempts)
}

// The old leader answers even when it cannot learn the outcome: cut off
// from every answer, it gives up (when raftlogic abandons the transfer, or
// after a few election timeouts when CheckQuorum made it step down first)
// though the target took over; stopped mid-transfer, it answers as it
// stops. Either way the error says leadership may have moved.
func TestTransferLeadershipOutcomeUnseen(t *testing.T) {
	network := faults.NewNetwork(1)
	db := openTest(t, testConfig(t, 3), withSenderMiddleware(network.Middleware()))
	defer db.Close()
	ctx := ctxT(t)
	if err := db.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	l := waitLeader(t, db)
	to := followerOf(l)
	third := followerOf(l, to)
	waitApplied(t, db) // so that l sends TimeoutNow at once
	// l still sends (its TimeoutNow reaches to) but hears nothing back.
	network.Cut(to, l)
	network.Cut(third, l)
	start := time.Now()
	res, err := db.sys.Root.RequestFuture(db.route.pid(l), &raftpb.TransferRequest{ClusterId: db.cfg.ClusterID, To: to}, 10*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	r := res.(*raftpb.TransferResponse)
	if r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED || (r.GetLeaderId() != 0 && r.GetLeaderId() != l) {
		t.Fatalf("transfer by a leader that hears nothing answered %v (leader %d, %q); want TRANSFER_FAILED naming itself or no leader", r.GetErrorCode(), r.GetLeaderId(), r.GetMessage())
	}
	t.Logf("the cut-off leader answered: %s", r.GetMessage())
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("it answered after %v; want about three election timeouts (300 ms)", waited)
	}
	if s := statusOf(t, db, to); s.Role != "leader" {
		t.Errorf("node %d is %s; the transfer should have made it leader, unseen by node %d", to, s.Role, l)
	}
	network.Heal()

	// Stopped mid-transfer: now the target is cut off, so the transfer
	// runs until the node stops. The old leader may still think it leads
	// until it hears node `to`'s term.
	l = waitAgreedLeader(t, db)
	to = followerOf(l)
	network.Isolate(to, 1, 2, 3)
	f := db.sys.Root.RequestFuture(db.route.pid(l), &raftpb.TransferRequest{ClusterId: db.cfg.ClusterID, To: to}, 10*time.Second)
	// A stop overtakes queued requests; once a status request sent after
	// the transfer is answered, the transfer has begun.
	if _, err := db.sys.Root.RequestFuture(db.route.pid(l), &raftpb.StatusRequest{}, 10*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	if err := db.stopNode(l); err != nil {
		t.Fatal(err)
	}
	res, err = f.Result()
	if err != nil {
		t.Fatal(err)
	}
	if r := res.(*raftpb.TransferResponse); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED || r.GetLeaderId() != 0 {
		t.Fatalf("transfer by a stopping leader answered %v (leader %d, %q); want TRANSFER_FAILED", r.GetErrorCode(), r.GetLeaderId(), r.GetMessage())
	}
}

// electionsOnly, armed for a node, drops every Raft message to it but
// votes and pre-votes and their answers: it can lose an election, but
// never hears who won.
type electionsOnly struct{ node atomic.Uint64 }

func (e *electionsOnly) middleware() actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			if m, ok := env.Message.(*raftpb.RaftEnvelope); ok && target.Id == actors.NodeName(e.node.Load()) {
				switch m.GetMsg().GetType() {
				case raftpb.MessageType_MESSAGE_TYPE_VOTE, raftpb.MessageType_MESSAGE_TYPE_VOTE_RESP,
					raftpb.MessageType_MESSAGE_TYPE_PRE_VOTE, raftpb.MessageType_MESSAGE_TYPE_PRE_VOTE_RESP:
				default:
					return
				}
			}
			next(c, target, env)
		}
	}
}

// An old leader that steps down for its transferee's election but never
// hears from the new leader gives up after transferWaitTimeouts election
// timeouts, naming no leader, and does not hang.
func TestTransferLeadershipNoLeaderHeard(t *testing.T) {
	deaf := &electionsOnly{}
	db := openTest(t, testConfig(t, 3), withSenderMiddleware(deaf.middleware()))
	defer db.Close()
	ctx := ctxT(t)
	if err := db.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	l := waitLeader(t, db)
	to := followerOf(l)
	// Caught up, so that l sends TimeoutNow at once rather than wait for
	// an acknowledgement it would not hear.
	waitApplied(t, db)
	deaf.node.Store(l)
	start := time.Now()
	res, err := db.sys.Root.RequestFuture(db.route.pid(l), &raftpb.TransferRequest{ClusterId: db.cfg.ClusterID, To: to}, 10*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	r := res.(*raftpb.TransferResponse)
	if r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TRANSFER_FAILED || r.GetLeaderId() != 0 {
		t.Fatalf("answered %v (leader %d, %q); want TRANSFER_FAILED naming no leader", r.GetErrorCode(), r.GetLeaderId(), r.GetMessage())
	}
	// Three election timeouts of 100 ms, counted in ticks.
	if waited < 250*time.Millisecond || waited > 3*time.Second {
		t.Errorf("answered after %v; want about 300 ms", waited)
	}
	if s := statusOf(t, db, to); s.Role != "leader" {
		t.Errorf("node %d is %s; it should have won, unseen by node %d", to, s.Role, l)
	}
	t.Logf("answered after %v: %s", waited, r.GetMessage())
}
