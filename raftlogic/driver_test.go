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
	d.persist(rd)
	if d.crash(crashPersisted) {
		return true
	}
	d.send(late)
	for _, rs := range rd.ReadStates {
		d.answer(rs)
	}
	n.Advance(rd)
	if got := n.Status().Applied; got != d.applied() {
		d.failf("node %d: raftlogic says applied %d, state machine applied %d", n.id, got, d.applied())
	}
	return true
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
	i := int(e.Index) - int(d.snap.Meta.Index) - 1
	return i >= 0 && i < len(d.ents) && d.ents[i].Term == e.Term
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
