package actors

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// nodeActor is one Raft node: the supervisor that owns the raftlogic.Node
// and its storage, and the children that carry time (election), the network
// (one replication actor per peer) and the state machine (apply). Its
// lifecycle (starting, running, installing, stopping) is in lifecycle.go.
type nodeActor struct {
	cfg NodeConfig
	log *slog.Logger
	// behavior is the node's current state (lifecycle.go).
	behavior actor.Behavior

	// held keeps storage across incarnations of this actor; storage is
	// what this incarnation opened.
	held    *heldStorage
	storage *nodeStorage
	raft    *raftlogic.Node
	// pool runs the mailboxes of this node and its children (dispatch.go);
	// it outlives restarts of this actor, like held.
	pool *goroutinePool

	election *actor.PID
	writer   *actor.PID
	apply    *actor.PID
	gc       *actor.PID
	receiver *actor.PID
	// links has how to reach each member but this node: its node actor,
	// and the replication actor that streams snapshots to it (members.go,
	// peers.go); book is where each member is reached.
	links         peerLinks
	replicatorGen uint64
	book          map[uint64]kvstate.Member
	// retired are children the node stopped on purpose, by PID id.
	retired map[string]bool

	role         raftlogic.Role
	lead         uint64
	flushPending bool
	// Counters for monitoring, since this incarnation started.
	leaderChanges, proposals uint64
	// handedHS is the hard state last handed to the log writer; a change
	// of commit index alone is not written. pending is the batch waiting
	// for the write in flight (writing counts those sent to the writer);
	// see logwriter.go.
	handedHS raftlogic.HardState
	pending  *logWrite
	writing  int
	// applyQueue holds committed entries waiting for the apply actor to
	// finish the batch it has (up to applySent); see queueApply.
	applyQueue []raftlogic.Entry
	applySent  uint64
	// reads waiting for raftlogic's ReadIndex, by read id (nextReadID).
	reads      map[uint64]pendingGet
	nextReadID uint64
	// snapDir holds snapshot images being sent and received.
	snapDir string
	// image is the path of the received image stepped into Raft and not
	// yet installed or turned down ("" when none); install is the Ready
	// whose snapshot the apply actor is installing, in the installing
	// state (see install.go).
	image      string
	install    *pendingInstall
	installGen uint64
	// applied is how far the state machine has applied (from the apply
	// actor), durable how far its applied state is committed: the log is
	// compacted only behind durable, since a crash loses the rest.
	// sizes follows where the log now starts and what it weighs.
	applied, durable uint64
	sizes            logSizes
	// failure is why the node stopped itself (fail), for OnStopped.
	failure error
	// handover is the leadership transfer in flight, and acks what peers
	// last acknowledged to this node as leader (transfer.go).
	handover *pendingTransfer
	acks     map[uint64]peerAck
}

type pendingGet struct {
	key     string
	replyTo *actor.PID
	asked   time.Time
}

// NewNodeProps returns the props of a node actor. Spawn it under the name
// NodeName(cfg.ID) at the address its peers know.
func NewNodeProps(cfg NodeConfig) (*actor.Props, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pool := newGoroutinePool()
	opts := []actor.PropsOption{actor.WithSupervisor(childStrategy()), actor.WithDispatcher(pool)}
	if len(cfg.SenderMiddleware) > 0 {
		opts = append(opts, actor.WithSenderMiddleware(cfg.SenderMiddleware...))
	}
	held := &heldStorage{}
	return actor.PropsFromProducer(func() actor.Actor {
		n := &nodeActor{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), held: held, pool: pool, behavior: actor.NewBehavior()}
		n.behavior.Become(n.starting)
		return n
	}, opts...), nil
}

// childStrategy restarts a failed child (a panic in a child is a bug, and a
// fresh instance rebuilds its state from storage); a child failing over and
// over is stopped, and the node then stops too. It logs nothing itself:
// protoactor publishes each failure once, as an actor.SupervisorEvent
// naming the child by its path (n<id>/<child>) and what was done about it
// (restart, or stop), and remote.WatchFailures logs those; a line here too
// would log every child panic twice, and the decider cannot name the child
// or know whether the child is restarted or stopped.
func childStrategy() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(5, 10*time.Second, actor.DefaultDecider)
}

// Receive hands the message to the node's current state (lifecycle.go).
func (n *nodeActor) Receive(ctx actor.Context) { n.behavior.Receive(ctx) }

// scheduleFlush asks for the Ready to be handled once the messages already
// queued are in (group commit).
func (n *nodeActor) scheduleFlush(ctx actor.Context) {
	if !n.flushPending && n.raft.HasReady() {
		n.flushPending = true
		ctx.Send(ctx.Self(), &flushReady{})
	}
}

// start opens storage, rebuilds the Raft node from it and spawns the
// children. It runs again after a restart, so it must not assume a fresh
// process.
func (n *nodeActor) start(ctx actor.Context) error {
	err := n.open()
	if err == nil {
		n.snapDir, err = prepareSnapshotDir(n.cfg.DataDir)
	}
	if n.cfg.OnStart != nil {
		n.cfg.OnStart(err)
	}
	if err != nil {
		return err
	}
	n.reads = map[uint64]pendingGet{}
	n.links = peerLinks{}
	s := n.storage
	n.writer = n.spawn(ctx, "log-writer", func() actor.Actor { return &logWriter{store: s.logStore, clusterID: n.cfg.ClusterID} })
	n.election = n.spawn(ctx, "election", func() actor.Actor { return &electionActor{interval: n.cfg.TickInterval} })
	n.apply = n.spawn(ctx, "apply", func() actor.Actor {
		return &applyActor{sm: s.sm, logStore: s.logStore, log: n.log, hooks: n.cfg.hooks,
			stateDir: persist.StateDir(n.cfg.DataDir), diskReserve: n.cfg.DiskReserve}
	})
	n.gc = n.spawn(ctx, "gc", func() actor.Actor {
		return &gcActor{log: n.log, collectors: map[string]*persist.Collector{
			"log":   persist.NewCollector(s.logDB, s.logStore.PauseWrites),
			"state": persist.NewCollector(s.stateDB, s.sm.PauseWrites),
		}}
	})
	n.receiver = n.spawn(ctx, "snapshot-recv", func() actor.Actor {
		return &snapshotReceiver{dir: n.snapDir, idle: n.cfg.SnapshotIdleTimeout, log: n.log, reserve: n.cfg.DiskReserve}
	})
	n.syncReplicators(ctx, n.raft.Status().Conf)
	n.log.Debug("node started", "term", n.raft.Status().Term, "applied", n.applied, "last_index", n.raft.Status().LastIndex)
	return nil
}

// replicatorFor is the producer of the replication actor for member id,
// whose node actor answers at peer.
func (n *nodeActor) replicatorFor(id uint64, peer *actor.PID) actor.Producer {
	s := n.storage
	return func() actor.Actor {
		return &replicationActor{self: n.cfg.ID, peer: id, peerPID: peer, clusterID: n.cfg.ClusterID, sm: s.sm,
			dir: n.snapDir, chunkSize: n.cfg.SnapshotChunkSize, log: n.log, reserve: n.cfg.DiskReserve}
	}
}

func (n *nodeActor) spawn(ctx actor.Context, name string, producer actor.Producer) *actor.PID {
	opts := []actor.PropsOption{actor.WithDispatcher(n.pool)}
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

// open opens the node's storage (see openNodeStorage) and rebuilds its
// Raft node from what it recovered.
func (n *nodeActor) open() error {
	// A previous incarnation's storage, if this actor restarted.
	n.held.release(n.log)
	s, st, err := openNodeStorage(n.cfg, n.log)
	if err != nil {
		return err
	}
	n.held.cur, n.storage = s, s
	// Nothing is pending in a state machine just opened.
	n.applied, n.durable = st.Applied, st.Applied
	n.sizes.reset(st.Snapshot.Index, st.Entries)
	n.handedHS = st.HardState
	n.pending, n.writing = nil, 0
	n.applyQueue, n.applySent = nil, 0
	n.raft, err = raftlogic.NewNode(raftlogic.Config{
		ID: n.cfg.ID, ElectionTick: n.cfg.ElectionTicks, HeartbeatTick: n.cfg.HeartbeatTicks,
		PreVote: true, CheckQuorum: true, AsyncStorageWrites: true, Seed: uint64(time.Now().UnixNano()),
		MaxBytesPerMsg: n.cfg.MaxBytesPerMsg, MaxEntriesPerMsg: n.cfg.MaxEntriesPerMsg,
	}, st)
	if err != nil {
		return err
	}
	if err := n.loadBook(st.Entries); err != nil {
		return err
	}
	return n.checkConfigDrift()
}

// checkConfigDrift reports when the configured members are not the
// configuration the node's data holds: after membership changes
// config.yaml's list is history, and the data wins (it is what the
// cluster agreed on; obeying the file could split the cluster). With
// StrictMembers it refuses to start instead.
func (n *nodeActor) checkConfigDrift() error {
	if n.cfg.Join {
		return nil
	}
	conf := n.raft.Status().Conf.IDs()
	file := bootstrapVoters(n.cfg)
	if len(conf) == 0 || slices.Equal(file, conf) {
		return nil
	}
	if n.cfg.StrictMembers {
		return fmt.Errorf("%w: %s holds a node of cluster members %v, the configuration says %v; change the members with the membership commands (raftkv member ...), not the configuration",
			ErrWrongCluster, n.cfg.DataDir, conf, file)
	}
	n.log.Warn("the configured members differ from this node's data; following the data",
		"configured", file, "data", conf)
	return nil
}

// step feeds a message from a peer to Raft. Traffic from another cluster
// and malformed messages are dropped with a log line: never trust the wire.
func (n *nodeActor) step(ctx actor.Context, env *raftpb.RaftEnvelope) {
	m, err := remote.OpenEnvelope(n.cfg.ClusterID, env)
	if err == nil {
		err = n.raft.Step(m)
	}
	if err != nil {
		n.log.Warn("dropped a peer message", "err", err)
		return
	}
	n.noteAck(m)
	n.scheduleFlush(ctx)
}

// handleReady does what raftlogic asks, in the order its Ready requires.
func (n *nodeActor) handleReady(ctx actor.Context) {
	if !n.raft.HasReady() {
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
	// Before anything is sent: a configuration entry in this Ready may add
	// a member that its messages go to.
	n.learnMembers(rd.Entries)
	if rd.ConfState != nil {
		n.syncReplicators(ctx, *rd.ConfState)
	}
	n.reachAll(ctx, rd.Messages)
	// A leader sends its appends while its log writer writes its own copy
	// (Raft thesis 10.2.1): it counts itself toward commit only once the
	// writer reports the copy durable (StableTo).
	early, late := rd.SplitMessages()
	n.send(ctx, early)
	// Committed entries are already durable here; applying them does not
	// wait for this Ready's write.
	n.queueApply(ctx, rd.CommittedEntries)
	// After the entries committed while it led, so their waiters hear
	// their real outcome first.
	if steppedDown {
		n.toApply(ctx, &leadershipLost{leader: n.lead})
	}
	if !rd.Snapshot.IsEmpty() {
		// The rest of this Ready waits until the state machine holds the
		// snapshot; the node keeps taking input meanwhile.
		n.beginInstall(ctx, rd, late)
		return
	}
	n.finishReady(ctx, rd, late)
}

// finishReady hands rd's log changes to the log writer, answers its reads
// and advances raftlogic. A snapshot in rd is already installed; its Ready
// is advanced only once the log records it (writeSnapshot).
func (n *nodeActor) finishReady(ctx actor.Context, rd raftlogic.Ready, late []raftlogic.Message) {
	if !rd.Snapshot.IsEmpty() {
		n.writeSnapshot(ctx, rd, late)
		return
	}
	n.queueWrite(ctx, rd, late)
	n.advance(ctx, rd)
}

// advance answers rd's reads and tells raftlogic that rd was handled.
func (n *nodeActor) advance(ctx actor.Context, rd raftlogic.Ready) {
	for _, rs := range rd.ReadStates {
		n.readReady(ctx, rs)
	}
	n.raft.Advance(rd)
	n.scheduleFlush(ctx)
}

// queueWrite adds rd's log changes and the messages waiting on them to the
// next batch for the log writer, and sends it if none is being written.
// Messages with nothing to wait for go out at once.
func (n *nodeActor) queueWrite(ctx actor.Context, rd raftlogic.Ready, late []raftlogic.Message) {
	hs := raftlogic.HardState{}
	if rd.MustSync(n.handedHS) && !rd.HardState.IsEmpty() {
		hs = rd.HardState
		n.handedHS = hs
	}
	n.sizes.append(rd.Entries)
	if hs.IsEmpty() && len(rd.Entries) == 0 && n.writing == 0 && n.pending == nil {
		n.send(ctx, late)
		return
	}
	if n.pending == nil {
		n.pending = &logWrite{}
	}
	n.pending.merge(hs, rd.Entries, late)
	if n.writing == 0 {
		n.dispatchWrite(ctx)
	}
}

// dispatchWrite sends the pending batch, if any, to the log writer.
func (n *nodeActor) dispatchWrite(ctx actor.Context) {
	w := n.pending
	if w == nil {
		return
	}
	n.pending = nil
	if w.empty() {
		return
	}
	w.sendTo = n.links
	n.writing++
	ctx.Send(n.writer, w)
}

// writeSnapshot records an installed snapshot in the log, after every
// batch handed out before it; the node stays parked in its installing state
// until the write is durable (snapshotWritten).
func (n *nodeActor) writeSnapshot(ctx actor.Context, rd raftlogic.Ready, late []raftlogic.Message) {
	n.dispatchWrite(ctx)
	hs := raftlogic.HardState{}
	if !rd.HardState.IsEmpty() {
		hs = rd.HardState
		n.handedHS = hs
	}
	n.sizes.reset(rd.Snapshot.Meta.Index, nil)
	n.sizes.append(rd.Entries)
	n.writing++
	ctx.Send(n.writer, &logWrite{hs: hs, entries: rd.Entries, snap: rd.Snapshot.Meta, late: late, sendTo: n.links})
}

// logWritten takes the writer's report of a batch: its entries are durable,
// so raftlogic may count them (a leader toward commit) and apply them.
func (n *nodeActor) logWritten(ctx actor.Context, msg *logWritten) {
	if msg.store != n.storage.logStore {
		return
	}
	n.writing--
	if msg.err != nil {
		n.fail(ctx, msg.err)
		return
	}
	if msg.index > 0 {
		n.raft.StableTo(msg.index, msg.term)
	}
	if msg.snap {
		n.snapshotWritten(ctx)
	}
	if n.writing == 0 {
		n.dispatchWrite(ctx)
	}
	n.scheduleFlush(ctx)
}

// queueApply hands committed entries to the apply actor, or, while it is
// still applying the previous batch, holds them for the next one: one
// Apply then covers every Ready that arrived meanwhile, as the log writer's
// batches do. (The state machine commits on its own timer, not per batch:
// see applyActor.)
func (n *nodeActor) queueApply(ctx actor.Context, ents []raftlogic.Entry) {
	n.applyQueue = append(n.applyQueue, ents...)
	if n.applied >= n.applySent {
		n.flushApply(ctx)
	}
}

// flushApply sends the held entries to the apply actor.
func (n *nodeActor) flushApply(ctx actor.Context) {
	if len(n.applyQueue) == 0 {
		return
	}
	ents := n.applyQueue
	n.applyQueue = nil
	n.applySent = ents[len(ents)-1].Index
	ctx.Send(n.apply, &applyEntries{entries: ents})
}

// toApply sends the apply actor a message that must follow the entries
// committed before it (a step-down, a snapshot install).
func (n *nodeActor) toApply(ctx actor.Context, msg any) {
	n.flushApply(ctx)
	ctx.Send(n.apply, msg)
}

// appliedUpTo takes the apply actor's progress: the log may be compacted
// behind its durable index, and held entries go to it as the next batch
// once it has applied (not necessarily committed) the last.
func (n *nodeActor) appliedUpTo(ctx actor.Context, msg *appliedUpTo) {
	n.applied = max(n.applied, msg.index)
	n.durable = max(n.durable, msg.durable)
	if n.applied >= n.applySent {
		n.flushApply(ctx)
	}
}

// applyStarted: a restarted apply actor lost the batch it failed on, so
// nothing counts as in flight any more (it fetches what it misses from the
// log when the next batch comes).
func (n *nodeActor) applyStarted(ctx actor.Context, msg *applyStarted) {
	n.applied = msg.applied
	n.applySent = 0
	n.flushApply(ctx)
}

func (n *nodeActor) send(ctx actor.Context, msgs []raftlogic.Message) {
	n.links.send(ctx, n.cfg.ClusterID, msgs)
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
	n.checkTransfer(ctx)
}
