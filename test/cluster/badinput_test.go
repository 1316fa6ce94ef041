//go:build linux

package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Bad input on real processes: garbage on the client and peer ports,
// clients that go away mid-request, and configurations or data directories
// `raftkv serve` must refuse.

// garbage returns the payloads thrown at a port: random bytes, random bytes
// after a valid HTTP/2 client preface (so gRPC parses frames), and a large
// random blob.
func garbage(r *mrand.Rand) [][]byte {
	small := make([]byte, 4096)
	rand.Read(small)
	framed := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), make([]byte, 8192)...)
	rand.Read(framed[24:])
	big := make([]byte, 1<<20+r.IntN(4096))
	rand.Read(big)
	return [][]byte{small, framed, big}
}

// throw writes payload to addr over a fresh TCP connection and closes it.
// The server may close first; write errors are expected then.
func throw(t testing.TB, addr string, payload []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write(payload)
	// Give the server a moment to read and react before the close.
	buf := make([]byte, 512)
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	conn.Read(buf)
	conn.Close()
}

// serves checks that node id answers a write and a read through its own
// client port.
func serves(t testing.TB, c *cluster, id uint64, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := raftkv.Dial(ctx, c.node(id).clientAddr)
	if err != nil {
		t.Fatalf("node %d does not serve after bad input: dial: %v", id, err)
	}
	defer cl.Close()
	if err := cl.Put(ctx, key, []byte(value)); err != nil {
		t.Fatalf("node %d does not serve after bad input: put: %v", id, err)
	}
	if v, err := cl.Get(ctx, key); err != nil || string(v) != value {
		t.Fatalf("node %d after bad input: get %s = %q, %v; want %q", id, key, v, err, value)
	}
}

func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a 3-process cluster")
	}
	dir := keptDir(t)
	_, rng := testSeed(t)
	c := newCluster(t, dir, clusterOpts{nodes: 3})
	c.startAll()
	c.waitLeader()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := c.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// want is everything the cluster must store at the end; maybe are keys
	// whose write was cut off: absent, or with the value written.
	want := map[string]string{}
	maybe := map[string]string{}
	for i := range 20 {
		k, v := fmt.Sprintf("base/%d", i), fmt.Sprintf("value-%d", i)
		if err := cl.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	checkStored := func(when string) {
		t.Helper()
		for k, v := range want {
			got, err := cl.Get(ctx, k)
			if err != nil || string(got) != v {
				t.Fatalf("%s: %s = %q, %v; want %q", when, k, got, err, v)
			}
		}
	}

	t.Run("healthz", func(t *testing.T) {
		for _, n := range c.nodes {
			resp, err := healthClient.Get(n.health)
			if err != nil {
				t.Fatalf("node %d /healthz: %v", n.id, err)
			}
			var h metrics.Health
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !h.Healthy || h.Node != n.id || h.Leader == 0 {
				t.Errorf("node %d /healthz: %d %+v %v; want 200, healthy, a leader", n.id, resp.StatusCode, h, err)
			}
		}
	})

	t.Run("garbage-to-client-port", func(t *testing.T) {
		for _, n := range c.nodes {
			for i, p := range garbage(rng) {
				throw(t, n.clientAddr, p)
				k := fmt.Sprintf("after-client-garbage/%d/%d", n.id, i)
				serves(t, c, n.id, k, "ok")
				want[k] = "ok"
			}
		}
		checkStored("after garbage on the client ports")
	})

	t.Run("garbage-to-peer-port", func(t *testing.T) {
		for _, n := range c.nodes {
			for i, p := range garbage(rng) {
				throw(t, n.peerAddr, p)
				k := fmt.Sprintf("after-peer-garbage/%d/%d", n.id, i)
				serves(t, c, n.id, k, "ok")
				want[k] = "ok"
			}
		}
		checkStored("after garbage on the peer ports")
	})

	t.Run("client-gone-mid-request", func(t *testing.T) {
		for _, n := range c.nodes {
			// A context cancelled right after the request left: the client
			// sends RST_STREAM.
			for i := range 10 {
				k, v := fmt.Sprintf("cancelled/%d/%d", n.id, i), fmt.Sprintf("v%d", i)
				maybe[k] = v
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				ncl, err := raftkv.Dial(cctx, n.clientAddr)
				if err != nil {
					ccancel()
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- ncl.Put(cctx, k, []byte(v)) }()
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				ccancel()
				<-done
				ncl.Close()
			}
			// The connection itself closed mid-request: a raw gRPC Write
			// whose ClientConn is closed while it waits.
			for i := range 10 {
				k, v := fmt.Sprintf("disconnected/%d/%d", n.id, i), fmt.Sprintf("v%d", i)
				maybe[k] = v
				conn, err := grpc.NewClient(n.clientAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				kv := clientpb.NewKVClient(conn)
				// A write needs a session (client_id 0 is refused at once).
				rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
				reg, err := kv.RegisterSession(rctx, &clientpb.RegisterSessionRequest{})
				rcancel()
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() {
					wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer wcancel()
					_, err := kv.Write(wctx, &clientpb.WriteRequest{ClientId: reg.GetClientId(), Seq: 1, Op: clientpb.Op_OP_PUT, Key: k, Value: []byte(v)})
					done <- err
				}()
				time.Sleep(time.Duration(500+rng.IntN(3000)) * time.Microsecond)
				conn.Close()
				<-done
			}
			k := fmt.Sprintf("after-disconnects/%d", n.id)
			serves(t, c, n.id, k, "ok")
			want[k] = "ok"
		}
		checkStored("after clients went away mid-request")
		for k, v := range maybe {
			got, err := cl.Get(ctx, k)
			if errors.Is(err, raftkv.ErrNotFound) {
				continue
			}
			if err != nil || string(got) != v {
				t.Errorf("%s = %q, %v; want absent or %q", k, got, err, v)
			}
		}
	})

	// Nothing else stored: after a converged clean stop, every node holds
	// exactly want plus some of maybe, the same on every node, and no node
	// crashed.
	c.stopAllCleanly(c.waitConverged())
	c.checkNoCrashes()
	states := c.inspectNodes()
	compareStates(t, states)
	for _, s := range states {
		for k, v := range s.Data {
			if w, ok := want[k]; ok {
				if w != v {
					t.Errorf("node %d stores %s = %q, want %q", s.id, k, v, w)
				}
				continue
			}
			if m, ok := maybe[k]; ok {
				if m != v {
					t.Errorf("node %d stores %s = %q, want absent or %q", s.id, k, v, m)
				}
				continue
			}
			t.Errorf("node %d stores %s = %q, which nobody wrote", s.id, k, v)
		}
		for k := range want {
			if _, ok := s.Data[k]; !ok {
				t.Errorf("node %d lost %s", s.id, k)
			}
		}
	}
}

// serveOnce runs `raftkv serve` with args until it exits (bounded) and
// returns its exit code and output. A process still running after the
// bound is killed and reported as such.
func serveOnce(t testing.TB, within time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	code, out := runRaftkv(ctx, t, raftkvBinary(t), append([]string{"serve"}, args...)...)
	if ctx.Err() != nil {
		t.Fatalf("raftkv serve %v still running after %v; output:\n%s", args, within, out)
	}
	return code, out
}

// runRaftkv runs the raftkv binary bin with args and returns its exit code
// and output; failing to run it at all fails the test.
func runRaftkv(ctx context.Context, t testing.TB, bin string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("raftkv %v: %v", args, err)
	return -1, ""
}

// TestServeRefusesDuplicatePorts: two nodes on one port is a config error
// naming the key, before anything listens.
func TestServeRefusesDuplicatePorts(t *testing.T) {
	dir := t.TempDir()
	p := freePorts(t, 5)
	for _, tc := range []struct {
		name, servers, key string
	}{
		{"peer-port", fmt.Sprintf(`
  - {id: 1, address: 127.0.0.1, port: %d, clientPort: %d}
  - {id: 2, address: 127.0.0.1, port: %d, clientPort: %d}
  - {id: 3, address: 127.0.0.1, port: %d, clientPort: %d}`, p[0], p[1], p[0], p[2], p[3], p[4]), "servers[1].port"},
		{"client-port-vs-peer-port", fmt.Sprintf(`
  - {id: 1, address: 127.0.0.1, port: %d, clientPort: %d}
  - {id: 2, address: 127.0.0.1, port: %d, clientPort: %d}`, p[0], p[1], p[2], p[0]), "servers[1].clientPort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, tc.name+".yaml")
			body := "mode: config\npersistPath: " + filepath.Join(dir, "data") + "\nservers:" + tc.servers + "\n"
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out := serveOnce(t, 30*time.Second, "--config", cfg, "--id", "1")
			if code == 0 || !strings.Contains(out, tc.key) || !strings.Contains(out, "already used") {
				t.Errorf("serve with a duplicate port: exit %d, output:\n%s\nwant a non-zero exit naming %s", code, out, tc.key)
			} else {
				t.Logf("refused (exit %d): %s", code, strings.TrimSpace(out))
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Errorf("serve refused the config but created the data directory")
			}
		})
	}
}

// TestServeRefusesForeignData: a node started on a data directory written
// by another node, or by a node of another cluster, exits non-zero with a
// message saying whose data it is.
func TestServeRefusesForeignData(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a node process")
	}
	dir := keptDir(t)
	c := newCluster(t, dir, clusterOpts{nodes: 3})
	// Node 1 alone: it creates and stamps its data directory.
	c.startNodes(1)
	if err := c.node(1).terminate(); err != nil {
		t.Fatal(err)
	}
	node1 := filepath.Join(c.data, "node1")
	if _, err := os.Stat(filepath.Join(node1, "RAFTKV_NODE")); err != nil {
		t.Fatalf("node 1 left no identity file: %v", err)
	}

	t.Run("another-node", func(t *testing.T) {
		// Root "other" whose node2 is node 1's data.
		other := filepath.Join(dir, "other")
		if err := os.MkdirAll(other, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(node1, filepath.Join(other, "node2")); err != nil {
			t.Fatal(err)
		}
		code, out := serveOnce(t, 60*time.Second, "--config", c.cfgPath, "--id", "2", "--data", other)
		if code == 0 || !strings.Contains(out, "belongs to") || !strings.Contains(out, "node=1") || !strings.Contains(out, "not to node 2") {
			t.Errorf("serve --id 2 on node 1's data: exit %d, output:\n%s\nwant a non-zero exit saying the data belongs to node 1", code, out)
		} else {
			t.Logf("refused (exit %d): %s", code, strings.TrimSpace(out))
		}
	})

	t.Run("another-cluster", func(t *testing.T) {
		body, err := os.ReadFile(c.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "other-cluster.yaml")
		body = []byte(strings.Replace(string(body), "clusterId: fault-suite", "clusterId: another", 1))
		if err := os.WriteFile(cfg, body, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := serveOnce(t, 60*time.Second, "--config", cfg, "--id", "1")
		if code == 0 || !strings.Contains(out, "belongs to") || !strings.Contains(out, "fault-suite") {
			t.Errorf("serve of cluster %q on data of cluster fault-suite: exit %d, output:\n%s\nwant a non-zero exit naming the data's cluster", "another", code, out)
		} else {
			t.Logf("refused (exit %d): %s", code, strings.TrimSpace(out))
		}
	})

	// The refused starts left node 1's data as it was: it starts again.
	c.startNodes(1)
	if err := c.node(1).terminate(); err != nil {
		t.Fatal(err)
	}
	c.checkNoCrashes()
}
