package actors

import (
	"errors"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
)

// logSizes follows the data size of every entry in the node's log, from
// the snapshot on, so that compaction can bound the log's bytes as well as
// its length: raftlogic keeps the whole log in memory, and 10,000 entries
// of 1 MiB values would be 10 GiB.
type logSizes struct {
	snap  uint64  // the log starts after this index
	sizes []int64 // sizes[i] is the size of entry snap+1+i
	total int64
}

// reset starts over from a snapshot at index snap followed by ents.
func (l *logSizes) reset(snap uint64, ents []raftlogic.Entry) {
	l.snap, l.sizes, l.total = snap, l.sizes[:0], 0
	l.append(ents)
}

// append records entries written to the log; they replace any stored from
// their first index on (a follower's log cut by a new leader).
func (l *logSizes) append(ents []raftlogic.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	if first <= l.snap {
		return // raftlogic never writes below the snapshot
	}
	if keep := first - l.snap - 1; keep < uint64(len(l.sizes)) {
		for _, s := range l.sizes[keep:] {
			l.total -= s
		}
		l.sizes = l.sizes[:keep]
	}
	for _, e := range ents {
		s := entrySize(e)
		l.sizes = append(l.sizes, s)
		l.total += s
	}
}

// compact forgets the entries up to and including index.
func (l *logSizes) compact(index uint64) {
	if index <= l.snap {
		return
	}
	n := min(index-l.snap, uint64(len(l.sizes)))
	for _, s := range l.sizes[:n] {
		l.total -= s
	}
	l.sizes = append(l.sizes[:0], l.sizes[n:]...)
	l.snap = index
}

// entrySize is what an entry costs in memory, roughly: its data and a
// fixed overhead.
func entrySize(e raftlogic.Entry) int64 { return int64(len(e.Data)) + 48 }

// compactionPoint decides whether to compact the log, given the state
// machine's durable index (n.durable), and up to which index. It compacts
// once the log holds SnapshotEntries durably applied entries or
// SnapshotBytes of entries, and keeps the newest durably applied entries
// for followers briefly behind: at most CatchUpEntries of them and at most
// half of SnapshotBytes. It never passes the durable index: entries
// applied but not committed are lost by a crash, and must then be applied
// again from the log.
func (n *nodeActor) compactionPoint() (uint64, bool) {
	l := &n.sizes
	durable := n.durable
	if durable <= l.snap {
		return 0, false
	}
	if durable < l.snap+n.cfg.SnapshotEntries && l.total < n.cfg.SnapshotBytes {
		return 0, false
	}
	upto := durable - min(n.cfg.CatchUpEntries, durable-l.snap)
	// Entries (upto, durable] are kept; drop the oldest of them while they
	// weigh more than half the budget.
	var kept int64
	hi := min(durable-l.snap, uint64(len(l.sizes)))
	for i := upto - l.snap; i < hi; i++ {
		kept += l.sizes[i]
	}
	for upto < durable && kept > n.cfg.SnapshotBytes/2 {
		upto++
		if i := upto - l.snap - 1; i < uint64(len(l.sizes)) {
			kept -= l.sizes[i]
		}
	}
	return upto, upto > l.snap
}

// maybeCompact discards the log behind the state machine once it has grown
// past its limits (see compactionPoint). The state machine's own storage is
// the snapshot: a follower further behind than the kept entries is sent a
// fresh image of it. (Not while a received snapshot installs: the log is
// about to be replaced; see the installing state.)
func (n *nodeActor) maybeCompact(ctx actor.Context) {
	upto, ok := n.compactionPoint()
	if !ok {
		return
	}
	// The log entries may be deleted only once the state they produced is
	// durable: compactionPoint stays at or below n.durable, which the
	// apply actor reports after kvstate's commit (synced when it returns).
	meta, err := n.raft.Compact(upto)
	if errors.Is(err, raftlogic.ErrConfUnknown) {
		// A node that joined from the start of the log knows no
		// configuration before its first configuration entry; it compacts
		// once the point passes it.
		n.log.Debug("compaction deferred", "index", upto, "err", err)
		return
	}
	if err != nil {
		n.log.Warn("compaction refused", "index", upto, "err", err)
		return
	}
	// The stored metadata takes raftlogic's configuration as of the index
	// (with membership changes it may differ from the stored one), which
	// is what a restart must start from.
	if err := n.storage.logStore.SaveSnapshotMeta(meta); err != nil {
		n.log.Error("compact log", "err", err)
		return
	}
	n.sizes.compact(meta.Index)
	n.log.Debug("log compacted", "index", meta.Index, "kept_bytes", n.sizes.total)
	// Compaction deleted entries, and the applied entries overwrote and
	// removed values: now is when there is space to reclaim.
	ctx.Send(n.gc, &collectGarbage{})
}
