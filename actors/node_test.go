package actors

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// testNode is one node actor in a local actor system.
type testNode struct {
	t       *testing.T
	sys     *actor.ActorSystem
	cfg     NodeConfig
	pid     *actor.PID
	started chan error
	// stopped is closed once the node actor has handled Stopped, which is
	// when it closes its storage.
	stopped chan struct{}
}

// nodeConfig is node 1 of a cluster of the given members (1 if none),
// keeping its data in dir.
func nodeConfig(sys *actor.ActorSystem, dir string, members ...uint64) NodeConfig {
	if len(members) == 0 {
		members = []uint64{1}
	}
	peers := map[uint64]*actor.PID{}
	for _, id := range members {
		peers[id] = actor.NewPID(sys.Address(), NodeName(id))
	}
	return NodeConfig{
		ID: 1, Peers: peers, ClusterID: testCluster, DataDir: dir,
		TickInterval: 5 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1,
		SnapshotEntries: 10000, SnapshotBytes: 64 << 20, // config's defaults
		Logger: quietLogger(),
	}
}

// startNode spawns a node actor with cfg (its OnStart reports to the
// returned node's started channel) and stops it at the end of the test.
func startNode(t *testing.T, sys *actor.ActorSystem, cfg NodeConfig) *testNode {
	t.Helper()
	n := &testNode{t: t, sys: sys, cfg: cfg, started: make(chan error, 16), stopped: make(chan struct{})}
	n.cfg.OnStart = func(err error) { n.started <- err }
	props, err := NewNodeProps(n.cfg)
	if err != nil {
		t.Fatalf("NewNodeProps: %v", err)
	}
	// protoactor removes a stopping actor's PID before it delivers Stopped,
	// so neither a dead letter nor a StopFuture on a PID already gone says
	// that the node has closed its storage; watching Stopped does.
	var once sync.Once
	props.Configure(actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			next(c, env)
			if _, ok := env.Message.(*actor.Stopped); ok {
				once.Do(func() { close(n.stopped) })
			}
		}
	}))
	if n.pid, err = sys.Root.SpawnNamed(props, NodeName(cfg.ID)); err != nil {
		t.Fatalf("spawn node: %v", err)
	}
	t.Cleanup(func() { _ = sys.Root.StopFuture(n.pid).Wait() })
	return n
}

// startLeader starts node 1 alone on a fresh directory and waits until it
// leads.
func startLeader(t *testing.T, sys *actor.ActorSystem) *testNode {
	t.Helper()
	n := startNode(t, sys, nodeConfig(sys, t.TempDir()))
	if err := n.startErr(); err != nil {
		t.Fatalf("OnStart: %v", err)
	}
	n.waitLeader()
	return n
}

// startErr waits for the node's OnStart.
func (n *testNode) startErr() error {
	n.t.Helper()
	select {
	case err := <-n.started:
		return err
	case <-time.After(waitTimeout):
		n.t.Fatal("the node never reported its start")
		return nil
	}
}

func (n *testNode) request(msg any) any {
	n.t.Helper()
	res, err := n.sys.Root.RequestFuture(n.pid, msg, waitTimeout).Result()
	if err != nil {
		n.t.Fatalf("request %T: %v", msg, err)
	}
	return res
}

func (n *testNode) status() *raftpb.StatusResponse {
	n.t.Helper()
	return n.request(&raftpb.StatusRequest{}).(*raftpb.StatusResponse)
}

// waitLeader waits until the (single) node has elected itself.
func (n *testNode) waitLeader() {
	n.t.Helper()
	eventually(n.t, "node 1 to lead", func() bool { return n.status().GetRole() == raftlogic.Leader.String() })
}

func (n *testNode) propose(c kvstate.Command) *raftpb.ProposeResponse {
	n.t.Helper()
	return n.request(&raftpb.ProposeRequest{ClusterId: testCluster, Payload: c.Encode()}).(*raftpb.ProposeResponse)
}

func (n *testNode) mustPropose(c kvstate.Command) *raftpb.ProposeResponse {
	n.t.Helper()
	r := n.propose(c)
	if r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
		n.t.Fatalf("propose %v %q: %v", c.Op, c.Key, r)
	}
	return r
}

func (n *testNode) get(key string) *raftpb.GetResponse {
	n.t.Helper()
	return n.request(&raftpb.GetRequest{ClusterId: testCluster, Key: key}).(*raftpb.GetResponse)
}

func (n *testNode) mustGet(key, want string) {
	n.t.Helper()
	r := n.get(key)
	if r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK || string(r.GetValue()) != want {
		n.t.Fatalf("get %q: %v, want %q", key, r, want)
	}
}

// waitStopped waits until the node actor has stopped of its own accord and
// closed its storage.
func (n *testNode) waitStopped() {
	n.t.Helper()
	select {
	case <-n.stopped:
	case <-time.After(waitTimeout):
		n.t.Fatal("the node did not stop")
	}
	if _, err := n.sys.Root.RequestFuture(n.pid, &raftpb.StatusRequest{}, waitTimeout).Result(); !errors.Is(err, actor.ErrDeadLetter) {
		n.t.Fatalf("a stopped node answered: %v", err)
	}
}

func TestSingleNodeServesRequests(t *testing.T) {
	sys := newSystem(t)
	n := startLeader(t, sys)

	put := n.mustPropose(putCmd("k", "v1"))
	n.mustGet("k", "v1")
	n.mustPropose(updateCmd("k", "v2"))
	n.mustGet("k", "v2")
	if r := n.propose(updateCmd("absent", "x")); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("update of a missing key: %v, want NOT_FOUND", r)
	}
	if r := n.get("absent"); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("get of a missing key: %v, want NOT_FOUND", r)
	}
	if r := n.propose(kvstate.Command{Op: kvstate.OpRemove, Key: "k"}); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
		t.Fatalf("remove: %v", r)
	}
	if r := n.get("k"); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("get after remove: %v, want NOT_FOUND", r)
	}

	wrong := n.request(&raftpb.ProposeRequest{ClusterId: "another", Payload: putCmd("k", "x").Encode()}).(*raftpb.ProposeResponse)
	if wrong.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_CLUSTER_MISMATCH {
		t.Fatalf("propose to the wrong cluster: %v, want CLUSTER_MISMATCH", wrong)
	}
	wrongGet := n.request(&raftpb.GetRequest{ClusterId: "another", Key: "k"}).(*raftpb.GetResponse)
	if wrongGet.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_CLUSTER_MISMATCH {
		t.Fatalf("get from the wrong cluster: %v, want CLUSTER_MISMATCH", wrongGet)
	}

	st := n.status()
	if st.GetId() != 1 || st.GetRole() != raftlogic.Leader.String() || st.GetLeader() != 1 || st.GetTerm() == 0 ||
		st.GetCommit() < put.GetIndex()+3 || st.GetLastIndex() < st.GetCommit() || st.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
		t.Fatalf("status %v", st)
	}
	// Applied is reported by the apply actor a moment after the answers.
	eventually(t, "status to show the writes applied", func() bool { return n.status().GetApplied() >= put.GetIndex()+3 })
}

// Regression: a request with no sender (a plain Send, e.g. from a foreign
// process over the network) has nobody to answer. The apply actor used to
// panic answering it (ctx.Send to a nil PID); a few of them in a row made
// the node fail-stop.
func TestNodeDropsRequestsWithoutSender(t *testing.T) {
	sys := newSystem(t)
	failures := supervisorEvents(t, sys)
	n := startLeader(t, sys)
	n.mustPropose(putCmd("k", "v"))
	for range 8 {
		sys.Root.Send(n.pid, &raftpb.ProposeRequest{ClusterId: testCluster, Payload: putCmd("k", "unanswerable").Encode()})
		sys.Root.Send(n.pid, &raftpb.GetRequest{ClusterId: testCluster, Key: "k"})
	}
	// Requests with a sender, behind them, still work.
	n.mustPropose(putCmd("k2", "v2"))
	n.mustGet("k2", "v2")
	n.mustGet("k", "v")
	if evs := failures.snapshot(); len(evs) > 0 {
		t.Fatalf("requests without a sender crashed %v", evs[0].(*actor.SupervisorEvent).Child.Id)
	}
}

func TestNodeRestartsFailedChildAndKeepsServing(t *testing.T) {
	sys := newSystem(t)
	failures := supervisorEvents(t, sys)
	n := startLeader(t, sys)
	n.mustPropose(putCmd("k", "v1"))

	// A nil batch makes the apply actor panic: the stand-in for a bug.
	apply := actor.NewPID(sys.Address(), NodeName(1)+"/apply")
	sys.Root.Send(apply, (*applyEntries)(nil))
	ev := expect[*actor.SupervisorEvent](t, failures, nil)
	if ev.Child.Id != apply.Id || ev.Directive != actor.RestartDirective {
		t.Fatalf("supervisor event %+v, want a restart of %s", ev, apply.Id)
	}

	n.mustPropose(putCmd("k", "v2"))
	n.mustGet("k", "v2")
	if st := n.status(); st.GetRole() != raftlogic.Leader.String() {
		t.Fatalf("status after the child's restart: %v", st)
	}
	if len(n.started) != 0 {
		t.Fatal("the node itself restarted; only its child should have")
	}
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines logged so far that contain substr.
func (l *lockedBuffer) lines(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

// A panic in a child is logged once, at WARN, naming the node and the child
// (its path, n<id>/<child>) and what was done about it: by
// remote.WatchFailures, which the DB installs on the node's logger, and not
// again by the node's supervision.
func TestChildFailureLoggedOnce(t *testing.T) {
	sys := newSystem(t)
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(remote.WatchFailures(sys, logger))
	// Subscribed after WatchFailures: an event recorded here is logged.
	failures := supervisorEvents(t, sys)
	cfg := nodeConfig(sys, t.TempDir())
	cfg.Logger = logger
	n := startNode(t, sys, cfg)
	if err := n.startErr(); err != nil {
		t.Fatal(err)
	}
	n.waitLeader()

	apply := actor.NewPID(sys.Address(), NodeName(1)+"/apply")
	sys.Root.Send(apply, (*applyEntries)(nil)) // panics: nil pointer dereference
	expect[*actor.SupervisorEvent](t, failures, nil)
	n.mustPropose(putCmd("k", "v")) // the restarted child serves

	got := buf.lines("nil pointer dereference")
	if len(got) != 1 {
		t.Fatalf("the child's panic was logged %d times, want once:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, want := range []string{"level=WARN", NodeName(1) + "/apply", "directive=RestartDirective"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("the failure's log line lacks %q: %s", want, got[0])
		}
	}
}

// A child that keeps failing is stopped by the strategy, and the node
// fail-stops after it; its data is intact for the next start.
func TestNodeStopsWhenChildKeepsFailing(t *testing.T) {
	sys := newSystem(t)
	dir := t.TempDir()
	n := startNode(t, sys, nodeConfig(sys, dir))
	if err := n.startErr(); err != nil {
		t.Fatal(err)
	}
	n.waitLeader()
	n.mustPropose(putCmd("k", "kept"))

	apply := actor.NewPID(sys.Address(), NodeName(1)+"/apply")
	for range 10 {
		sys.Root.Send(apply, (*applyEntries)(nil))
	}
	n.waitStopped()

	again := startNode(t, sys, nodeConfig(sys, dir))
	if err := again.startErr(); err != nil {
		t.Fatalf("restart on the same data: %v", err)
	}
	again.waitLeader()
	again.mustGet("k", "kept")
}

func TestNodeFailStop(t *testing.T) {
	sys := newSystem(t)
	n := startLeader(t, sys)
	// What the apply actor sends on a storage error.
	sys.Root.Send(n.pid, &failStop{err: errors.New("disk on fire")})
	n.waitStopped()
}

func TestNodeStorageFailureAtStart(t *testing.T) {
	sys := newSystem(t)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, sys, nodeConfig(sys, file))
	if err := n.startErr(); err == nil {
		t.Fatal("OnStart reported no error for a data dir that is a file")
	}
	n.waitStopped()
}

// A restart follows the configuration in the node's data, not the member
// list it is given (config.yaml's list only bootstraps a new cluster), and
// says so in its log.
func TestNodeFollowsItsDataNotTheConfiguredMembers(t *testing.T) {
	sys := newSystem(t)
	dir := t.TempDir()
	first := startNode(t, sys, nodeConfig(sys, dir))
	if err := first.startErr(); err != nil {
		t.Fatal(err)
	}
	first.waitLeader()
	first.mustPropose(putCmd("k", "v"))
	if err := sys.Root.StopFuture(first.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	<-first.stopped

	// The same node and data, configured as one of a two-node cluster.
	// Obeying the file, it could not lead alone (node 2 does not exist).
	cfg := nodeConfig(sys, dir, 1, 2)
	logs := &lockedBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := startNode(t, sys, cfg)
	if err := n.startErr(); err != nil {
		t.Fatalf("restart with another member list: %v", err)
	}
	n.waitLeader()
	n.mustGet("k", "v")
	if len(logs.lines("configured members differ")) == 0 {
		t.Fatal("no warning about the configured members")
	}
}

// The operator's settings come from package config: a node given none
// refuses to start, naming config's key, instead of inventing a default.
func TestNewNodePropsTakesConfigValues(t *testing.T) {
	sys := newSystem(t)
	for key, mutate := range map[string]func(*NodeConfig){
		"snapshotEntries": func(c *NodeConfig) { c.SnapshotEntries = 0 },
		"snapshotBytes":   func(c *NodeConfig) { c.SnapshotBytes = 0 },
	} {
		cfg := nodeConfig(sys, t.TempDir())
		mutate(&cfg)
		if _, err := NewNodeProps(cfg); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s zero: NewNodeProps = %v, want an error naming %s", key, err, key)
		}
	}
}

func TestNewNodePropsValidates(t *testing.T) {
	sys := newSystem(t)
	for name, mutate := range map[string]func(*NodeConfig){
		"zero id":       func(c *NodeConfig) { c.ID = 0 },
		"no tick":       func(c *NodeConfig) { c.TickInterval = 0 },
		"no data dir":   func(c *NodeConfig) { c.DataDir = "" },
		"negative tick": func(c *NodeConfig) { c.TickInterval = -time.Second },
	} {
		cfg := nodeConfig(sys, t.TempDir())
		mutate(&cfg)
		if _, err := NewNodeProps(cfg); err == nil {
			t.Errorf("%s: NewNodeProps accepted it", name)
		}
	}
}

// The node holds committed entries back while the apply actor works on a
// batch (one state commit covers them all). If the apply actor fails on a
// batch and is restarted, that batch is gone with it: the node must not
// wait for it to finish, or nothing would ever be applied again.
func TestNodeKeepsApplyingAfterApplyLosesABatch(t *testing.T) {
	sys := newSystem(t)
	cfg := nodeConfig(sys, t.TempDir())
	var armed atomic.Bool
	cfg.hooks = &testHooks{beforeApply: func([]raftlogic.Entry) {
		if armed.CompareAndSwap(true, false) {
			panic("planted: apply fails on this batch")
		}
	}}
	n := startNode(t, sys, cfg)
	if err := n.startErr(); err != nil {
		t.Fatal(err)
	}
	n.waitLeader()
	n.mustPropose(putCmd("k", "v1"))
	armed.Store(true)
	// The batch holding this write is lost with the failed apply actor; its
	// waiter is told the outcome is unknown.
	if r := n.propose(putCmd("k", "v2")); r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_TIMEOUT {
		t.Fatalf("write in the lost batch: %v, want TIMEOUT (outcome unknown)", r)
	}
	n.mustPropose(putCmd("k2", "v3"))
	// The lost batch was committed, so it is applied after all (fetched
	// from the log with the next one).
	n.mustGet("k", "v2")
	n.mustGet("k2", "v3")
}
