package raftlogic

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// These tests follow the Raft paper ("In Search of an Understandable
// Consensus Algorithm", extended version) section by section, and Ongaro's
// thesis for the extensions. Each test name says the rule it checks, and
// each file holds one part: election_test.go (§5.1, §5.2, §5.4.1),
// replication_test.go (§5.3), commit_test.go (§5.4.2, Figure 8, and
// durability before commit), read_test.go (thesis 6.4), snapshot_test.go
// (§7), prevote_test.go (thesis 9.6), checkquorum_test.go (thesis 6.2,
// 4.2.3), transfer_test.go (thesis 3.10), async_test.go (thesis 10.2.1:
// storage writes reported durable later, Config.AsyncStorageWrites) and
// validation_test.go (inputs no correct peer or driver gives).
//
// This file holds a deterministic in-memory test cluster for them: nodes
// with an in-memory disk and state machine, a FIFO message router with
// per-link drop filters, and restart from disk. Each Ready is handled by the
// shared driver step in driver_test.go.

const (
	testElectionTick  = 10
	testHeartbeatTick = 1
)

func testConfig(id uint64) Config {
	return Config{ID: id, ElectionTick: testElectionTick, HeartbeatTick: testHeartbeatTick, Seed: 1}
}

func voterIDs(size int) []uint64 {
	ids := make([]uint64, size)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

// mkEntries builds entries first, first+1, ... with the given terms. The
// data names index and term, so equal (index, term) means equal entries.
func mkEntries(first uint64, terms ...uint64) []Entry {
	ents := make([]Entry, len(terms))
	for i, t := range terms {
		idx := first + uint64(i)
		ents[i] = Entry{Index: idx, Term: t, Data: fmt.Appendf(nil, "e%d@%d", idx, t)}
	}
	return ents
}

func termsOf(ents []Entry) []uint64 {
	out := make([]uint64, len(ents))
	for i, e := range ents {
		out[i] = e.Term
	}
	return out
}

// stateWithLog is an InitialState holding a log of the given terms from
// index 1, at HardState term hsTerm with commit index commit.
func stateWithLog(voters []uint64, hsTerm, commit uint64, terms ...uint64) InitialState {
	return InitialState{
		HardState: HardState{Term: hsTerm, Commit: commit},
		Snapshot:  SnapshotMeta{ConfState: ConfState{Voters: slices.Clone(voters)}},
		Entries:   mkEntries(1, terms...),
	}
}

// newTestNode builds a single node for tests that drive Step by hand.
func newTestNode(t testing.TB, cfg Config, st InitialState) *Node {
	t.Helper()
	n, err := NewNode(cfg, st)
	if err != nil {
		t.Fatalf("NewNode(%d): %v", cfg.ID, err)
	}
	return n
}

// advance takes the node's Ready, if any, and hands it back as handled.
func advance(n *Node) Ready {
	if !n.HasReady() {
		return Ready{}
	}
	rd := n.Ready()
	n.Advance(rd)
	return rd
}

func requireNotLeaderError(t *testing.T, err error, leader uint64) {
	t.Helper()
	var nle *NotLeaderError
	if !errors.As(err, &nle) {
		t.Fatalf("error %v (%T) is not a *NotLeaderError", err, err)
	}
	if !errors.Is(err, ErrNotLeader) || errors.Is(err, ErrTransferInProgress) {
		t.Fatalf("error %v: errors.Is(ErrNotLeader)=%v, errors.Is(ErrTransferInProgress)=%v", err, errors.Is(err, ErrNotLeader), errors.Is(err, ErrTransferInProgress))
	}
	if nle.Leader != leader || nle.Transferring {
		t.Fatalf("NotLeaderError names leader %d (transferring %v), want %d", nle.Leader, nle.Transferring, leader)
	}
}

func mustStep(t testing.TB, n *Node, m Message) {
	t.Helper()
	if err := n.Step(m); err != nil {
		t.Fatalf("node %d refused %v from %d: %v", n.id, m.Type, m.From, err)
	}
}

func msgsOfType(msgs []Message, typ MessageType) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

// logEntries returns a copy of the node's in-memory log after its snapshot.
func logEntries(n *Node) []Entry { return slices.Clone(n.log.ents) }

type testNode struct {
	id   uint64
	cfg  Config
	n    *Node // nil while down
	disk memDisk
	// sm is the state machine: every entry applied so far, index 1 first
	// (a snapshot image carries the entries it covers).
	sm    []Entry
	reads []ReadState
	// writes are the async-mode writes handed to the node's writer and not
	// yet durable, oldest first; stabilize completes them unless
	// holdWrites (a slow disk). reports are the durable writes not yet
	// reported to the node; they are reported at once unless holdReports.
	writes     []pendingWrite
	holdWrites bool
	// confs are the configurations its Readies reported (Ready.ConfState).
	confs       []ConfState
	reports     []pendingWrite
	holdReports bool
}

func (tn *testNode) applied() uint64 { return uint64(len(tn.sm)) }

type cluster struct {
	t     testing.TB
	ids   []uint64
	nodes map[uint64]*testNode
	queue []Message
	// filters[{from, to}] drops the messages it returns true for.
	filters map[[2]uint64]func(Message) bool
	// sent is every message a node emitted (dropped or not), delivered
	// every message that reached a live node, in order.
	sent      []Message
	delivered []Message
}

type clusterOption func(*clusterSetup)

type clusterSetup struct {
	configure func(*Config)
	states    map[uint64]InitialState
}

// withConfig changes every node's Config.
func withConfig(f func(*Config)) clusterOption {
	return func(s *clusterSetup) {
		prev := s.configure
		s.configure = func(c *Config) {
			if prev != nil {
				prev(c)
			}
			f(c)
		}
	}
}

// withLog starts node id with a log of the given terms (from index 1) on
// disk, HardState term hsTerm and commit index commit.
func withLog(id, hsTerm, commit uint64, terms ...uint64) clusterOption {
	return func(s *clusterSetup) {
		s.states[id] = InitialState{HardState: HardState{Term: hsTerm, Commit: commit}, Entries: mkEntries(1, terms...)}
	}
}

func newCluster(t testing.TB, size int, opts ...clusterOption) *cluster {
	t.Helper()
	setup := clusterSetup{states: map[uint64]InitialState{}}
	for _, o := range opts {
		o(&setup)
	}
	c := &cluster{t: t, ids: voterIDs(size), nodes: map[uint64]*testNode{}, filters: map[[2]uint64]func(Message) bool{}}
	for _, id := range c.ids {
		cfg := testConfig(id)
		if setup.configure != nil {
			setup.configure(&cfg)
		}
		st := setup.states[id]
		tn := &testNode{id: id, cfg: cfg}
		tn.disk.hs = st.HardState
		tn.disk.ents = slices.Clone(st.Entries)
		tn.disk.snap.Meta.ConfState = ConfState{Voters: slices.Clone(c.ids)}
		c.nodes[id] = tn
		c.start(id)
	}
	return c
}

// start builds node id from its disk, as after a crash: the state machine is
// volatile and restarts from the snapshot image.
func (c *cluster) start(id uint64) {
	c.t.Helper()
	tn := c.nodes[id]
	tn.sm = nil
	if len(tn.disk.snap.Data) > 0 {
		if err := json.Unmarshal(tn.disk.snap.Data, &tn.sm); err != nil {
			c.t.Fatalf("node %d: bad snapshot image: %v", id, err)
		}
	}
	st := InitialState{
		HardState: tn.disk.hs,
		Snapshot:  tn.disk.snap.Meta,
		Entries:   slices.Clone(tn.disk.ents),
		Applied:   tn.applied(),
	}
	n, err := NewNode(tn.cfg, st)
	if err != nil {
		c.t.Fatalf("node %d cannot start from its disk: %v", id, err)
	}
	tn.n = n
}

// crash stops node id; the writes its disk had not finished are lost.
func (c *cluster) crash(id uint64) {
	c.nodes[id].n = nil
	c.nodes[id].writes = nil
	c.nodes[id].reports = nil
}

// restart crashes node id and starts it again from its disk.
func (c *cluster) restart(id uint64) {
	c.t.Helper()
	c.crash(id)
	c.start(id)
}

func (c *cluster) node(id uint64) *Node { return c.nodes[id].n }

func (c *cluster) status(id uint64) Status { return c.nodes[id].n.Status() }

// filter installs f on the link from -> to (nil removes it).
func (c *cluster) filter(from, to uint64, f func(Message) bool) {
	if f == nil {
		delete(c.filters, [2]uint64{from, to})
		return
	}
	c.filters[[2]uint64{from, to}] = f
}

func dropAll(Message) bool { return true }

// cut drops every message between a and b, both ways.
func (c *cluster) cut(a, b uint64) {
	c.filter(a, b, dropAll)
	c.filter(b, a, dropAll)
}

// isolate cuts id off from every other node.
func (c *cluster) isolate(id uint64) {
	for _, o := range c.ids {
		if o != id {
			c.cut(id, o)
		}
	}
}

func (c *cluster) heal() { c.filters = map[[2]uint64]func(Message) bool{} }

func (c *cluster) route(m Message) {
	c.sent = append(c.sent, m)
	if f := c.filters[[2]uint64{m.From, m.To}]; f != nil && f(m) {
		return
	}
	c.queue = append(c.queue, m)
}

// handleReady handles one Ready of node id with the shared driver step,
// checking as it goes. It reports whether there was one.
func (c *cluster) handleReady(id uint64) bool {
	c.t.Helper()
	tn := c.nodes[id]
	return handleReady(c.t, tn.n, clusterDriver{c: c, tn: tn})
}

// clusterDriver is the cluster's readyDriver for one node: an in-memory
// disk and state machine, the FIFO router, and no crashes in a Ready.
type clusterDriver struct {
	c  *cluster
	tn *testNode
}

func (d clusterDriver) send(msgs []Message) {
	c, tn := d.c, d.tn
	c.t.Helper()
	for _, m := range msgs {
		if m.From != tn.id {
			c.t.Fatalf("node %d sends a message from %d", tn.id, m.From)
		}
		if m.Type == MsgVoteResp && !m.Reject && (tn.disk.hs.Term != m.Term || tn.disk.hs.Vote != m.To) {
			c.t.Fatalf("node %d grants its vote in term %d to %d, but its disk holds %+v", tn.id, m.Term, m.To, tn.disk.hs)
		}
		if m.Type == MsgSnap {
			var err error
			if m, err = tn.disk.withImage(m); err != nil {
				c.t.Fatalf("node %d %v", tn.id, err)
			}
		}
		c.route(m)
	}
}

func (d clusterDriver) apply(e Entry) {
	c, tn := d.c, d.tn
	c.t.Helper()
	if e.Index != tn.applied()+1 {
		c.t.Fatalf("node %d applies %d after %d", tn.id, e.Index, tn.applied())
	}
	if !tn.disk.holds(e) {
		c.t.Fatalf("node %d applies entry %d (term %d) that is not durable", tn.id, e.Index, e.Term)
	}
	tn.sm = append(tn.sm, e)
}

func (d clusterDriver) install(s Snapshot) {
	d.c.t.Helper()
	var sm []Entry
	if err := json.Unmarshal(s.Data, &sm); err != nil || uint64(len(sm)) != s.Meta.Index {
		d.c.t.Fatalf("node %d: snapshot %d image holds %d entries (%v)", d.tn.id, s.Meta.Index, len(sm), err)
	}
	d.tn.sm = sm
}

func (d clusterDriver) persist(rd Ready) {
	d.c.t.Helper()
	if rd.ConfState != nil {
		d.tn.confs = append(d.tn.confs, *rd.ConfState)
	}
	if err := d.tn.disk.write(rd); err != nil {
		d.c.t.Fatalf("node %d: %v", d.tn.id, err)
	}
}

func (d clusterDriver) queue(w pendingWrite) { d.tn.writes = append(d.tn.writes, w) }

func (d clusterDriver) drain() bool {
	d.c.t.Helper()
	d.c.completeWrites(d.tn.id, len(d.tn.writes))
	return true
}

func (clusterDriver) crash(crashPoint) bool { return false }

func (d clusterDriver) answer(rs ReadState) { d.tn.reads = append(d.tn.reads, rs) }

func (d clusterDriver) applied() uint64 { return d.tn.applied() }

func (d clusterDriver) failf(format string, args ...any) {
	d.c.t.Helper()
	d.c.t.Fatalf(format, args...)
}

// deliver hands the queued messages to their nodes (each followed by its
// Ready); messages they answer with are queued for the next round.
func (c *cluster) deliver() bool {
	c.t.Helper()
	msgs := c.queue
	c.queue = nil
	for _, m := range msgs {
		tn := c.nodes[m.To]
		if tn == nil || tn.n == nil {
			continue
		}
		c.delivered = append(c.delivered, m)
		if err := tn.n.Step(m); err != nil {
			c.t.Fatalf("node %d refused %v from %d: %v", m.To, m.Type, m.From, err)
		}
		c.handleReady(m.To)
	}
	return len(msgs) > 0
}

// completeWrites makes node id's k oldest queued writes durable, in order
// (see completeWrite), and reports them unless the node's reports are held.
// It reports whether there was one.
func (c *cluster) completeWrites(id uint64, k int) bool {
	c.t.Helper()
	tn := c.nodes[id]
	k = min(k, len(tn.writes))
	for range k {
		w := tn.writes[0]
		tn.writes = tn.writes[1:]
		completeWrite(clusterDriver{c: c, tn: tn}, w)
		tn.reports = append(tn.reports, w)
	}
	if !tn.holdReports {
		c.reportWrites(id, len(tn.reports))
	}
	return k > 0
}

// reportWrites reports node id's k oldest durable writes to it, in order
// (see reportWrite). It reports whether there was one.
func (c *cluster) reportWrites(id uint64, k int) bool {
	tn := c.nodes[id]
	k = min(k, len(tn.reports))
	for _, w := range tn.reports[:k] {
		reportWrite(tn.n, w)
	}
	tn.reports = tn.reports[k:]
	return k > 0
}

// hop handles every pending Ready and delivers what was queued: one network
// hop.
func (c *cluster) hop() {
	c.t.Helper()
	for _, id := range c.ids {
		c.handleReady(id)
	}
	c.deliver()
}

// stabilize runs Ready -> persist -> send -> apply -> Advance and delivery
// (and completes and reports the async writes of nodes whose disk or
// reports are not held) until nothing is left to do. Time does not pass.
func (c *cluster) stabilize() {
	c.t.Helper()
	for i := 0; ; i++ {
		if i > 10000 {
			c.t.Fatalf("the cluster does not quiesce")
		}
		busy := false
		for _, id := range c.ids {
			if c.handleReady(id) {
				busy = true
			}
			if tn := c.nodes[id]; !tn.holdWrites && c.completeWrites(id, len(tn.writes)) {
				busy = true
			}
			if tn := c.nodes[id]; !tn.holdReports && c.reportWrites(id, len(tn.reports)) {
				busy = true
			}
		}
		if c.deliver() {
			busy = true
		}
		if !busy {
			return
		}
	}
}

// tick advances the clocks of the given nodes by one tick and stabilizes.
func (c *cluster) tick(ids ...uint64) {
	c.t.Helper()
	for _, id := range ids {
		if n := c.nodes[id].n; n != nil {
			n.Tick()
		}
	}
	c.stabilize()
}

// tickAll ticks every live node k times, stabilizing after each tick.
func (c *cluster) tickAll(k int) {
	c.t.Helper()
	for range k {
		c.tick(c.ids...)
	}
}

// campaign makes node id campaign now and stabilizes.
func (c *cluster) campaign(id uint64) {
	c.t.Helper()
	c.node(id).Campaign()
	c.stabilize()
}

// elect makes node id campaign and requires that it wins.
func (c *cluster) elect(id uint64) {
	c.t.Helper()
	c.campaign(id)
	if st := c.status(id); st.Role != Leader {
		c.t.Fatalf("node %d did not win its election: %+v", id, st)
	}
}

// propose proposes data at node id and stabilizes; it returns the index.
func (c *cluster) propose(id uint64, data ...string) uint64 {
	c.t.Helper()
	bs := make([][]byte, len(data))
	for i, d := range data {
		bs[i] = []byte(d)
	}
	idx, _, err := c.node(id).Propose(bs...)
	if err != nil {
		c.t.Fatalf("node %d: Propose: %v", id, err)
	}
	c.stabilize()
	return idx
}

// leaders lists the live nodes that believe they lead.
func (c *cluster) leaders() []uint64 {
	var out []uint64
	for _, id := range c.ids {
		if n := c.nodes[id].n; n != nil && n.Status().Role == Leader {
			out = append(out, id)
		}
	}
	return out
}

// count counts the messages in msgs that match pred.
func count(msgs []Message, pred func(Message) bool) int {
	k := 0
	for _, m := range msgs {
		if pred(m) {
			k++
		}
	}
	return k
}

// requireSameLog checks that node id's log, in memory and on disk, is the
// leader's.
func (c *cluster) requireSameLog(id, leader uint64) {
	c.t.Helper()
	want := logEntries(c.node(leader))
	if got := logEntries(c.node(id)); !slices.EqualFunc(got, want, entryEqual) {
		c.t.Fatalf("node %d's log terms %v differ from leader %d's %v", id, termsOf(got), leader, termsOf(want))
	}
	if got := c.nodes[id].disk.ents; !slices.EqualFunc(got, want, entryEqual) {
		c.t.Fatalf("node %d's disk log terms %v differ from leader %d's %v", id, termsOf(got), leader, termsOf(want))
	}
}

func entryEqual(a, b Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && string(a.Data) == string(b.Data)
}

// compact captures node id's state machine up to index and compacts its log
// there, as a driver taking a snapshot does.
func (c *cluster) compact(id, index uint64) error {
	tn := c.nodes[id]
	meta, err := tn.n.Compact(index)
	if err != nil {
		return err
	}
	img, err := json.Marshal(tn.sm[:index])
	if err != nil {
		c.t.Fatal(err)
	}
	tn.disk.compact(meta, img)
	return nil
}
