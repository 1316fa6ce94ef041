package actors

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// These tests run openNodeStorage, the recovery a node does when it
// starts, on real Badger databases: one test per case it must recover
// from or refuse.

// storageConfig is node 1 of a cluster of members, keeping its data in
// dir; no actor system is needed, only the members' ids.
func storageConfig(dir string, members ...uint64) NodeConfig {
	peers := map[uint64]*actor.PID{}
	for _, id := range members {
		peers[id] = actor.NewPID("nonhost", NodeName(id))
	}
	cfg := NodeConfig{ID: 1, Peers: peers, ClusterID: testCluster, DataDir: dir, TickInterval: 1, Logger: quietLogger(),
		SnapshotEntries: 10000, SnapshotBytes: 64 << 20}
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return cfg
}

// mustOpenStorage opens the storage of cfg and closes it at the end of the
// test (or earlier, with the returned function).
func mustOpenStorage(t *testing.T, cfg NodeConfig) (*nodeStorage, raftlogic.InitialState, func()) {
	t.Helper()
	s, st, err := openNodeStorage(cfg, quietLogger())
	if err != nil {
		t.Fatalf("openNodeStorage: %v", err)
	}
	closed := false
	done := func() {
		if !closed {
			closed = true
			s.close(quietLogger())
		}
	}
	t.Cleanup(done)
	return s, st, done
}

// storedLog reads the Raft log kept in dir as it is on disk, without the
// recovery openNodeStorage does.
func storedLog(t *testing.T, dir string) raftlogic.InitialState {
	t.Helper()
	db, err := persist.OpenDB(persist.LogDir(dir), persist.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := persist.NewLogStore(db, persist.WithLogger(quietLogger())).Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestOpenNodeStorageFreshDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1") // not there yet
	cfg := storageConfig(dir, 3, 1, 2)
	_, st, done := mustOpenStorage(t, cfg)
	want := raftlogic.InitialState{Snapshot: raftlogic.SnapshotMeta{ConfState: raftlogic.ConfState{Voters: []uint64{1, 2, 3}}}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("fresh state %+v, want %+v", st, want)
	}
	if got, err := os.ReadFile(filepath.Join(dir, identityFile)); err != nil || string(got) != "cluster="+testCluster+"\nnode=1\n" {
		t.Fatalf("identity file: %q, %v", got, err)
	}
	done()

	// The membership was recorded, not only returned.
	if got := storedLog(t, dir).Snapshot; !reflect.DeepEqual(got, want.Snapshot) {
		t.Fatalf("the log holds snapshot %+v, want %+v", got, want.Snapshot)
	}
	_, again, _ := mustOpenStorage(t, cfg)
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("after a restart %+v, want %+v", again, want)
	}
}

func TestOpenNodeStorageRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := storageConfig(dir, 1, 2, 3)
	s, _, done := mustOpenStorage(t, cfg)
	ents := []raftlogic.Entry{
		cmdEntry(1, 1, putCmd("a", "1")), cmdEntry(2, 1, putCmd("b", "2")), cmdEntry(3, 2, putCmd("c", "3")),
	}
	hs := raftlogic.HardState{Term: 2, Vote: 1, Commit: 3}
	if err := s.logStore.Save(hs, ents, raftlogic.SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.sm.Apply(ents[:2], nil); err != nil {
		t.Fatal(err)
	}
	done()

	s, st, _ := mustOpenStorage(t, cfg)
	if st.HardState != hs || st.Applied != 2 || st.Snapshot.Index != 0 || !reflect.DeepEqual(st.Snapshot.ConfState.Voters, []uint64{1, 2, 3}) {
		t.Fatalf("after a restart: hard state %+v, applied %d, snapshot %+v", st.HardState, st.Applied, st.Snapshot)
	}
	if !reflect.DeepEqual(st.Entries, ents) {
		t.Fatalf("after a restart the log holds %+v, want %+v", st.Entries, ents)
	}
	mustGet(t, s.sm, "b", "2")
}

// A node's first start writes its identity file, then the configuration
// (the log), then the member table (the state machine, another database).
// A crash after either of the first two leaves a node that has data but an
// unfinished first start; its next start completes it, so that its member
// table is its peers'.
func TestOpenNodeStorageFinishesCutFirstStart(t *testing.T) {
	voters := raftlogic.ConfState{Voters: []uint64{1, 2, 3}}
	for _, c := range []struct {
		name    string
		written func(t *testing.T, cfg NodeConfig) // what reached the disk before the cut
	}{
		{"identity only", func(t *testing.T, cfg NodeConfig) {
			if err := checkIdentity(cfg.DataDir, cfg.ClusterID, cfg.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{"configuration without member table", func(t *testing.T, cfg NodeConfig) {
			if err := checkIdentity(cfg.DataDir, cfg.ClusterID, cfg.ID); err != nil {
				t.Fatal(err)
			}
			db, err := persist.OpenDB(persist.LogDir(cfg.DataDir), persist.WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ls := persist.NewLogStore(db)
			if _, err := ls.Load(); err != nil {
				t.Fatal(err)
			}
			if err := ls.SaveSnapshotMeta(raftlogic.SnapshotMeta{ConfState: voters}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node1")
			cfg := storageConfig(dir, 1, 2, 3)
			c.written(t, cfg)
			s, st, _ := mustOpenStorage(t, cfg)
			if !reflect.DeepEqual(st.Snapshot.ConfState, voters) {
				t.Fatalf("configuration %+v, want %+v", st.Snapshot.ConfState, voters)
			}
			ms, err := s.sm.Members()
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint64
			for _, m := range ms {
				ids = append(ids, m.ID)
			}
			if !reflect.DeepEqual(ids, voters.Voters) {
				t.Fatalf("member table holds %v, want the configured members %v", ids, voters.Voters)
			}
			if conf, err := s.sm.Conf(); err != nil || !reflect.DeepEqual(conf, voters) {
				t.Fatalf("state machine configuration %+v (%v), want %+v", conf, err, voters)
			}
		})
	}
}

// A node installs a received snapshot into its state machine before it
// records the snapshot in its log (install.go). A crash in between leaves
// the state machine ahead of the log; the next start makes the state
// machine's applied index the log's snapshot.
func TestOpenNodeStorageStateAheadOfLog(t *testing.T) {
	image := newTestImage(t, 20, 10, 3) // index 20, term 3
	for _, c := range []struct {
		name string
		log  []raftlogic.Entry // what the log holds when the crash hits
	}{
		{"image past the log's end", []raftlogic.Entry{cmdEntry(1, 1, putCmd("old", "1")), cmdEntry(2, 1, putCmd("old", "2"))}},
		// The log reaches the image's index, but with another term there:
		// the image comes from a history that replaced this node's.
		{"image inside the log, another term", func() []raftlogic.Entry {
			var ents []raftlogic.Entry
			for i := uint64(1); i <= 25; i++ {
				ents = append(ents, cmdEntry(i, 1, putCmd("old", "x")))
			}
			return ents
		}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := storageConfig(dir, 1, 2, 3)
			s, _, done := mustOpenStorage(t, cfg)
			if err := s.logStore.Save(raftlogic.HardState{Term: 1, Vote: 2, Commit: 2}, c.log, raftlogic.SnapshotMeta{}); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(image.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, _, err := s.sm.Restore(f); err != nil {
				t.Fatal(err)
			}
			done() // the crash: the log never recorded the snapshot

			want := raftlogic.SnapshotMeta{Index: 20, Term: 3, ConfState: raftlogic.ConfState{Voters: []uint64{1, 2, 3}}}
			s, st, done := mustOpenStorage(t, cfg)
			if !reflect.DeepEqual(st.Snapshot, want) || len(st.Entries) != 0 || st.Applied != 20 {
				t.Fatalf("recovered snapshot %+v, %d entries, applied %d; want snapshot %+v, no entries, applied 20",
					st.Snapshot, len(st.Entries), st.Applied, want)
			}
			// Raft must not start behind what the state machine holds.
			if st.HardState.Commit < 20 || st.HardState.Term < 3 {
				t.Fatalf("recovered hard state %+v, want commit >= 20 and term >= 3", st.HardState)
			}
			mustGet(t, s.sm, "key-00019", "vvvvvvvvvv")
			done()

			// The recovery was written to the log, not only returned.
			if st := storedLog(t, dir); !reflect.DeepEqual(st.Snapshot, want) || len(st.Entries) != 0 {
				t.Fatalf("the log holds snapshot %+v and %d entries; want %+v and none", st.Snapshot, len(st.Entries), want)
			}
		})
	}
}

// A data directory of another node or cluster is refused, and the refusal
// leaves nothing open: the right configuration opens it next. (A different
// member list is not refused: a restart follows the data; see
// TestNodeFollowsItsDataNotTheConfiguredMembers.)
func TestOpenNodeStorageRefusesWrongCluster(t *testing.T) {
	dir := t.TempDir()
	cfg := storageConfig(dir, 1, 2, 3)
	_, _, done := mustOpenStorage(t, cfg)
	done()

	otherNode := cfg
	otherNode.ID = 2
	otherCluster := cfg
	otherCluster.ClusterID = "another"
	for name, c := range map[string]NodeConfig{
		"another node":    otherNode,
		"another cluster": otherCluster,
	} {
		if s, _, err := openNodeStorage(c, quietLogger()); !errors.Is(err, ErrWrongCluster) {
			if s != nil {
				s.close(quietLogger())
			}
			t.Fatalf("%s: openNodeStorage = %v, want ErrWrongCluster", name, err)
		}
		_, _, done := mustOpenStorage(t, cfg)
		done()
	}
}

func TestOpenNodeStorageRefusesOldLayout(t *testing.T) {
	dir := t.TempDir()
	cfg := storageConfig(dir, 1)
	_, _, done := mustOpenStorage(t, cfg)
	done()
	// Earlier versions kept one Badger database at the top of the directory.
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, _, err := openNodeStorage(cfg, quietLogger()); !errors.Is(err, persist.ErrOldLayout) {
		s.close(quietLogger())
		t.Fatalf("openNodeStorage = %v, want persist.ErrOldLayout", err)
	}
}

// Opening Badger writes, so a disk below the reserve is refused before
// either database is touched.
func TestOpenNodeStorageRefusesDiskBelowReserve(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1")
	cfg := storageConfig(dir, 1)
	cfg.DiskReserve = 1 << 62 // more than any disk has free
	if s, _, err := openNodeStorage(cfg, quietLogger()); !errors.Is(err, persist.ErrDiskFull) {
		s.close(quietLogger())
		t.Fatalf("openNodeStorage = %v, want persist.ErrDiskFull", err)
	}
	for _, d := range []string{persist.LogDir(dir), persist.StateDir(dir)} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists after the refusal (%v): Badger was opened on a full disk", d, err)
		}
	}
}
