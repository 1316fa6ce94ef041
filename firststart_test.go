package raftkv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/actors"
	"github.com/raftkv/raftkv/config"
)

// interruptFirstStart makes the cluster's first Open stop with only the
// nodes outside blocked having started, the state a crash or power cut
// between the nodes' first starts leaves: a stray file in a blocked node's
// empty directory makes that node refuse it before writing anything
// (actors.checkIdentity), while the others write their identity, the
// configuration and the member table as on any first start. The stray
// files are removed again before it returns.
func interruptFirstStart(t *testing.T, cfg config.Config, blocked ...uint64) {
	t.Helper()
	var strays []string
	for _, id := range blocked {
		dir := cfg.DataDir(id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stray := filepath.Join(dir, "stray")
		if err := os.WriteFile(stray, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		strays = append(strays, stray)
	}
	if db, err := Open(WithConfig(cfg), WithLogger(testLogger())); err == nil {
		db.Close()
		t.Fatal("the first Open succeeded with nodes blocked")
	}
	for _, s := range strays {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range cfg.Servers() {
		has, err := actors.HasData(cfg.DataDir(id.ID))
		if err != nil {
			t.Fatal(err)
		}
		if want := !slices.Contains(blocked, id.ID); has != want {
			t.Fatalf("after the interrupted first start node %d has data: %v, want %v", id.ID, has, want)
		}
	}
}

// A first Open interrupted after some nodes had written their data and
// before the others had (a crash, or a power cut: the nodes start one
// after another) must not leave a database that never opens: the next
// Open completes the first start, and the cluster then works and reopens.
func TestOpenCompletesInterruptedFirstStart(t *testing.T) {
	for _, blocked := range [][]uint64{{2, 3}, {3}} {
		t.Run(fmt.Sprintf("nodes %v cut", blocked), func(t *testing.T) {
			cfg := testConfig(t, 3)
			interruptFirstStart(t, cfg, blocked...)

			db := openTest(t, cfg)
			ctx := ctxT(t)
			if err := db.Put(ctx, "k", []byte("v")); err != nil {
				db.Close()
				t.Fatalf("Put after completing the first start: %v", err)
			}
			ms, err := db.Members(ctx)
			if err != nil || len(ms) != 3 {
				db.Close()
				t.Fatalf("Members = %+v, %v; want the 3 configured members", ms, err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(cfg.PersistPath, firstStartFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the first-start marker is still there after a complete start (%v)", err)
			}

			db = openTest(t, cfg)
			defer db.Close()
			if v, err := db.Get(ctxT(t), "k"); err != nil || string(v) != "v" {
				t.Fatalf("Get after reopening: %q, %v", v, err)
			}
		})
	}
}

// A node whose data was lost after the cluster was created is refused,
// though it is one of the configured members: started empty it would have
// forgotten its votes and acknowledgements. Only a first start still
// under way (its marker present) admits nodes without data.
func TestOpenRefusesNodeThatLostItsData(t *testing.T) {
	cfg := testConfig(t, 3)
	db := openTest(t, cfg)
	if err := db.Put(ctxT(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cfg.DataDir(3)); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(WithConfig(cfg), WithLogger(testLogger())); !errors.Is(err, actors.ErrWrongCluster) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open with node 3's data gone: %v, want ErrWrongCluster", err)
	}
	if has, err := actors.HasData(cfg.DataDir(3)); err != nil || has {
		t.Fatalf("node 3 got data from the refused open (%v, %v)", has, err)
	}
}

// An interrupted first start is completed only with the members it began
// with: with serversNum changed, no node starts (nodes 4 and 5 would not
// be in the configuration node 1 recorded); restored, the start completes.
func TestInterruptedFirstStartKeepsItsMembers(t *testing.T) {
	cfg := testConfig(t, 3)
	interruptFirstStart(t, cfg, 2, 3)
	for _, n := range []int{5, 2} {
		grown := cfg
		grown.ServersNum = n
		db, err := Open(WithConfig(grown), WithLogger(testLogger()))
		if !errors.Is(err, actors.ErrWrongCluster) || !strings.Contains(err.Error(), "restore serversNum") {
			if db != nil {
				db.Close()
			}
			t.Fatalf("Open with serversNum 3 -> %d during the first start: %v, want ErrWrongCluster asking to restore serversNum", n, err)
		}
		for _, id := range []uint64{2, 3, 4, 5} {
			if has, err := actors.HasData(grown.DataDir(id)); err != nil || has {
				t.Fatalf("serversNum %d: node %d got data from the refused open (%v, %v)", n, id, has, err)
			}
		}
	}
	db := openTest(t, cfg)
	defer db.Close()
	if err := db.Put(ctxT(t), "k", []byte("v")); err != nil {
		t.Fatalf("Put after completing the first start: %v", err)
	}
}

// A crash while the first Open wrote its marker leaves the marker's
// temporary file; the next first Open removes it, and the marker itself
// is gone once the cluster has started.
func TestFirstStartRemovesTornMarker(t *testing.T) {
	cfg := testConfig(t, 3)
	torn := filepath.Join(cfg.PersistPath, "."+firstStartFile+".tmp-123")
	if err := os.WriteFile(torn, []byte("memb"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, cfg)
	defer db.Close()
	for _, f := range []string{torn, filepath.Join(cfg.PersistPath, firstStartFile)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is there after the first start (%v)", f, err)
		}
	}
}
