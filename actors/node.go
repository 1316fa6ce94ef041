package actors

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// nodeActor is one Raft node: the supervisor that owns the raftlogic.Node
// and its storage, and the children that carry time (election), the network
// (one replication actor per peer) and the state machine (apply).
type nodeActor struct {
	cfg NodeConfig
	log *slog.Logger

	raft     *raftlogic.Node
	storage  *nodeStorage
	logStore *persist.LogStore
	sm       *kvstate.State

	election    *actor.PID
	apply       *actor.PID
	gc          *actor.PID
	receiver    *actor.PID
	replicators map[uint64]*actor.PID

	role         raftlogic.Role
	lead         uint64
	flushPending bool
	// Counters for monitoring, since this incarnation started.
	leaderChanges, proposals uint64
	// persisted is the hard state last written; a change of commit index
	// alone is not written.
	persisted raftlogic.HardState
	// reads waiting for raftlogic's ReadIndex, by request id.
	reads      map[uint64]pendingGet
	nextReadID uint64
	// snapDir holds snapshot images being sent and received.
	snapDir string
	// image is the path of the received image stepped into Raft and not
	// yet installed or turned down ("" when none); installing is the Ready
	// whose snapshot the apply actor is installing (see install.go).
	image      string
	installing *pendingInstall
	installGen uint64
	// applied is how far the state machine has applied (from the apply
	// actor); sizes follows where the log now starts and what it weighs.
	applied uint64
	sizes   logSizes
	stopped bool
	// failure is why the node stopped itself (fail), for OnStopped.
	failure error
}

type pendingGet struct {
	key       string
	requestID uint64
	replyTo   *actor.PID
	asked     time.Time
}

// NewNodeProps returns the props of a node actor. Spawn it under the name
// NodeName(cfg.ID) at the address its peers know.
func NewNodeProps(cfg NodeConfig) (*actor.Props, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts := []actor.PropsOption{actor.WithSupervisor(childStrategy(cfg.Logger))}
	if len(cfg.SenderMiddleware) > 0 {
		opts = append(opts, actor.WithSenderMiddleware(cfg.SenderMiddleware...))
	}
	// The storage handle outlives one incarnation of the actor: after a
	// restart the new instance closes the old handle before reopening.
	storage := &nodeStorage{}
	return actor.PropsFromProducer(func() actor.Actor {
		return &nodeActor{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), storage: storage}
	}, opts...), nil
}

// childStrategy restarts a failed child (a panic in a child is a bug, and a
// fresh instance rebuilds its state from storage); a child failing over and
// over is stopped, and the node then stops too.
func childStrategy(l *slog.Logger) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(5, 10*time.Second, func(reason any) actor.Directive {
		l.Warn("node child failed; restarting it", "reason", fmt.Sprint(reason))
		return actor.RestartDirective
	})
}

func (n *nodeActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		n.start(ctx)
	case *actor.Stopping, *actor.Restarting:
		// Stop taking input; the children are stopped next, and storage
		// is closed only once they are gone (Stopped, or the next
		// incarnation's Started), since apply may still be writing.
		n.raft = nil
		n.stopped = true
		n.stopInstall()
	case *actor.Stopped:
		n.storage.close(n.log)
		if n.cfg.OnStopped != nil {
			n.cfg.OnStopped(n.failure)
		}
	case *actor.Terminated:
		n.childTerminated(ctx, msg)
	case *tick:
		n.whenRunning(ctx, n.raft.Tick)
	case *flushReady:
		n.flushPending = false
		n.handleReady(ctx)
	case *raftpb.RaftEnvelope:
		n.step(ctx, msg)
	case *raftpb.SnapshotChunk:
		n.receiveChunk(ctx, msg)
	case *imageReceived:
		n.imageReceived(ctx, msg)
	case *installProgress:
		n.installProgressed(msg)
	case *installCheck:
		n.checkInstall(ctx, msg.gen)
	case *snapshotInstalled:
		n.snapshotInstalled(ctx, msg)
	case *snapshotDone:
		n.whenRunning(ctx, func() { n.raft.ReportSnapshot(msg.peer, msg.ok) })
	case *raftpb.ProposeRequest:
		n.propose(ctx, msg)
	case *raftpb.GetRequest:
		n.get(ctx, msg)
	case *raftpb.StatusRequest:
		n.status(ctx, msg)
	case *raftpb.TransferRequest:
		n.transfer(ctx, msg)
	case *appliedUpTo:
		n.applied = max(n.applied, msg.index)
		n.maybeCompact(ctx)
	case *failStop:
		n.fail(ctx, msg.err)
	case *actor.DeadLetterResponse:
		// A peer or client went away; Raft retries on its own.
	}
}

// whenRunning runs an input to raftlogic and schedules handling its Ready.
func (n *nodeActor) whenRunning(ctx actor.Context, input func()) {
	if n.raft == nil {
		return
	}
	input()
	n.scheduleFlush(ctx)
}

func (n *nodeActor) scheduleFlush(ctx actor.Context) {
	// While a snapshot installs, its Ready is not advanced: the next Ready
	// waits (see install.go).
	if !n.flushPending && n.installing == nil && n.raft.HasReady() {
		n.flushPending = true
		ctx.Send(ctx.Self(), &flushReady{})
	}
}

// start opens storage, rebuilds the Raft node from it and spawns the
// children. It runs again after a restart, so it must not assume a fresh
// process.
func (n *nodeActor) start(ctx actor.Context) {
	err := n.open()
	if err == nil {
		n.snapDir, err = prepareSnapshotDir(n.cfg.DataDir)
	}
	if n.cfg.OnStart != nil {
		n.cfg.OnStart(err)
	}
	if err != nil {
		n.raft = nil
		n.fail(ctx, err)
		return
	}
	n.reads = map[uint64]pendingGet{}
	n.replicators = map[uint64]*actor.PID{}
	n.election = n.spawn(ctx, "election", func() actor.Actor { return &electionActor{interval: n.cfg.TickInterval} })
	n.apply = n.spawn(ctx, "apply", func() actor.Actor {
		return &applyActor{sm: n.sm, logStore: n.logStore, log: n.log, hooks: n.cfg.hooks,
			stateDir: persist.StateDir(n.cfg.DataDir), diskReserve: n.cfg.DiskReserve}
	})
	n.gc = n.spawn(ctx, "gc", func() actor.Actor {
		return &gcActor{log: n.log, collectors: map[string]*persist.Collector{
			"log":   persist.NewCollector(n.storage.logDB, n.logStore.PauseWrites),
			"state": persist.NewCollector(n.storage.stateDB, n.sm.PauseWrites),
		}}
	})
	n.receiver = n.spawn(ctx, "snapshot-recv", func() actor.Actor {
		return &snapshotReceiver{dir: n.snapDir, idle: n.cfg.SnapshotIdleTimeout, log: n.log, reserve: n.cfg.DiskReserve}
	})
	for id, pid := range n.cfg.Peers {
		if id == n.cfg.ID {
			continue
		}
		n.replicators[id] = n.spawn(ctx, fmt.Sprintf("replicate-%d", id), func() actor.Actor {
			return &replicationActor{self: n.cfg.ID, peer: id, peerPID: pid, clusterID: n.cfg.ClusterID, sm: n.sm, dir: n.snapDir, chunkSize: n.cfg.SnapshotChunkSize, log: n.log, reserve: n.cfg.DiskReserve}
		})
	}
	n.log.Debug("node started", "term", n.raft.Status().Term, "applied", n.applied, "last_index", n.raft.Status().LastIndex)
}

func (n *nodeActor) spawn(ctx actor.Context, name string, producer actor.Producer) *actor.PID {
	var opts []actor.PropsOption
	if len(n.cfg.SenderMiddleware) > 0 {
		opts = append(opts, actor.WithSenderMiddleware(n.cfg.SenderMiddleware...))
	}
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(producer, opts...), name)
	if err != nil {
		// After a restart of this node the old children are gone, so a
		// taken name is a bug; keep going with the existing child.
		n.log.Error("spawn child", "child", name, "err", err)
	}
	return pid
}

// open loads the node's durable state. The state machine may be ahead of
// the log when a crash hit between installing a received snapshot and
// recording it in the log: its applied index then becomes the snapshot.
func (n *nodeActor) open() error {
	n.storage.close(n.log)
	if err := checkIdentity(n.cfg.DataDir, n.cfg.ClusterID, n.cfg.ID); err != nil {
		return err
	}
	// Opening Badger writes (it replays and creates memtable files), so a
	// full disk is refused before it, not discovered by a SIGBUS.
	if err := persist.CheckSpace(n.cfg.DataDir, n.cfg.DiskReserve, 0); err != nil {
		return err
	}
	dbOpts := append([]persist.Option{persist.WithLogger(n.log),
		persist.WithLargestValue(n.cfg.MaxStoredEntry)},
		n.cfg.StorageOptions...)
	logDB, err := persist.OpenDB(persist.LogDir(n.cfg.DataDir), dbOpts...)
	if err != nil {
		return err
	}
	n.storage.logDB = logDB
	stateDB, err := persist.OpenDB(persist.StateDir(n.cfg.DataDir), dbOpts...)
	if err != nil {
		return err
	}
	n.storage.stateDB = stateDB
	n.logStore = persist.NewLogStore(logDB, persist.WithLogger(n.log), persist.WithDiskReserve(n.cfg.DiskReserve))
	if n.sm, err = kvstate.Open(stateDB, kvstate.Options{SessionTTL: n.cfg.SessionTTL}); err != nil {
		return err
	}
	st, err := n.logStore.Load()
	if err != nil {
		return err
	}
	voters := make([]uint64, 0, len(n.cfg.Peers))
	for id := range n.cfg.Peers {
		voters = append(voters, id)
	}
	slices.Sort(voters)
	switch stored := st.Snapshot.ConfState.Voters; {
	case len(stored) == 0:
		// First start: record the membership, so a later start with a
		// different member list is caught instead of splitting the cluster.
		st.Snapshot.ConfState.Voters = voters
		if err := n.logStore.SaveSnapshotMeta(st.Snapshot); err != nil {
			return err
		}
	case !slices.Equal(stored, voters):
		return fmt.Errorf("%w: %s holds a node of cluster members %v, the configuration says %v", ErrWrongCluster, n.cfg.DataDir, stored, voters)
	}
	applied, appliedTerm := n.sm.Applied()
	last := st.Snapshot.Index + uint64(len(st.Entries))
	if applied > last || (applied > st.Snapshot.Index && !containsEntry(st, applied, appliedTerm)) {
		meta := raftlogic.SnapshotMeta{Index: applied, Term: appliedTerm, ConfState: st.Snapshot.ConfState}
		if err := n.logStore.Save(raftlogic.HardState{}, nil, meta); err != nil {
			return err
		}
		st.Snapshot, st.Entries = meta, nil
		st.HardState.Commit = max(st.HardState.Commit, applied)
		st.HardState.Term = max(st.HardState.Term, appliedTerm)
	}
	st.Applied = applied
	n.applied = applied
	n.sizes.reset(st.Snapshot.Index, st.Entries)
	n.persisted = st.HardState
	n.raft, err = raftlogic.NewNode(raftlogic.Config{
		ID: n.cfg.ID, ElectionTick: n.cfg.ElectionTicks, HeartbeatTick: n.cfg.HeartbeatTicks,
		PreVote: true, CheckQuorum: true, Seed: uint64(time.Now().UnixNano()),
		MaxBytesPerMsg: n.cfg.MaxBytesPerMsg, MaxEntriesPerMsg: n.cfg.MaxEntriesPerMsg,
	}, st)
	return err
}

// containsEntry reports whether the stored log holds entry (index, term).
func containsEntry(st raftlogic.InitialState, index, term uint64) bool {
	i := index - st.Snapshot.Index - 1
	return i < uint64(len(st.Entries)) && st.Entries[i].Term == term
}

// nodeStorage holds a node's open databases (log and state machine) across
// restarts of its actor.
type nodeStorage struct {
	logDB, stateDB *badger.DB
}

func (s *nodeStorage) close(l *slog.Logger) {
	for _, db := range []*badger.DB{s.logDB, s.stateDB} {
		if db == nil {
			continue
		}
		if err := db.Close(); err != nil {
			l.Error("close storage", "dir", db.Opts().Dir, "err", err)
		}
	}
	s.logDB, s.stateDB = nil, nil
}

// size returns the bytes of the node's databases: LSM tables and value logs.
func (s *nodeStorage) size() (lsm, vlog uint64) {
	for _, db := range []*badger.DB{s.logDB, s.stateDB} {
		if db == nil {
			continue
		}
		l, v := db.Size()
		lsm += uint64(max(l, 0))
		vlog += uint64(max(v, 0))
	}
	return lsm, vlog
}

// fail stops the node: a storage error means the node can no longer promise
// durability, and serving from a state it cannot trust is worse than being
// down (fail-stop). The rest of the cluster carries on without it.
func (n *nodeActor) fail(ctx actor.Context, err error) {
	if n.stopped {
		return
	}
	n.stopped = true
	n.failure = err
	n.log.Error("node stopping after a fatal error", "err", err)
	ctx.Stop(ctx.Self())
}

func (n *nodeActor) childTerminated(ctx actor.Context, msg *actor.Terminated) {
	if n.stopped || n.raft == nil {
		return
	}
	n.fail(ctx, fmt.Errorf("child %s stopped after repeated failures", msg.Who.Id))
}

// step feeds a message from a peer to Raft. Traffic from another cluster
// and malformed messages are dropped with a log line: never trust the wire.
func (n *nodeActor) step(ctx actor.Context, env *raftpb.RaftEnvelope) {
	if n.raft == nil {
		return
	}
	m, err := remote.OpenEnvelope(n.cfg.ClusterID, env)
	if err == nil {
		err = n.raft.Step(m)
	}
	if err != nil {
		n.log.Warn("dropped a peer message", "err", err)
		return
	}
	n.scheduleFlush(ctx)
}

// handleReady does what raftlogic asks, in the order its Ready requires.
func (n *nodeActor) handleReady(ctx actor.Context) {
	if n.raft == nil || n.installing != nil || !n.raft.HasReady() {
		return
	}
	rd := n.raft.Ready()
	if n.image != "" && string(rd.Snapshot.Data) != n.image {
		// Raft turned the received image down (stale, or its log already
		// held it); a snapshot it takes is in the first Ready after Step.
		n.releaseImage(ctx, n.image)
	}
	steppedDown := false
	if rd.SoftState != nil {
		steppedDown = n.role == raftlogic.Leader && rd.SoftState.Role != raftlogic.Leader
		n.roleChanged(ctx, *rd.SoftState)
	}
	// A leader sends its appends while it writes its own log (Raft thesis
	// 10.2.1): it counts itself toward commit only after Advance.
	early, late := rd.SplitMessages()
	n.send(ctx, early)
	// Committed entries are already durable here; applying them does not
	// wait for this Ready's write.
	if len(rd.CommittedEntries) > 0 {
		ctx.Send(n.apply, &applyEntries{entries: rd.CommittedEntries})
	}
	// After the entries committed while it led, so their waiters hear
	// their real outcome first.
	if steppedDown {
		ctx.Send(n.apply, &leadershipLost{leader: n.lead})
	}
	if !rd.Snapshot.IsEmpty() {
		// The rest of this Ready waits until the state machine holds the
		// snapshot; the node keeps taking input meanwhile.
		n.beginInstall(ctx, rd, late)
		return
	}
	n.finishReady(ctx, rd, late)
}

// finishReady persists rd, sends the messages that depend on it and
// advances raftlogic. A snapshot in rd is already installed.
func (n *nodeActor) finishReady(ctx actor.Context, rd raftlogic.Ready, late []raftlogic.Message) {
	if rd.MustSync(n.persisted) {
		if err := n.logStore.Save(rd.HardState, rd.Entries, rd.Snapshot.Meta); err != nil {
			n.fail(ctx, fmt.Errorf("persist raft log: %w", err))
			return
		}
		if !rd.HardState.IsEmpty() {
			n.persisted = rd.HardState
		}
	}
	if !rd.Snapshot.IsEmpty() {
		n.sizes.reset(rd.Snapshot.Meta.Index, nil)
	}
	n.sizes.append(rd.Entries)
	n.send(ctx, late)
	for _, rs := range rd.ReadStates {
		n.readReady(ctx, rs)
	}
	n.raft.Advance(rd)
	n.scheduleFlush(ctx)
}

func (n *nodeActor) send(ctx actor.Context, msgs []raftlogic.Message) {
	if len(msgs) == 0 {
		return
	}
	// Group per peer, keeping order, so each replication actor gets one
	// message per Ready.
	byPeer := map[uint64][]raftlogic.Message{}
	for _, m := range msgs {
		byPeer[m.To] = append(byPeer[m.To], m)
	}
	for to, ms := range byPeer {
		if pid := n.replicators[to]; pid != nil {
			ctx.Send(pid, &outbound{msgs: ms})
		}
	}
}

func (n *nodeActor) roleChanged(ctx actor.Context, s raftlogic.SoftState) {
	if s.Role != n.role {
		n.log.Info("role changed", "from", n.role, "to", s.Role, "leader", s.Lead, "term", n.raft.Status().Term)
	}
	if s.Lead != n.lead && s.Lead != raftlogic.None {
		n.leaderChanges++
		if n.cfg.OnLeader != nil {
			n.cfg.OnLeader(s.Lead, n.raft.Status().Term)
		}
	}
	n.role, n.lead = s.Role, s.Lead
}
