package persist

import "github.com/raftkv/raftkv/raftlogic"

// The crash-safe split write: a Save whose plan Badger refuses as one
// transaction is written in three, each leaving a log Load accepts.

// writeSplit writes a plan too big for one transaction in three steps, each
// durable before the next starts, ordered so that a crash between any two
// leaves the old log, the old log cut back to what survives, or the new log,
// never a mix:
//
//  1. the cut: the new end (the last index that survives unchanged), the
//     snapshot if any, and the hard state with its commit index clamped to
//     that end;
//  2. the new entries written and stale ones deleted, all beyond that end,
//     where Load does not look (a crash here leaves leftovers above the
//     last index, which Load ignores and the next Save deletes);
//  3. the new end and the whole hard state, which make them the log.
//
// Step 2 alone may take several transactions (b's TxnWriter commits
// whenever one is full); steps 1 and 3 are a few records each. prev is the
// stored hard state. stepDone, when set (by tests), runs after steps 1 and
// 2; an error stops the write there, as a crash would.
func (p *plan) writeSplit(b *batch, prev raftlogic.HardState, stepDone func(int) error) error {
	if stepDone == nil {
		stepDone = func(int) error { return nil }
	}
	// Step 1: cut the log back to what survives. The hard state goes now
	// too, so that the snapshot's term never exceeds the stored term (a new
	// term or vote may be persisted early: nothing was sent on it yet), but
	// its commit index must not point past the cut.
	if p.install {
		if err := b.putSnapshotMeta(p.snap); err != nil {
			return err
		}
	}
	if err := b.putLast(p.keep); err != nil {
		return err
	}
	hs := p.hs
	hs.Commit = min(hs.Commit, p.keep)
	cutHS := hs != prev
	if cutHS {
		if err := b.putHardState(hs); err != nil {
			return err
		}
	}
	if err := b.commit(); err != nil {
		return err
	}
	if err := stepDone(1); err != nil {
		return err
	}
	// Step 2: everything beyond the cut, where Load does not look.
	if err := p.writeEntries(b); err != nil {
		return err
	}
	if err := b.commit(); err != nil {
		return err
	}
	if err := stepDone(2); err != nil {
		return err
	}
	// Step 3: the new end and the whole hard state make it the log.
	if err := b.putLast(p.last); err != nil {
		return err
	}
	if p.writeHS || cutHS {
		if err := b.putHardState(p.hs); err != nil {
			return err
		}
	}
	return b.commit()
}
