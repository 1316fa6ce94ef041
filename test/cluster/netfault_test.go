//go:build linux

package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Network partitions.
//
// A user-space proxy cannot cut RaftKV's peer links: protoactor addresses a
// node by one host:port that is both where it listens and the Address of
// every PID it owns, and a node delivers a message only if its target PID's
// address equals its own byte for byte (anything else it forwards to that
// address as a remote PID). So peers cannot dial a proxy port under the
// node's address, and the config offers no separate advertised address
// (remote has an advertised-address option, but only for its own tests).
//
// Instead each node process runs under its own group id (cluster.gid), and
// a partition is a set of iptables rules in a chain of this test process,
// in the OUTPUT path of loopback: "drop TCP packets that a socket of node
// A's group sends to node B's peer port" cuts A→B (connection attempts and
// data on open connections). Clients (the test, group 0) are never matched.
// This needs root and the iptables command; without them the partition
// cases skip, saying why.

// netFaults manages one iptables chain.
type netFaults struct {
	c     *cluster
	ipt   string
	chain string
	mu    sync.Mutex
	cuts  map[[2]uint64]bool
}

var chainSeq atomic.Int64

const iptablesTimeout = 10 * time.Second

var (
	probeOnce   sync.Once
	probeResult string
)

// partitionsUnavailable says why partitions cannot run here, or "". It
// probes once per test binary: it creates a chain with one owner-match rule
// and removes it.
func partitionsUnavailable() string {
	probeOnce.Do(func() { probeResult = probePartitions() })
	return probeResult
}

func probePartitions() string {
	if os.Geteuid() != 0 {
		return "partitions need root (iptables rules matching each node's group id); running as uid " + strconv.Itoa(os.Geteuid())
	}
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		return "partitions need the iptables command, which is not installed (e.g. apt-get install -y iptables)"
	}
	chain := fmt.Sprintf("RKVP-%d", os.Getpid())
	if out, err := runIptables(ipt, "-w", "5", "-N", chain); err != nil {
		return fmt.Sprintf("iptables is present but cannot create a chain here (%v: %s)", err, strings.TrimSpace(out))
	}
	defer func() {
		runIptables(ipt, "-w", "5", "-F", chain)
		runIptables(ipt, "-w", "5", "-X", chain)
	}()
	out, err := runIptables(ipt, "-w", "5", "-A", chain, "-p", "tcp", "--dport", "1",
		"-m", "owner", "--gid-owner", "1", "-j", "DROP")
	if err != nil {
		return fmt.Sprintf("iptables cannot match packets by owner here (%v: %s)", err, strings.TrimSpace(out))
	}
	return ""
}

func runIptables(ipt string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), iptablesTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, ipt, args...).CombinedOutput()
	return string(out), err
}

// newNetFaults creates the chain and hooks it into OUTPUT; the chain is
// removed when t ends. c's nodes must run under their own groups.
func newNetFaults(t testing.TB, c *cluster) *netFaults {
	t.Helper()
	if c.gidBase == 0 {
		t.Fatal("netFaults needs a cluster started with ownGroups")
	}
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		t.Fatal(err)
	}
	nf := &netFaults{
		c: c, ipt: ipt, cuts: map[[2]uint64]bool{},
		// iptables chain names are at most 28 characters.
		chain: fmt.Sprintf("RKVT-%d-%d", os.Getpid(), chainSeq.Add(1)),
	}
	if out, err := nf.run("-N", nf.chain); err != nil {
		t.Fatalf("iptables -N %s: %v: %s", nf.chain, err, out)
	}
	if out, err := nf.run("-I", "OUTPUT", "1", "-o", "lo", "-j", nf.chain); err != nil {
		nf.run("-X", nf.chain)
		t.Fatalf("iptables -I OUTPUT: %v: %s", err, out)
	}
	t.Cleanup(func() {
		var errs []string
		for _, args := range [][]string{{"-D", "OUTPUT", "-o", "lo", "-j", nf.chain}, {"-F", nf.chain}, {"-X", nf.chain}} {
			if out, err := nf.run(args...); err != nil {
				errs = append(errs, fmt.Sprintf("iptables %v: %v: %s", args, err, out))
			}
		}
		if len(errs) > 0 {
			t.Errorf("removing partition rules: %s", strings.Join(errs, "; "))
		}
	})
	return nf
}

func (nf *netFaults) run(args ...string) (string, error) {
	return runIptables(nf.ipt, append([]string{"-w", "5"}, args...)...)
}

// cut drops what from sends to to's peer port (one direction).
func (nf *netFaults) cut(from, to uint64) error {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	if nf.cuts[[2]uint64{from, to}] {
		return nil
	}
	out, err := nf.run("-A", nf.chain, "-p", "tcp", "-d", "127.0.0.1",
		"--dport", strconv.Itoa(nf.c.node(to).peerPort),
		"-m", "owner", "--gid-owner", strconv.FormatUint(uint64(nf.c.gid(from)), 10),
		"-j", "DROP")
	if err != nil {
		return fmt.Errorf("iptables cut %d->%d: %v: %s", from, to, err, out)
	}
	nf.cuts[[2]uint64{from, to}] = true
	return nil
}

// partition cuts every link between a node of a and a node of b, both ways.
func (nf *netFaults) partition(a, b []uint64) error {
	for _, x := range a {
		for _, y := range b {
			if err := nf.cut(x, y); err != nil {
				return err
			}
			if err := nf.cut(y, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// isolate cuts id from every other node, both ways.
func (nf *netFaults) isolate(id uint64) error {
	var others []uint64
	for _, o := range nf.c.ids() {
		if o != id {
			others = append(others, o)
		}
	}
	return nf.partition([]uint64{id}, others)
}

// heal removes every cut.
func (nf *netFaults) heal() error {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	if out, err := nf.run("-F", nf.chain); err != nil {
		return fmt.Errorf("iptables -F %s: %v: %s", nf.chain, err, out)
	}
	clear(nf.cuts)
	return nil
}

func (nf *netFaults) describe() string {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	var parts []string
	for k := range nf.cuts {
		parts = append(parts, fmt.Sprintf("%d->%d", k[0], k[1]))
	}
	return strings.Join(parts, " ")
}
