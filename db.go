package raftkv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/config"
	"github.com/raftkv/raftkv/internal/limits"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/metrics"
	"github.com/raftkv/raftkv/nodestatus"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/remote"
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
	// The DB's own job is hosting: starting, restarting and stopping the
	// nodes of this process. Requests go through gw, which routes them
	// with route (shared with the client API, see RegisterClientAPI).
	gw    *gateway
	route *router

	cfg    config.Config
	log    *slog.Logger
	sys    *actor.ActorSystem
	rem    *remote.Remote
	hosted []uint64
	props  map[uint64]*actor.Props
	// stopped[id] is closed when the running incarnation of hosted node id
	// has closed its storage.
	stoppedMu sync.Mutex
	stopped   map[uint64]chan struct{}
	timeout   time.Duration
	// limits are the size limits derived from cfg.MaxValueSize, given to
	// the transport, the nodes and the client API server.
	limits    limits.Limits
	stopLog   func()
	stopWatch func()
	metrics   *metrics.Set

	closeOnce sync.Once
	// lifeMu orders node restarts (after a full disk was freed) with
	// shutdown, so no node starts once shutdown has begun (down).
	lifeMu sync.Mutex
	down   bool
	// done is closed when shutdown begins; background restarters watch it.
	done chan struct{}
	// closing is closed when Close starts, ending every wait in flight.
	closing  chan struct{}
	closeErr error
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
	if err == nil && o.join && len(hosted) != 1 {
		err = fmt.Errorf("%w: WithJoin starts one node joining a running cluster; host exactly one (WithNodes)", ErrInvalidOption)
	}
	if err != nil {
		return nil, err
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	}
	db := &DB{cfg: cfg, log: logger, hosted: hosted, timeout: o.requestTimeout, props: map[uint64]*actor.Props{}, stopped: map[uint64]chan struct{}{}, done: make(chan struct{}), closing: make(chan struct{})}
	if db.timeout == 0 {
		db.timeout = DefaultRequestTimeout
	}
	if o.metrics {
		// The node gauges are read at scrape time, once the DB serves.
		db.metrics = metrics.New(func(ctx context.Context) []nodestatus.Status {
			st, _ := db.gw.status(ctx, db.hosted)
			return st
		})
		o.readIndexLatency = db.metrics.ObserveReadIndex
	}
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
	}
	db.route = &router{sys: db.sys, hosted: db.hosted, clusterID: db.cfg.ClusterID,
		maxValue: db.cfg.MaxValueSize, timeout: db.timeout, closing: db.closing}
	// The configured nodes: the members of a new cluster, and where a
	// running one's members are reached until the nodes learn otherwise.
	table := &routeTable{pids: map[uint64]*actor.PID{}, addrs: map[uint64]nodeAddrs{}}
	var members []kvstate.Member
	for _, s := range db.cfg.Servers() {
		addr := db.cfg.RemoteAddr(s.ID)
		if slices.Contains(db.hosted, s.ID) {
			addr = localAddr
		}
		table.pids[s.ID] = actor.NewPID(addr, actors.NodeName(s.ID))
		table.ids = append(table.ids, s.ID)
		table.addrs[s.ID] = nodeAddrs{peer: db.cfg.RemoteAddr(s.ID), client: clientAddr(s.Address, s.ClientPort)}
		members = append(members, kvstate.Member{ID: s.ID, PeerAddress: db.cfg.RemoteAddr(s.ID), ClientAddress: clientAddr(s.Address, s.ClientPort)})
	}
	db.route.table.Store(table)
	if db.rem != nil {
		db.stopWatch = db.route.watchEndpoints()
	}
	db.gw = newGateway(db.route, db.metrics, db.cfg.MaxValueSize, db.timeout)
	embedded := len(db.hosted) == len(db.cfg.Servers())
	firstStart := false
	if embedded {
		if firstStart, err = db.beginEmbeddedStart(); err != nil {
			return err
		}
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
			ID: id, Peers: table.pids, Members: members, PeerPID: db.peerPID, Join: o.join, OnMembers: db.learnMembers, StrictMembers: embedded, ClusterID: db.cfg.ClusterID, DataDir: db.cfg.DataDir(id),
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
			OnLeader:         db.route.noteLeader,
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
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if firstStart {
		return db.endFirstStart()
	}
	return nil
}

// peerPID is where a node of this process reaches member m: the local
// PID of a node this process hosts (every node, in embedded mode), else
// the node actor at m's peer address.
func (db *DB) peerPID(m kvstate.Member) *actor.PID {
	if slices.Contains(db.hosted, m.ID) {
		return db.route.pid(m.ID)
	}
	return actor.NewPID(m.PeerAddress, actors.NodeName(m.ID))
}

// learnMembers takes the members a hosted node knows of, so that requests
// reach members added at run time (a new leader among them).
func (db *DB) learnMembers(ms []kvstate.Member) {
	for _, m := range ms {
		if m.PeerAddress == "" && !slices.Contains(db.hosted, m.ID) {
			continue
		}
		db.route.learn(m.ID, db.peerPID(m), nodeAddrs{peer: m.PeerAddress, client: m.ClientAddress})
	}
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

// stopNode stops hosted node id at once, dropping what is queued for it,
// as a crash would (its storage is closed cleanly; tests of torn writes kill
// a whole process instead).
func (db *DB) stopNode(id uint64) error {
	err := db.sys.Root.StopFuture(db.route.pid(id)).Wait()
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
		if db.route == nil {
			break // Open failed before the nodes had addresses
		}
		if pid := db.route.pid(id); pid != nil {
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
func (db *DB) Put(ctx context.Context, key string, value []byte) error {
	return db.gw.write(ctx, kvstate.Command{Op: kvstate.OpPut, Key: key, Value: value})
}

// Update overwrites key only if it exists; otherwise it returns ErrNotFound
// and writes nothing. The existence check is made by the replicated state
// machine, so it is linearizable.
func (db *DB) Update(ctx context.Context, key string, value []byte) error {
	return db.gw.write(ctx, kvstate.Command{Op: kvstate.OpUpdate, Key: key, Value: value})
}

// Remove deletes key; ErrNotFound when it is absent.
func (db *DB) Remove(ctx context.Context, key string) error {
	return db.gw.write(ctx, kvstate.Command{Op: kvstate.OpRemove, Key: key})
}

// Get returns a copy of key's value, or ErrNotFound. Reads are
// linearizable: the leader confirms with a quorum that it still leads.
func (db *DB) Get(ctx context.Context, key string) ([]byte, error) {
	return db.gw.get(ctx, key)
}

// TransferLeadership asks the cluster's leader to hand leadership to node
// to, and returns once the old leader has seen to lead (in a later term).
// With to 0 the leader chooses: of the nodes that answered it within an
// election timeout, the one holding most of its log. It is routed to the
// leader as a write is.
//
// While the transfer runs (at most an election timeout) the leader takes
// no writes; they wait and follow to the new leader. A nil error says the
// old leader saw the target lead; leadership can move again at any time
// after, as after any election. Errors: ErrInvalidTransfer (to is not a
// voting member, or already leads), ErrTransferInProgress (a transfer to
// another node is under way), ErrTransferFailed (no handover seen: see
// it), or, when no leader answered before ctx ended, ErrUnavailable. Ask
// again after a failure only once Status shows who leads: with to 0, a
// second request moves leadership again.
func (db *DB) TransferLeadership(ctx context.Context, to uint64) error {
	return db.gw.transfer(ctx, to)
}
