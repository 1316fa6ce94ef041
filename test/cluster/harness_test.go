//go:build linux

package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/metrics"
)

// Bounds of the harness's waits. They are generous because the default run
// shares the machine with the rest of `go test ./...`.
const (
	readyTimeout    = 30 * time.Second // a started process logs its ready line
	exitTimeout     = 30 * time.Second // a SIGTERMed process exits
	killTimeout     = 10 * time.Second // a SIGKILLed process is reaped
	leaderTimeout   = 20 * time.Second // a leader is elected
	convergeTimeout = 60 * time.Second // every node applied the same index
	startAttempts   = 5                // a start that lost its port to a race is retried
)

// readyMarker is what `raftkv serve` writes to stderr once it serves.
const readyMarker = " ready: peers at "

// clusterOpts shapes a test cluster.
type clusterOpts struct {
	nodes           int // 3 or 5
	snapshotEntries int // 0: the default (10000)
	// ownGroups runs each node under its own group id, which is what the
	// iptables partitions match on (see netfault_test.go). Needs root.
	ownGroups bool
	logLevel  string // default "info"
	// maxValueSize is the config's maxValueSize; 0 leaves the key out (the
	// default, 1 MiB).
	maxValueSize int
	// electionTicks is the config's electionTicks; 0 means 10 (100 ms).
	electionTicks int
}

// cluster is a set of `raftkv serve` processes sharing one config file.
type cluster struct {
	t       testing.TB
	dir     string // kept on failure: config, logs, data, history
	bin     string
	cfgPath string
	data    string // persistPath: node i keeps its data in data/node<i>
	// nodes are the cluster's current members (and the nodes joining it);
	// former are nodes removed from it (membership_test.go), which the
	// checks no longer count.
	nodes   []*node
	former  []*node
	opts    clusterOpts
	gidBase uint32 // 0 unless ownGroups

	mu      sync.Mutex
	crashes []string // processes that exited without being told to
}

// node is one server of the cluster and the process currently running it.
type node struct {
	id                           uint64
	peerPort, clientPort, mPort  int
	logPath                      string
	c                            *cluster
	mu                           sync.Mutex
	proc                         *process // nil when not running
	starts                       int
	paused                       bool
	peerAddr, clientAddr, health string
	// cfgPath, when set, is the node's own configuration file (a node
	// added at run time); join starts it with --join.
	cfgPath string
	join    bool
}

// process is one run of `raftkv serve`.
type process struct {
	cmd *exec.Cmd
	// stopping is set before the harness signals the process to end, so
	// that an exit without it counts as a crash.
	stopping atomic.Bool
	ready    chan struct{} // closed on the ready line
	exited   chan struct{} // closed once the process is reaped
	err      error         // Wait's result, set before exited closes
}

// newCluster writes the config of a cluster of o.nodes servers on free
// loopback ports and registers the cleanup that kills every process. It
// starts nothing.
func newCluster(t testing.TB, dir string, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: dir, bin: raftkvBinary(t), data: filepath.Join(dir, "data"), opts: o}
	if o.ownGroups {
		// Distinct from any real group and from another test binary's.
		c.gidBase = 1_000_000 + uint32(os.Getpid()%100_000)*10
	}
	// Peer, client and metrics port: the harness reads each node's own
	// state from its /healthz.
	const per = 3
	ports := freePorts(t, o.nodes*per)
	for i := 0; i < o.nodes; i++ {
		c.nodes = append(c.nodes, c.newNode(uint64(i+1), ports[i*per:i*per+per]))
	}
	c.cfgPath = filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(c.cfgPath, []byte(c.configYAML(o, c.nodes)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)
	return c
}

// newNode is node id of c on ports (peer, client, metrics).
func (c *cluster) newNode(id uint64, ports []int) *node {
	n := &node{
		id:         id,
		peerPort:   ports[0],
		clientPort: ports[1],
		mPort:      ports[2],
		c:          c,
		logPath:    filepath.Join(c.dir, fmt.Sprintf("node%d.log", id)),
	}
	n.health = fmt.Sprintf("http://127.0.0.1:%d/healthz", n.mPort)
	n.peerAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.peerPort))
	n.clientAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.clientPort))
	return n
}

// configYAML renders the config file of the given servers.
func (c *cluster) configYAML(o clusterOpts, nodes []*node) string {
	level := o.logLevel
	if level == "" {
		level = "info"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mode: config\nclusterId: fault-suite\npersistPath: %s\n", c.data)
	election := o.electionTicks
	if election == 0 {
		election = 10
	}
	fmt.Fprintf(&b, "tickInterval: 10ms\nelectionTicks: %d\nheartbeatTicks: 1\nlogLevel: %s\n", election, level)
	if o.snapshotEntries > 0 {
		fmt.Fprintf(&b, "snapshotEntries: %d\n", o.snapshotEntries)
	}
	if o.maxValueSize > 0 {
		fmt.Fprintf(&b, "maxValueSize: %d\n", o.maxValueSize)
	}
	b.WriteString("servers:\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "  - id: %d\n    address: 127.0.0.1\n    port: %d\n    clientPort: %d\n    metricsPort: %d\n",
			n.id, n.peerPort, n.clientPort, n.mPort)
	}
	return b.String()
}

// freePorts picks n distinct loopback ports that are free now. It draws
// them below the kernel's ephemeral range, so that while a node is down for
// a restart no outgoing connection can take its port; a port another
// process grabs anyway makes the start fail, which start retries.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	lo, hi := 20000, 32000
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if eph, err := strconv.Atoi(f[0]); err == nil && eph > 12000 {
				hi = min(hi, eph-1)
				lo = min(lo, hi-8000)
			}
		}
	}
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 2000 {
			t.Fatalf("found only %d free ports in %d..%d", len(ports), lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports
}

func (c *cluster) node(id uint64) *node {
	for _, n := range slices.Concat(c.nodes, c.former) {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %d", id)
	return nil
}

func (c *cluster) ids() []uint64 {
	var ids []uint64
	for _, n := range c.nodes {
		ids = append(ids, n.id)
	}
	return ids
}

func (c *cluster) endpoints() []string {
	var eps []string
	for _, n := range c.nodes {
		eps = append(eps, n.clientAddr)
	}
	return eps
}

func (c *cluster) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// gid is the group node id runs under, 0 when nodes keep the test's group.
func (c *cluster) gid(id uint64) uint32 {
	if c.gidBase == 0 {
		return 0
	}
	return c.gidBase + uint32(id)
}

// startAll starts every node concurrently and waits for all to be ready.
func (c *cluster) startAll() {
	c.t.Helper()
	c.startNodes(c.ids()...)
}

// startNodes starts the given nodes concurrently; the test fails if one is
// not ready in time.
func (c *cluster) startNodes(ids ...uint64) {
	c.t.Helper()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.node(id).start()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
}

// start runs the node's process (on its configured ports and data) and
// waits for its ready line.
func (n *node) start() error {
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var out string
		out, err = n.startOnce()
		if err == nil {
			return nil
		}
		if !strings.Contains(out, "address already in use") {
			break
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	return err
}

// startOnce makes one attempt; on failure it returns the tail of the log.
func (n *node) startOnce() (string, error) {
	n.mu.Lock()
	if n.proc != nil {
		n.mu.Unlock()
		return "", fmt.Errorf("node %d: already running", n.id)
	}
	n.starts++
	startNo := n.starts
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		return "", err
	}
	fmt.Fprintf(logf, "=== harness: start #%d of node %d at %s\n", startNo, n.id, time.Now().Format(time.RFC3339Nano))
	cfgPath := n.c.cfgPath
	if n.cfgPath != "" {
		cfgPath = n.cfgPath
	}
	args := []string{"serve", "--config", cfgPath, "--id", strconv.FormatUint(n.id, 10)}
	if n.join {
		args = append(args, "--join")
	}
	cmd := exec.Command(n.c.bin, args...)
	cmd.Stdout = logf
	// If the test binary dies, so do its nodes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if gid := n.c.gid(n.id); gid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(os.Getuid()), Gid: gid, NoSetGroups: true}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		n.mu.Unlock()
		return "", err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return "", fmt.Errorf("node %d: start: %w", n.id, err)
	}
	p := &process{cmd: cmd, ready: make(chan struct{}), exited: make(chan struct{})}
	n.proc, n.paused = p, false
	n.mu.Unlock()

	var tail tailBuffer
	go func() {
		// Copy stderr to the log, watching for the ready line; reap the
		// process once stderr is closed.
		r := bufio.NewReaderSize(stderr, 64<<10)
		readySeen := false
		for {
			line, err := r.ReadString('\n')
			if len(line) > 0 {
				logf.WriteString(line)
				tail.add(line)
				if !readySeen && strings.Contains(line, readyMarker) {
					readySeen = true
					close(p.ready)
				}
			}
			if err != nil {
				break
			}
		}
		p.err = cmd.Wait()
		fmt.Fprintf(logf, "=== harness: node %d exited: %v at %s\n", n.id, p.err, time.Now().Format(time.RFC3339Nano))
		logf.Close()
		if !p.stopping.Load() && readySeen {
			n.c.mu.Lock()
			n.c.crashes = append(n.c.crashes, fmt.Sprintf("node %d (start #%d) exited on its own: %v; log %s:\n%s",
				n.id, startNo, p.err, n.logPath, tail.String()))
			n.c.mu.Unlock()
		}
		n.clear(p)
		close(p.exited)
	}()

	select {
	case <-p.ready:
		return "", nil
	case <-p.exited:
		n.clear(p)
		return tail.String(), fmt.Errorf("node %d exited before it was ready (%v); log %s:\n%s", n.id, p.err, n.logPath, tail.String())
	case <-time.After(readyTimeout):
		n.kill()
		return tail.String(), fmt.Errorf("node %d not ready within %v; log %s:\n%s", n.id, readyTimeout, n.logPath, tail.String())
	}
}

// clear forgets p if it is still the node's current process.
func (n *node) clear(p *process) {
	n.mu.Lock()
	if n.proc == p {
		n.proc, n.paused = nil, false
	}
	n.mu.Unlock()
}

func (n *node) current() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

func (n *node) running() bool { return n.current() != nil }

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) error {
	p := n.current()
	if p == nil {
		return fmt.Errorf("node %d is not running", n.id)
	}
	return p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and reaps the process (bounded). It returns false if
// the node was not running.
func (n *node) kill() bool {
	p := n.current()
	if p == nil {
		return false
	}
	p.stopping.Store(true)
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(killTimeout):
		// Not reaped: leave it to Pdeathsig; the test fails on the next
		// start anyway if the ports stay taken.
	}
	n.clear(p)
	return true
}

// pause sends SIGSTOP.
func (n *node) pause() error {
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	return nil
}

// resume sends SIGCONT.
func (n *node) resume() error {
	if err := n.signal(syscall.SIGCONT); err != nil {
		return err
	}
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	return nil
}

func (n *node) isPaused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// terminate sends SIGTERM and waits for a clean exit; it returns the exit
// error (nil for status 0). A process that does not exit in time is killed.
func (n *node) terminate() error {
	p := n.current()
	if p == nil {
		return nil
	}
	p.stopping.Store(true)
	if n.isPaused() {
		p.cmd.Process.Signal(syscall.SIGCONT)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("node %d: SIGTERM: %w", n.id, err)
	}
	select {
	case <-p.exited:
		n.clear(p)
		if p.err != nil {
			return fmt.Errorf("node %d exited after SIGTERM with %v (log %s)", n.id, p.err, n.logPath)
		}
		return nil
	case <-time.After(exitTimeout):
		n.kill()
		return fmt.Errorf("node %d did not exit within %v of SIGTERM (log %s)", n.id, exitTimeout, n.logPath)
	}
}

// cleanup kills every process.
func (c *cluster) cleanup() {
	var wg sync.WaitGroup
	for _, n := range slices.Concat(c.nodes, c.former) {
		wg.Add(1)
		go func() { defer wg.Done(); n.kill() }()
	}
	wg.Wait()
	c.checkNoCrashes()
}

// checkNoCrashes fails the test for every process that exited on its own.
func (c *cluster) checkNoCrashes() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.crashes {
		c.t.Error(s)
	}
	c.crashes = nil
}

// tailBuffer keeps the last lines written to it.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *tailBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
	if len(b.lines) > 30 {
		b.lines = b.lines[len(b.lines)-30:]
	}
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "")
}

// client dials a client of every endpoint (the caller closes it).
func (c *cluster) client(ctx context.Context) (*raftkv.Client, error) {
	return raftkv.Dial(ctx, c.endpoints()...)
}

// nodeView is a node's own report of its state (its /healthz answer).
type nodeView struct {
	id uint64
	ok bool // it answered
	metrics.Health
}

func (v nodeView) String() string {
	if !v.ok {
		return fmt.Sprintf("n%d:-", v.id)
	}
	return fmt.Sprintf("n%d:%s term=%d leader=%d commit=%d applied=%d", v.id, v.Role, v.Term, v.Leader, v.Commit, v.Applied)
}

var healthClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// views asks every running node for its own state, in parallel. Each node
// answers from its local state (its /healthz), so a node cut off from the
// others, or paused, delays nothing but its own answer (bounded).
func (c *cluster) views(ctx context.Context) []nodeView {
	out := make([]nodeView, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		out[i].id = n.id
		if !n.running() || n.isPaused() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.health, nil)
			resp, err := healthClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var h metrics.Health
			// 503 still carries the state.
			if json.NewDecoder(resp.Body).Decode(&h) == nil && h.Node == n.id && h.Role != "" {
				out[i] = nodeView{id: n.id, ok: true, Health: h}
			}
		}()
	}
	wg.Wait()
	return out
}

// leaderOf returns the node that reports itself leader in the highest term
// (an old leader cut off from the others may still believe it leads in an
// older one), or 0.
func leaderOf(vs []nodeView) uint64 {
	var lead, term uint64
	for _, v := range vs {
		if v.ok && v.Role == "leader" && v.Term >= term {
			lead, term = v.id, v.Term
		}
	}
	return lead
}

// waitLeader waits until a leader that is none of exclude is elected and
// returns it.
func (c *cluster) waitLeader(exclude ...uint64) uint64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leaderTimeout)
	defer cancel()
	var last []nodeView
	for ctx.Err() == nil {
		last = c.views(ctx)
		if l := leaderOf(last); l != 0 && !slices.Contains(exclude, l) {
			return l
		}
		sleepCtx(ctx, 30*time.Millisecond)
	}
	c.t.Fatalf("no leader (other than %v) within %v; last views %v", exclude, leaderTimeout, last)
	return 0
}

// waitConverged waits until every node answers, all follow one leader, and
// every node has applied the leader's commit index, twice in a row with the
// same index. It returns the leader; the test fails if that takes too long.
func (c *cluster) waitConverged() uint64 {
	c.t.Helper()
	lead, err := c.converge()
	if err != nil {
		c.t.Fatal(err)
	}
	return lead
}

// converge is waitConverged returning an error instead.
func (c *cluster) converge() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	var last []nodeView
	stable := 0
	var prevApplied uint64
	for ctx.Err() == nil {
		last = c.views(ctx)
		if lead, applied, ok := converged(last); ok {
			if stable > 0 && applied == prevApplied {
				return lead, nil
			}
			stable, prevApplied = stable+1, applied
		} else {
			stable = 0
		}
		sleepCtx(ctx, 150*time.Millisecond)
	}
	return 0, fmt.Errorf("cluster did not converge within %v; last views %v", convergeTimeout, last)
}

// converged reports whether every node answered, follows one leader and has
// applied the leader's commit index.
func converged(vs []nodeView) (lead, applied uint64, ok bool) {
	lead = leaderOf(vs)
	if lead == 0 {
		return 0, 0, false
	}
	var commit uint64
	for _, v := range vs {
		if v.id == lead {
			commit = v.Commit
		}
	}
	for _, v := range vs {
		if !v.ok || v.Leader != lead || v.Applied != commit || v.Commit != commit {
			return 0, 0, false
		}
	}
	return lead, commit, true
}

// stopAllCleanly stops the cluster for inspection: followers first (so the
// leader cannot lose its lead and a new one cannot append an entry some
// nodes would miss), then the leader, each with SIGTERM. Every node must
// exit with status 0.
func (c *cluster) stopAllCleanly(leader uint64) {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		if n.id == leader {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.terminate() }()
	}
	wg.Wait()
	if leader != 0 {
		errs = append(errs, c.node(leader).terminate())
	}
	if err := errors.Join(errs...); err != nil {
		c.t.Error(err)
	}
}

// healProcesses resumes paused nodes and restarts dead ones.
func (c *cluster) healProcesses() {
	c.t.Helper()
	var dead []uint64
	for _, n := range c.nodes {
		if n.isPaused() {
			if err := n.resume(); err != nil {
				c.t.Error(err)
			}
		}
		if !n.running() {
			dead = append(dead, n.id)
		}
	}
	if len(dead) > 0 {
		c.logf("restarting %v", dead)
		c.startNodes(dead...)
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// readTail returns the last max bytes of a file, for error messages.
func readTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
