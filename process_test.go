package raftkv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/config"
)

// Three nodes in three processes, one protoactor Remote each, talking gRPC
// over loopback: the distributed shape of the same code the embedded tests
// run in one process. The test binary re-executes itself as each node.

const nodeEnv = "RAFTKV_TEST_NODE"

// freePorts reserves n distinct loopback ports (released before use, so a
// collision with another process is possible but unlikely).
func freePorts(t testing.TB, n int) []int {
	var ports []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func threeProcessConfig(t testing.TB) config.Config {
	p := freePorts(t, 6)
	cfg := config.Default()
	cfg.PersistPath = t.TempDir()
	cfg.ServerList = []config.Server{
		{ID: 1, Address: "127.0.0.1", Port: p[0], ClientPort: p[3]},
		{ID: 2, Address: "127.0.0.1", Port: p[1], ClientPort: p[4]},
		{ID: 3, Address: "127.0.0.1", Port: p[2], ClientPort: p[5]},
	}
	cfg.ServersNum = 3
	testTiming(&cfg)
	return cfg
}

func TestThreeProcessesOverRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	cfg := threeProcessConfig(t)
	var env []string
	for _, s := range cfg.ServerList {
		env = append(env, fmt.Sprintf("RAFTKV_TEST_PORT_%d=%d", s.ID, s.Port))
	}
	env = append(env, "RAFTKV_TEST_DATA="+cfg.PersistPath)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		id  int
		out string
		err error
	}
	results := make(chan result, 3)
	for id := 1; id <= 3; id++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestProcessNodeHelper$", "-test.v")
		cmd.Env = append(append(os.Environ(), env...), nodeEnv+"="+strconv.Itoa(id))
		go func() {
			out, err := cmd.CombinedOutput()
			results <- result{id, string(out), err}
		}()
	}
	for i := 0; i < 3; i++ {
		r := <-results
		if r.err != nil || !strings.Contains(r.out, "NODE-OK") {
			t.Errorf("node process %d failed: %v\n%s", r.id, r.err, r.out)
		}
	}
}

// TestProcessNodeHelper is one node process of TestThreeProcessesOverRemote.
// Each process writes its own keys through its DB handle (reaching the
// leader over the network when it is elsewhere), then reads every process's
// keys until all are visible.
func TestProcessNodeHelper(t *testing.T) {
	idStr := os.Getenv(nodeEnv)
	if idStr == "" {
		t.Skip("helper process only")
	}
	id, _ := strconv.Atoi(idStr)
	cfg := config.Default()
	cfg.PersistPath = os.Getenv("RAFTKV_TEST_DATA")
	cfg.ServersNum = 3
	testTiming(&cfg)
	for i := 1; i <= 3; i++ {
		port, _ := strconv.Atoi(os.Getenv(fmt.Sprintf("RAFTKV_TEST_PORT_%d", i)))
		cfg.ServerList = append(cfg.ServerList, config.Server{ID: uint64(i), Address: "127.0.0.1", Port: port, ClientPort: port + 10000})
	}
	db, err := Open(WithConfig(cfg), WithNodes(uint64(id)), WithLogger(testLogger()))
	if err != nil {
		t.Fatalf("Open node %d: %v", id, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		if err := db.Put(ctx, fmt.Sprintf("p%d-%d", id, i), []byte(fmt.Sprint(id*1000+i))); err != nil {
			t.Fatalf("node %d Put: %v", id, err)
		}
	}
	for p := 1; p <= 3; p++ {
		for i := 0; i < 20; i++ {
			k, want := fmt.Sprintf("p%d-%d", p, i), fmt.Sprint(p*1000+i)
			for {
				v, err := db.Get(ctx, k)
				if err == nil {
					if string(v) != want {
						t.Fatalf("node %d read %s = %q, want %q", id, k, v, want)
					}
					break
				}
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("node %d Get %s: %v", id, k, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// Stay up until the others are done too: a peer still reading needs a
	// quorum. Their keys are all visible, so they have written; give their
	// reads a moment.
	time.Sleep(time.Second)
	st, _ := db.Status(ctx)
	bw := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(bw, "NODE-OK %d status %+v\n", id, st)
	bw.Flush()
}
