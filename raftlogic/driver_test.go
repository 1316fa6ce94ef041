package raftlogic

import (
	"fmt"
	"slices"
	"testing"
)

// The one driver step the tests share. The paper tests' cluster
// (helpers_test.go) and the simulation (sim_test.go) both handle a Ready
// through handleReady, so the order they check is the order RaftKV runs:
// actors.nodeActor.handleReady and finishReady. That order, and why each
// departure from the plain one is safe, is "The Ready contract" in doc.go.
//
// The actor itself does not call this: it installs a snapshot
// asynchronously (the rest of the Ready waits for the apply actor's answer
// while the node keeps taking input) and fails the node on a storage error.
// A synchronous step exported for it would have to be cut in two at the
// install, which is the actor's own business.

// crashPoint is where, within one Ready, a driver's process may die. A
// crash before the first point loses nothing; after Advance, nothing is
// left to lose.
type crashPoint uint8

const (
	// crashUnpersisted: the leader's early messages are sent, the committed
	// entries applied and a received snapshot installed; nothing of this
	// Ready is on disk.
	crashUnpersisted crashPoint = iota + 1
	// crashPersisted: the Ready is on disk; the messages that depend on
	// that have not left.
	crashPersisted
)

// readyDriver is a test harness's side of one node: the disk, the network
// and the state machine a Ready is handled with, each hook checking what it
// is handed.
type readyDriver interface {
	// send puts messages on the network (attaching a MsgSnap's image).
	send(msgs []Message)
	// apply applies one committed entry to the state machine.
	apply(e Entry)
	// install replaces the state machine with a received snapshot's image.
	install(s Snapshot)
	// persist writes the Ready's snapshot, entries and hard state to disk;
	// it may skip a Ready that Ready.MustSync says needs no write.
	persist(rd Ready)
	// queue hands an async-mode Ready's write, and the messages that wait
	// for it, to the node's writer, which completes writes in the order
	// handed (completeWrite) and reports them (reportWrite) whenever the
	// harness chooses.
	queue(w pendingWrite)
	// drain completes every write queued, in order. It reports false if
	// the node crashed meanwhile.
	drain() bool
	// crash reports whether the node dies at p; if so the harness has
	// already dropped it, and the Ready is never advanced.
	crash(p crashPoint) bool
	// answer takes a read's answer.
	answer(rs ReadState)
	// applied is the state machine's applied index.
	applied() uint64
	// failf reports a broken rule and does not return.
	failf(format string, args ...any)
}

// handleReady handles one Ready of n, if it has one, in the node actor's
// order: the leader's early messages, committed entries (durable already),
// a received snapshot, then the write, then the other messages and the
// reads, then Advance. It reports whether there was a Ready. tb, when not
// nil, marks it as a test helper, so a failed check names the test's line;
// the simulation passes nil (it reports a failure with its seed instead).
//
// With Config.AsyncStorageWrites the write and the messages after it are
// queued instead, and Advance follows at once; a Ready carrying a snapshot
// first waits for every queued write, then is written in place, as the
// Ready contract asks.
func handleReady(tb testing.TB, n *Node, d readyDriver) bool {
	if tb != nil {
		tb.Helper()
	}
	if n == nil || !n.HasReady() {
		return false
	}
	rd := n.Ready()
	early, late := rd.SplitMessages()
	d.send(early)
	for _, e := range rd.CommittedEntries {
		d.apply(e)
	}
	if !rd.Snapshot.IsEmpty() {
		d.install(rd.Snapshot)
	}
	if d.crash(crashUnpersisted) {
		return true
	}
	switch {
	case n.cfg.AsyncStorageWrites && rd.Snapshot.IsEmpty():
		d.queue(pendingWrite{rd: rd, late: late})
	case n.cfg.AsyncStorageWrites && !d.drain():
		return true
	default:
		d.persist(rd)
		if d.crash(crashPersisted) {
			return true
		}
		d.send(late)
	}
	for _, rs := range rd.ReadStates {
		d.answer(rs)
	}
	n.Advance(rd)
	if got := n.Status().Applied; got != d.applied() {
		d.failf("node %d: raftlogic says applied %d, state machine applied %d", n.id, got, d.applied())
	}
	return true
}

// pendingWrite is an async-mode Ready handed to the node's writer and not
// yet durable: its hard state and entries (never a snapshot: a Ready with
// one is written in place), and the messages that must wait for them.
type pendingWrite struct {
	rd   Ready
	late []Message
}

// completeWrite makes ws durable, as one write (a writer may merge the
// writes queued while it synced), then sends the messages that waited for
// them, as an async driver's writer does once its sync returns. The caller
// completes writes in the order queued, and reports them to the node
// (reportWrite) in the same order, at once or later: a report is a message
// to the node, and other input may overtake it. It reports false if the
// node crashed in between.
func completeWrite(d readyDriver, ws ...pendingWrite) bool {
	for _, w := range ws {
		d.persist(w.rd)
	}
	if d.crash(crashPersisted) {
		return false
	}
	for _, w := range ws {
		d.send(w.late)
	}
	return true
}

// reportWrite tells n that w, and every write before it, is durable. A
// write without entries is not reported.
func reportWrite(n *Node, w pendingWrite) {
	if k := len(w.rd.Entries); k > 0 {
		last := w.rd.Entries[k-1]
		n.StableTo(last.Index, last.Term)
	}
}

// memDisk is a node's stable storage in the tests: what survives a crash.
type memDisk struct {
	hs   HardState
	snap Snapshot
	// ents is the log after snap.Meta.Index.
	ents []Entry
}

// write persists rd as step 1 of the Ready contract says: the snapshot,
// then the entries (replacing any stored from the same index on), then the
// hard state. It refuses entries that would leave a gap.
func (d *memDisk) write(rd Ready) error {
	if !rd.Snapshot.IsEmpty() {
		d.snap = rd.Snapshot
		d.ents = nil
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		keep := int(first) - int(d.snap.Meta.Index) - 1
		if keep < 0 || keep > len(d.ents) {
			return fmt.Errorf("Ready entries start at %d, disk holds (%d, %d]", first, d.snap.Meta.Index, d.snap.Meta.Index+uint64(len(d.ents)))
		}
		d.ents = append(slices.Clone(d.ents[:keep]), rd.Entries...)
	}
	if !rd.HardState.IsEmpty() {
		d.hs = rd.HardState
	}
	return nil
}

// holds reports whether the log on disk holds entry e (its index and term).
func (d *memDisk) holds(e Entry) bool {
	t, ok := d.term(e.Index)
	return ok && e.Index > d.snap.Meta.Index && t == e.Term
}

// term returns the term of the entry at index i on disk, or of the
// snapshot if i is its index; ok is false for any other index.
func (d *memDisk) term(i uint64) (t uint64, ok bool) {
	if i == d.snap.Meta.Index {
		return d.snap.Meta.Term, true
	}
	if i < d.snap.Meta.Index || i-d.snap.Meta.Index > uint64(len(d.ents)) {
		return 0, false
	}
	return d.ents[i-d.snap.Meta.Index-1].Term, true
}

// compact stores a snapshot the driver captured for Node.Compact, which
// returned meta, and drops the log it covers.
func (d *memDisk) compact(meta SnapshotMeta, image []byte) {
	d.ents = slices.Clone(d.ents[meta.Index-d.snap.Meta.Index:])
	d.snap = Snapshot{Meta: meta, Data: image}
}

// withImage attaches the image of the snapshot on disk to a MsgSnap, which
// must name that snapshot: raftlogic sends only the snapshot its log starts
// after, and the driver stored it before.
func (d *memDisk) withImage(m Message) (Message, error) {
	if m.Snapshot.Meta.Index != d.snap.Meta.Index {
		return m, fmt.Errorf("sends snapshot %d but holds %d", m.Snapshot.Meta.Index, d.snap.Meta.Index)
	}
	m.Snapshot.Data = d.snap.Data
	return m, nil
}
