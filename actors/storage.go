package actors

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// nodeStorage is a node's open storage: its two Badger databases, the Raft
// log kept in the first (persist) and the state machine kept in the second
// (kvstate).
type nodeStorage struct {
	logDB, stateDB *badger.DB
	logStore       *persist.LogStore
	sm             *kvstate.State
}

// openNodeStorage opens the storage of the node cfg describes and recovers
// the state Raft starts from. In order:
//
//   - The data directory must belong to this node of this cluster (identity
//     file; a new directory gets one) and not have an earlier version's
//     layout.
//   - The disk must have room beyond the reserve: opening Badger writes (it
//     replays and creates memtable files), so a full disk is refused here
//     rather than discovered by a SIGBUS.
//   - Both databases are opened, the state machine and the log loaded.
//   - On the first start of a new cluster the configured members are
//     recorded (the log's configuration, the state machine's member
//     table); a joining node records nothing. Later starts follow the
//     data, whatever the configuration file says, except that a first
//     start cut between its two records gets its member table.
//   - The state machine's applied index is its durable one (nothing is
//     pending in a State just opened).
//   - The state machine may be ahead of the log: a crash between installing
//     a received snapshot (state machine first) and recording it in the log
//     leaves it so. Its applied index then becomes the log's snapshot, and
//     Raft starts from there; the state machine is never behind the log's
//     snapshot.
//
// On error nothing stays open. The InitialState's Applied is the state
// machine's applied index.
func openNodeStorage(cfg NodeConfig, l *slog.Logger) (*nodeStorage, raftlogic.InitialState, error) {
	if err := checkIdentity(cfg.DataDir, cfg.ClusterID, cfg.ID); err != nil {
		return nil, raftlogic.InitialState{}, err
	}
	if err := persist.CheckSpace(cfg.DataDir, cfg.DiskReserve, 0); err != nil {
		return nil, raftlogic.InitialState{}, err
	}
	s := &nodeStorage{}
	st, err := s.open(cfg, l)
	if err != nil {
		s.close(l)
		return nil, raftlogic.InitialState{}, err
	}
	return s, st, nil
}

// open opens the databases into s and recovers the InitialState; the
// caller closes s on error.
func (s *nodeStorage) open(cfg NodeConfig, l *slog.Logger) (raftlogic.InitialState, error) {
	var st raftlogic.InitialState
	dbOpts := append([]persist.Option{persist.WithLogger(l),
		persist.WithLargestValue(cfg.MaxStoredEntry)},
		cfg.StorageOptions...)
	var err error
	if s.logDB, err = persist.OpenDB(persist.LogDir(cfg.DataDir), dbOpts...); err != nil {
		return st, err
	}
	if s.stateDB, err = persist.OpenDB(persist.StateDir(cfg.DataDir), dbOpts...); err != nil {
		return st, err
	}
	s.logStore = persist.NewLogStore(s.logDB, persist.WithLogger(l), persist.WithDiskReserve(cfg.DiskReserve))
	if s.sm, err = kvstate.Open(s.stateDB, kvstate.Options{SessionTTL: cfg.SessionTTL}); err != nil {
		return st, err
	}
	if st, err = s.logStore.Load(); err != nil {
		return st, err
	}
	switch {
	case !isNew(st):
		// The configuration comes from the data (the snapshot and the
		// log), not from the file; the node reports a file that disagrees
		// (nodeActor.open).
		if err := s.finishFirstStart(cfg, st); err != nil {
			return st, err
		}
	case cfg.Join || joining(cfg.DataDir):
		// A joining node records nothing: the cluster's snapshot or log
		// brings its configuration and its member table. It marks its
		// directory, so that a restart without --join before it was
		// added still waits instead of starting a cluster of its own.
		if err := markJoining(cfg.DataDir); err != nil {
			return st, err
		}
	case cfg.Peers[cfg.ID] == nil:
		return st, fmt.Errorf("%w: node %d has no data and is not among the configured members %v: to add it to a running cluster, start it as a joining node", ErrNotMember, cfg.ID, bootstrapVoters(cfg))
	default:
		// First start of a new cluster: record the members config.yaml
		// lists, which every bootstrap member records the same.
		st.Snapshot.ConfState = raftlogic.ConfState{Voters: bootstrapVoters(cfg)}
		if err := s.logStore.SaveSnapshotMeta(st.Snapshot); err != nil {
			return st, err
		}
		if err := s.sm.InitMembers(bootstrapMembers(cfg)); err != nil {
			return st, err
		}
	}
	// The state machine ahead of the log: past its end, or at an index the
	// log holds with another term (the image came from a history that
	// replaced this node's).
	applied, appliedTerm := s.sm.Applied()
	last := st.Snapshot.Index + uint64(len(st.Entries))
	if applied > last || (applied > st.Snapshot.Index && !containsEntry(st, applied, appliedTerm)) {
		// The state's own configuration is as of applied (empty on data
		// from before it kept one, where membership never changed).
		conf, err := s.sm.Conf()
		if err != nil {
			return st, err
		}
		if len(conf.Voters) == 0 {
			conf = st.Snapshot.ConfState
		}
		meta := raftlogic.SnapshotMeta{Index: applied, Term: appliedTerm, ConfState: conf}
		if err := s.logStore.Save(raftlogic.HardState{}, nil, meta); err != nil {
			return st, err
		}
		st.Snapshot, st.Entries = meta, nil
		st.HardState.Commit = max(st.HardState.Commit, applied)
		st.HardState.Term = max(st.HardState.Term, appliedTerm)
	}
	st.Applied = applied
	return st, nil
}

// finishFirstStart completes a first start that was cut between its two
// records: the configuration went to the log (SaveSnapshotMeta) but the
// crash came before the member table reached the state machine, which is
// another database. Without this the node would run with no member table
// for good (later starts take the data as it is), and its replicated state
// would differ from its peers'. It records config.yaml's members only when
// they are the configuration the node recorded (a bootstrap configuration,
// at index 0); InitMembers itself changes nothing once a table is recorded
// or an entry applied, so on every other start this writes nothing.
func (s *nodeStorage) finishFirstStart(cfg NodeConfig, st raftlogic.InitialState) error {
	cs := st.Snapshot.ConfState
	if cfg.Join || st.Snapshot.Index != 0 || len(cs.VotersOutgoing) > 0 || len(cs.Learners) > 0 ||
		!slices.Equal(cs.Voters, bootstrapVoters(cfg)) {
		return nil
	}
	return s.sm.InitMembers(bootstrapMembers(cfg))
}

// joiningFile marks the data directory of a node that started as a
// joining node; it matters only while the node has no configuration yet.
const joiningFile = "JOINING"

func joining(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, joiningFile))
	return err == nil
}

func markJoining(dir string) error {
	if joining(dir) {
		return nil
	}
	if err := persist.WriteFileAtomic(filepath.Join(dir, joiningFile), []byte("started with --join; waits to be added\n")); err != nil {
		return fmt.Errorf("actors: mark the data directory as joining: %w", err)
	}
	return nil
}

// isNew reports whether st is the storage of a node that has never held a
// configuration or an entry.
func isNew(st raftlogic.InitialState) bool {
	cs := st.Snapshot.ConfState
	return st.Snapshot.Index == 0 && len(st.Entries) == 0 &&
		len(cs.Voters) == 0 && len(cs.VotersOutgoing) == 0 && len(cs.Learners) == 0
}

// bootstrapVoters are the ids of the configured members, sorted.
func bootstrapVoters(cfg NodeConfig) []uint64 {
	return slices.Sorted(maps.Keys(cfg.Peers))
}

// bootstrapMembers are the configured members with their addresses.
func bootstrapMembers(cfg NodeConfig) []kvstate.Member {
	if len(cfg.Members) > 0 {
		return cfg.Members
	}
	ms := make([]kvstate.Member, 0, len(cfg.Peers))
	for _, id := range bootstrapVoters(cfg) {
		ms = append(ms, kvstate.Member{ID: id, PeerAddress: cfg.Peers[id].Address})
	}
	return ms
}

// containsEntry reports whether the stored log holds entry (index, term).
func containsEntry(st raftlogic.InitialState, index, term uint64) bool {
	i := index - st.Snapshot.Index - 1
	return i < uint64(len(st.Entries)) && st.Entries[i].Term == term
}

// close closes whatever of s is open; s may be nil. It first commits the
// state machine's pending transaction (applied entries not yet committed:
// see kvstate.State.Apply), so that a clean stop leaves nothing to apply
// again at the next start; the apply actor commits when it stops, so this
// is for the paths that close storage without it (a failed start, a
// restart of the node actor).
func (s *nodeStorage) close(l *slog.Logger) {
	if s == nil {
		return
	}
	if s.sm != nil && s.stateDB != nil {
		if err := s.sm.Flush(); err != nil {
			l.Error("commit applied entries", "err", err)
		}
	}
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

// heldStorage is a node's storage across incarnations of its actor. A
// restarted actor (after a panic in the node itself) gets no Stopped, so
// the storage its previous incarnation opened is still open: the new
// incarnation closes it before opening again (its children, which used
// it, are gone by then).
type heldStorage struct {
	cur *nodeStorage
}

// release closes the storage held, if any.
func (h *heldStorage) release(l *slog.Logger) {
	h.cur.close(l)
	h.cur = nil
}
