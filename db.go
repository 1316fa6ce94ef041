package raftkv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/config"
	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/metrics"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/remote"
	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/protobuf/proto"
)

// KV is the key-value interface shared by the embedded database and the
// network client.
type KV interface {
	// Put inserts or overwrites key.
	Put(ctx context.Context, key string, value []byte) error
	// Get returns key's value (linearizable), or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Update overwrites an existing key; ErrNotFound (and nothing written)
	// when it is absent.
	Update(ctx context.Context, key string, value []byte) error
	// Remove deletes key; ErrNotFound when it is absent.
	Remove(ctx context.Context, key string) error
	// Close releases the handle.
	Close() error
}

// DB is a handle to a RaftKV cluster whose nodes (all, or those chosen with
// WithNodes) run in this process. It is safe for concurrent use.
type DB struct {
	cfg    config.Config
	log    *slog.Logger
	sys    *actor.ActorSystem
	rem    *remote.Remote
	pids   map[uint64]*actor.PID
	ids    []uint64
	hosted []uint64
	props  map[uint64]*actor.Props
	// stopped[id] is closed when the running incarnation of hosted node id
	// has closed its storage.
	stoppedMu sync.Mutex
	stopped   map[uint64]chan struct{}
	timeout   time.Duration
	// limits are the size limits derived from cfg.MaxValueSize, given to
	// the transport, the nodes and the client API server.
	limits  limits.Limits
	stopLog func()
	metrics *metrics.Set

	sessions sessionPool
	reqID    atomic.Uint64
	// leader is the node believed to lead; 0 when unknown.
	leader atomic.Uint64
	// next rotates through the nodes while no leader is known.
	next atomic.Uint64

	closeOnce sync.Once
	closed    atomic.Bool
	// lifeMu orders node restarts (after a full disk was freed) with
	// shutdown, so no node starts once shutdown has begun (down).
	lifeMu sync.Mutex
	down   bool
	// done is closed when shutdown begins; background restarters watch it.
	done chan struct{}
	// closing is closed when Close starts, ending every wait in flight.
	closing chan struct{}
	// seenLeader is the newest leader a hosted node learned of (of term
	// seenTerm), and leaderNews counts such news (see noteLeader).
	seenLeader, leaderNews atomic.Uint64
	seenMu                 sync.Mutex
	seenTerm               uint64
	// lostEndpoints records lost connections per remote address
	// (*endpointLoss; see watchEndpoints).
	lostEndpoints sync.Map
	stopWatch     func()
	closeErr      error
}

var _ KV = (*DB)(nil)

// Open starts the nodes this process hosts and returns a handle to the
// cluster. The configuration comes from WithConfig, WithConfigFile, or
// ./config.yaml when it exists, else the built-in defaults.
func Open(opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	cfg, err := loadConfig(o)
	if err != nil {
		return nil, err
	}
	if o.dataDir != "" {
		cfg.PersistPath = o.dataDir
	}
	hosted, err := hostedNodes(cfg, o.nodes)
	if err != nil {
		return nil, err
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	}
	db := &DB{cfg: cfg, log: logger, hosted: hosted, timeout: o.requestTimeout, pids: map[uint64]*actor.PID{}, props: map[uint64]*actor.Props{}, stopped: map[uint64]chan struct{}{}, done: make(chan struct{}), closing: make(chan struct{})}
	if db.timeout == 0 {
		db.timeout = DefaultRequestTimeout
	}
	db.sessions.register = db.registerSession
	var readIndexLatency func(time.Duration)
	if o.metrics {
		db.metrics = metrics.New(db.samples)
		readIndexLatency = db.metrics.ObserveReadIndex
	}
	o.readIndexLatency = readIndexLatency
	if err := db.start(o); err != nil {
		db.shutdown()
		return nil, err
	}
	return db, nil
}

func loadConfig(o options) (config.Config, error) {
	switch {
	case o.config != nil:
		return *o.config, nil
	case o.configFile != "":
		return config.Load(o.configFile)
	}
	cfg, _, err := config.LoadOptional("config.yaml")
	return cfg, err
}

// hostedNodes picks the nodes this process runs. One Remote serves the
// process, at the first hosted node's address, so a subset of a cluster
// spread over processes can only be one node (its peers dial its address).
func hostedNodes(cfg config.Config, want []uint64) ([]uint64, error) {
	var all []uint64
	for _, s := range cfg.Servers() {
		all = append(all, s.ID)
	}
	if len(want) == 0 {
		return all, nil
	}
	for _, id := range want {
		if !slices.Contains(all, id) {
			return nil, fmt.Errorf("%w: node %d is not in the configuration (nodes %v)", ErrInvalidOption, id, all)
		}
	}
	if len(want) > 1 && len(want) < len(all) {
		return nil, fmt.Errorf("%w: a process hosts every node or exactly one, not %v of %v", ErrInvalidOption, want, all)
	}
	return want, nil
}

func (db *DB) start(o options) error {
	var err error
	if db.limits, err = limits.For(db.cfg.MaxValueSize); err != nil {
		return fmt.Errorf("%w: maxValueSize: %w", ErrInvalidOption, err)
	}
	db.sys = actor.NewActorSystem(actor.WithLoggerFactory(remote.NewLoggerFactory(db.log)))
	db.stopLog = remote.WatchFailures(db.sys, db.log)
	// A process that hosts every node needs no network: its nodes are
	// local PIDs. Otherwise one Remote serves the process at its node's
	// configured address, and peers are PIDs at theirs. The node code is
	// the same either way.
	localAddr := db.sys.Address()
	if len(db.hosted) < len(db.cfg.Servers()) {
		first, _ := db.cfg.Server(db.hosted[0])
		rem, err := remote.Start(db.sys, first.Address, first.Port,
			remote.WithMaxMessageSize(db.limits.MaxPeerMessage),
			remote.WithWriterBatchSize(db.limits.PeerWriterBatch),
			remote.WithMaxRecvMsgSize(db.limits.PeerMaxRecvMsgSize))
		if err != nil {
			return fmt.Errorf("raftkv: start node %d: %w", first.ID, err)
		}
		db.rem = rem
		localAddr = rem.Address()
		db.stopWatch = db.watchEndpoints()
	}
	for _, s := range db.cfg.Servers() {
		addr := db.cfg.RemoteAddr(s.ID)
		if slices.Contains(db.hosted, s.ID) {
			addr = localAddr
		}
		db.pids[s.ID] = actor.NewPID(addr, actors.NodeName(s.ID))
		db.ids = append(db.ids, s.ID)
	}
	started := make(chan error, len(db.hosted))
	for _, id := range db.hosted {
		var once sync.Once
		props, err := actors.NewNodeProps(actors.NodeConfig{
			OnStart: func(err error) {
				// Only the first start is Open's business; later restarts
				// are the supervisor's.
				once.Do(func() {
					if err != nil {
						err = fmt.Errorf("raftkv: node %d: %w", id, err)
					}
					started <- err
				})
			},
			ID: id, Peers: db.pids, ClusterID: db.cfg.ClusterID, DataDir: db.cfg.DataDir(id),
			TickInterval: db.cfg.TickInterval, ElectionTicks: db.cfg.ElectionTicks, HeartbeatTicks: db.cfg.HeartbeatTicks,
			SnapshotEntries: uint64(db.cfg.SnapshotEntries), CatchUpEntries: uint64(db.cfg.CatchUp()), Logger: db.log, SenderMiddleware: o.senderMiddleware,
			SessionTTL:        o.sessionTTL,
			StorageOptions:    o.storage,
			MaxStoredEntry:    db.limits.MaxStoredEntry,
			SnapshotBytes:     db.cfg.SnapshotBytes,
			SnapshotChunkSize: db.limits.SnapshotChunkSize,
			MaxBytesPerMsg:    db.limits.MaxBytesPerMsg, MaxEntriesPerMsg: db.limits.MaxEntriesPerMsg,
			ReadIndexLatency: o.readIndexLatency,
			DiskReserve:      db.cfg.DiskReserve,
			OnLeader:         db.noteLeader,
			OnStopped:        func(err error) { db.nodeStopped(id, err) },
		})
		if err != nil {
			return fmt.Errorf("raftkv: node %d: %w", id, err)
		}
		db.props[id] = props
		if err := db.startNode(id); err != nil {
			return err
		}
	}
	var errs []error
	for range db.hosted {
		errs = append(errs, <-started)
	}
	return errors.Join(errs...)
}

// startNode starts hosted node id from its storage.
func (db *DB) startNode(id uint64) error {
	db.stoppedMu.Lock()
	db.stopped[id] = make(chan struct{})
	db.stoppedMu.Unlock()
	if _, err := db.sys.Root.SpawnNamed(db.props[id], actors.NodeName(id)); err != nil {
		return fmt.Errorf("raftkv: spawn node %d: %w", id, err)
	}
	return nil
}

// noteLeader takes the news that leader leads term from a hosted node: the
// freshest knowledge of the leader in this process. Calls are routed there
// at once, and a write waiting at a node of another process that no longer
// leads stops waiting (see replaced). News of an older term than already
// heard (a lagging node) is ignored.
func (db *DB) noteLeader(leader, term uint64) {
	db.seenMu.Lock()
	defer db.seenMu.Unlock()
	if term < db.seenTerm {
		return
	}
	db.seenTerm = term
	db.seenLeader.Store(leader)
	db.leaderNews.Add(1)
	db.leader.Store(leader)
}

// stopNode stops hosted node id at once, dropping what is queued for it,
// as a crash would (its storage is closed cleanly; tests of torn writes kill
// a whole process instead).
func (db *DB) stopNode(id uint64) error {
	err := db.sys.Root.StopFuture(db.pids[id]).Wait()
	db.waitStopped(id)
	return err
}

func (db *DB) nodeStopped(id uint64, err error) {
	db.stoppedMu.Lock()
	if ch := db.stopped[id]; ch != nil {
		close(ch)
		db.stopped[id] = nil
	}
	db.stoppedMu.Unlock()
	if errors.Is(err, persist.ErrDiskFull) {
		go db.restartWhenSpace(id)
	}
}

// diskPoll is how often a node stopped by a full disk checks for space.
const diskPoll = time.Second

// restartWhenSpace starts node id again once its data directory's
// filesystem has a quarter more than the reserve free (so that a node does
// not flap at the limit). The node then catches up from its peers like any
// restarted node. Only a full disk is retried this way: other storage
// errors need a person to look.
func (db *DB) restartWhenSpace(id uint64) {
	dir := db.cfg.DataDir(id)
	want := db.cfg.DiskReserve + db.cfg.DiskReserve/4
	t := time.NewTicker(diskPoll)
	defer t.Stop()
	for {
		select {
		case <-db.done:
			return
		case <-t.C:
		}
		if persist.CheckSpace(dir, want, 0) != nil {
			continue
		}
		db.lifeMu.Lock()
		defer db.lifeMu.Unlock()
		if db.down {
			return
		}
		if err := db.startNode(id); err != nil {
			db.log.Error("restart node after disk space was freed", "node", id, "err", err)
			return
		}
		db.log.Warn("node restarted: disk space was freed", "node", id, "dir", dir)
		return
	}
}

// waitStopped waits until node id has closed its storage. A stop request
// can return before that when the node had already begun stopping on its
// own (a failed start, fail-stop), and reopening its directory then would
// find it locked.
func (db *DB) waitStopped(id uint64) {
	db.stoppedMu.Lock()
	ch := db.stopped[id]
	db.stoppedMu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		db.log.Error("node did not close its storage in time", "node", id)
	}
}

// Close stops the hosted nodes, flushing their storage, and releases the
// handle. Calls in flight return at once with ErrClosed; a write among them
// that had been sent also matches ErrOutcomeUnknown: it may have been
// applied, or may still be (by a node of another process, or by these
// nodes when they next open).
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		close(db.closing)
		db.closeErr = db.shutdown()
	})
	return db.closeErr
}

func (db *DB) shutdown() error {
	db.lifeMu.Lock()
	defer db.lifeMu.Unlock()
	if db.down {
		return nil
	}
	db.down = true
	close(db.done)
	if db.sys == nil {
		return nil
	}
	for _, id := range db.hosted {
		if pid := db.pids[id]; pid != nil {
			// Poison lets queued messages finish; the node closes its
			// storage as it stops.
			if err := db.sys.Root.PoisonFuture(pid).Wait(); err != nil {
				db.log.Debug("stop node", "node", id, "err", err)
			}
			db.waitStopped(id)
		}
	}
	var err error
	if db.rem != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = db.rem.Stop(ctx)
		cancel()
	}
	if db.stopLog != nil {
		db.stopLog()
	}
	if db.stopWatch != nil {
		db.stopWatch()
	}
	db.sys.Shutdown()
	return err
}

// Put inserts or overwrites key.
func (db *DB) Put(ctx context.Context, key string, value []byte) (err error) {
	defer db.observe("put", time.Now(), &err)
	return db.write(ctx, kvstate.Command{Op: kvstate.OpPut, Key: key, Value: value})
}

// Update overwrites key only if it exists; otherwise it returns ErrNotFound
// and writes nothing. The existence check is made by the replicated state
// machine, so it is linearizable.
func (db *DB) Update(ctx context.Context, key string, value []byte) (err error) {
	defer db.observe("update", time.Now(), &err)
	return db.write(ctx, kvstate.Command{Op: kvstate.OpUpdate, Key: key, Value: value})
}

// Remove deletes key; ErrNotFound when it is absent.
func (db *DB) Remove(ctx context.Context, key string) (err error) {
	defer db.observe("remove", time.Now(), &err)
	return db.write(ctx, kvstate.Command{Op: kvstate.OpRemove, Key: key})
}

// Get returns a copy of key's value, or ErrNotFound. Reads are
// linearizable: the leader confirms with a quorum that it still leads.
func (db *DB) Get(ctx context.Context, key string) (_ []byte, err error) {
	defer db.observe("get", time.Now(), &err)
	if err := kvstate.ValidateKV(key, nil, db.cfg.MaxValueSize); err != nil {
		return nil, err
	}
	res, _, err := db.call(ctx, false, func(uint64) proto.Message {
		return &raftpb.GetRequest{ClusterId: db.cfg.ClusterID, Key: key}
	})
	if err != nil {
		return nil, err
	}
	r := res.(*raftpb.GetResponse)
	if err := codeError(r.GetErrorCode(), r.GetMessage()); err != nil {
		return nil, err
	}
	return r.GetValue(), nil
}

// write proposes a command under a session of this DB and waits for its
// result. Every copy carries the same client id and sequence number, so the
// state machine applies the command at most once however often it is
// resent (see sessionPool.write).
func (db *DB) write(ctx context.Context, cmd kvstate.Command) error {
	if err := kvstate.ValidateKV(cmd.Key, cmd.Value, db.cfg.MaxValueSize); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx, db.timeout)
	defer cancel()
	return db.sessions.write(ctx, func(ctx context.Context, clientID, seq uint64) (bool, error) {
		cmd.ClientID, cmd.Seq = clientID, seq
		return db.propose(ctx, cmd)
	})
}

// propose sends a command with the session it carries, re-sending the same
// bytes until the cluster answers, for at most maxWriteRetry, and waits for
// its answer. final reports whether the cluster gave one; err is then the
// command's outcome, marked ErrOutcomeUnknown when it is ErrSessionExpired
// and an earlier copy may have run. Without a final answer, err says why
// none came (no quorum in time, closed), marked ErrOutcomeUnknown when a
// copy may have been proposed.
func (db *DB) propose(ctx context.Context, cmd kvstate.Command) (final bool, err error) {
	if cmd.ClientID == 0 {
		// Every copy re-sent below would run again: refuse, never guess.
		return false, fmt.Errorf("raftkv: a write needs a client session (client id 0)")
	}
	ctx, cancel := bounded(ctx, db.timeout)
	defer cancel()
	ctx, cancelRetry := context.WithTimeout(ctx, maxWriteRetry)
	defer cancelRetry()
	payload := cmd.Encode()
	res, sent, err := db.call(ctx, true, func(uint64) proto.Message {
		return &raftpb.ProposeRequest{ClusterId: db.cfg.ClusterID, Payload: payload}
	})
	if err != nil {
		if sent {
			err = outcomeUnknown(err)
		}
		return false, err
	}
	r := res.(*raftpb.ProposeResponse)
	err = codeError(r.GetErrorCode(), r.GetMessage())
	if sent && errors.Is(err, ErrSessionExpired) {
		err = outcomeUnknown(err)
	}
	return true, err
}

// registerSession registers a new client session through the log and
// returns its id (the index of the registering entry). A registration that
// fails or whose answer is lost leaves at most an unused session behind,
// which expires; the write that needed it was not sent.
func (db *DB) registerSession(ctx context.Context) (uint64, error) {
	payload := kvstate.Command{Op: kvstate.OpRegister}.Encode()
	res, _, err := db.call(ctx, true, func(uint64) proto.Message {
		return &raftpb.ProposeRequest{ClusterId: db.cfg.ClusterID, Payload: payload}
	})
	if err != nil {
		return 0, err
	}
	r := res.(*raftpb.ProposeResponse)
	if err := codeError(r.GetErrorCode(), r.GetMessage()); err != nil {
		return 0, fmt.Errorf("raftkv: registering a client session: %w", err)
	}
	if r.GetIndex() == 0 {
		return 0, fmt.Errorf("raftkv: registering a client session: the leader answered no index")
	}
	return r.GetIndex(), nil
}

// codeError turns a final answer into the API's error.
func codeError(code raftpb.ErrorCode, msg string) error {
	switch code {
	case raftpb.ErrorCode_ERROR_CODE_OK:
		return nil
	case raftpb.ErrorCode_ERROR_CODE_NOT_FOUND:
		return ErrNotFound
	case raftpb.ErrorCode_ERROR_CODE_STALE_REQUEST:
		return fmt.Errorf("%w: %s", ErrStaleRequest, msg)
	case raftpb.ErrorCode_ERROR_CODE_SESSION_EXPIRED:
		return fmt.Errorf("%w: %s", ErrSessionExpired, msg)
	}
	return fmt.Errorf("raftkv: %s: %s", code, msg)
}
