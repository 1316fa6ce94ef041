//go:build linux

package cluster_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	flagFull = flag.Bool("cluster.full", false,
		"run the full fault suite: 5 nodes, every scenario, longer workloads, values of the largest maxValueSize")
	flagSeed = flag.Uint64("cluster.seed", 0,
		"seed of the randomized choices (0: pick one; every test logs the seed it used)")
	flagKeep = flag.Bool("cluster.keep", false,
		"keep every test's directory (node logs, configs, data, history), not only a failing test's")
	flagBin = flag.String("cluster.bin", "",
		"use this raftkv binary instead of building github.com/raftkv/raftkv/cmd/raftkv")
)

// buildDir holds the binary built for this run; TestMain removes it.
var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// raftkvBinary builds the raftkv command once per test run and returns its
// path. A plain (non-race) build: the processes under test are the real
// product, and the build is then shared with the ordinary build cache.
func raftkvBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if *flagBin != "" {
			binPath, buildErr = filepath.Abs(*flagBin)
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			if root := os.Getenv("GOROOT"); root != "" {
				goTool, err = filepath.Join(root, "bin", "go"), nil
			}
		}
		if err != nil {
			buildErr = fmt.Errorf("no go command to build raftkv with: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "raftkv-cluster-bin-"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(buildDir, "raftkv")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", binPath, "github.com/raftkv/raftkv/cmd/raftkv")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build raftkv: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "cluster: built %s in %v\n", binPath, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// testSeed returns the seed of t's randomized choices and logs how to replay
// it.
func testSeed(t testing.TB) (uint64, *rand.Rand) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -cluster.seed=%d)", seed, seed)
	return seed, rand.New(rand.NewPCG(seed, 0x5eed))
}

// keptDir makes a directory for t's logs, configs, data and history that,
// unlike t.TempDir, survives a failing test: it is removed when the test
// passes (unless -cluster.keep), and its path is printed otherwise. The
// cleanup is registered first, so it runs after every other cleanup of t
// (processes killed, files closed).
func keptDir(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(t.Name())
	dir, err := os.MkdirTemp("", "raftkv-cluster-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("kept logs, data and history of %s in %s", t.Name(), dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}
