package persist

import (
	"errors"
	"fmt"
	"io/fs"

	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Space reclamation. Badger keeps values of 1 KiB and more (OpenDB's
// valueThreshold) in its value log and only a pointer in its LSM tree.
// Deleting or overwriting such a value leaves it in the value log until a
// value-log GC rewrites the file holding it, and Badger picks files for that from statistics it gathers only when
// it compacts its LSM tree. A database that mostly receives large values
// (a log of big entries, a state machine overwriting big values) barely
// grows its LSM tree, never compacts, and its value log grows without
// bound: 100 overwrites of one 1 MiB value kept 100 MiB on disk for 1 MiB
// of data. Collector runs the GC and, when the value log keeps growing
// anyway, flushes the memtables so that Badger compacts and learns what is
// garbage.

// gcFlushPrefix holds the one marker key Collector writes and drops to make
// Badger flush its memtables (see Collector.flush). It is outside every
// prefix persist and kvstate use for data.
const gcFlushPrefix = "g/flush"

// gcDiscardRatio is the share of a value-log file that must be garbage for
// the GC to rewrite it; Badger's recommendation (a lifetime value-log write
// amplification of 2).
const gcDiscardRatio = 0.5

// gcMaxRewrites bounds the files one Collect rewrites, so that a node
// stopping is not held up long by a collection in progress.
const gcMaxRewrites = 16

// Collector reclaims the space of deleted and overwritten values in one
// database. It blocks while it works; run it off any latency-critical
// goroutine. It holds off the database's writers while it rewrites a file
// or flushes the memtables; both are rare (only value-log files with at
// least half garbage are rewritten, and only values of 1 KiB or more go
// there) and short. It is not safe for concurrent use.
type Collector struct {
	db *badger.DB
	// pause runs f with the database's writers held off: Badger refuses
	// writes while it flushes its memtables for a dropped prefix, and a
	// refused commit would stop the node.
	pause func(f func() error) error
	// Values log growth since the last forced flush, and when that was.
	flushedAt   int64
	lastFlush   time.Time
	minInterval time.Duration
}

// NewCollector returns a Collector for db. pause must run its argument
// while no other goroutine commits to db (LogStore.PauseWrites,
// kvstate.State.PauseWrites).
func NewCollector(db *badger.DB, pause func(f func() error) error) *Collector {
	return &Collector{db: db, pause: pause, minInterval: time.Second}
}

// GCReport says what one Collect did.
type GCReport struct {
	Rewrites int   // value-log files rewritten
	Flushed  bool  // whether the memtables were flushed to learn more
	Before   int64 // value-log bytes on disk before
	After    int64 // and after
}

// Collect runs value-log GC until it finds nothing to rewrite. If the
// value log then still holds four files' worth more than after the last
// forced flush (and that was at least a second ago), it flushes the
// memtables, which makes Badger compact and record what is garbage, and
// runs the GC again.
func (c *Collector) Collect() (GCReport, error) {
	var r GCReport
	var err error
	if r.Before, err = valueLogBytes(c.db); err != nil {
		return r, err
	}
	n, err := c.rewrite()
	r.Rewrites += n
	if err != nil {
		return r, err
	}
	vlog, err := valueLogBytes(c.db)
	if err != nil {
		return r, err
	}
	if vlog-c.flushedAt > 4*c.db.Opts().ValueLogFileSize && time.Since(c.lastFlush) >= c.minInterval {
		if err := c.pause(c.flush); err != nil {
			return r, err
		}
		r.Flushed, c.lastFlush = true, time.Now()
		n, err := c.rewrite()
		r.Rewrites += n
		if err != nil {
			return r, err
		}
		if vlog, err = valueLogBytes(c.db); err != nil {
			return r, err
		}
		c.flushedAt = vlog
	}
	r.After = vlog
	return r, nil
}

// rewrite runs Badger's value-log GC until it rewrites nothing. Each step
// runs with the writers paused: Badger v4.9.6 reads the memtable's highest
// version at the start of a rewrite without the lock its writer holds (a
// data race the race detector reports; harmless in effect, since a stale
// value only keeps more versions, but not something to ship).
func (c *Collector) rewrite() (int, error) {
	for n := 0; n < gcMaxRewrites; n++ {
		var err error
		_ = c.pause(func() error { err = c.db.RunValueLogGC(gcDiscardRatio); return nil })
		switch {
		case errors.Is(err, badger.ErrNoRewrite):
			return n, nil
		case errors.Is(err, badger.ErrRejected):
			return n, nil // closing, or another GC runs
		case err != nil:
			return n, fmt.Errorf("persist: value-log GC in %s: %w", c.db.Opts().Dir, err)
		}
	}
	return gcMaxRewrites, nil
}

// flush makes Badger write its memtables to tables and compact them:
// dropping a prefix does that, and Badger offers no other way. The marker
// key guarantees the prefix is not empty (Badger skips an empty one). The
// caller holds off every writer (see NewCollector).
func (c *Collector) flush() error {
	err := c.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(gcFlushPrefix), []byte{1}) })
	if err == nil {
		err = c.db.DropPrefix([]byte(gcFlushPrefix))
	}
	if err != nil {
		return fmt.Errorf("persist: flush memtables of %s: %w", c.db.Opts().Dir, err)
	}
	return nil
}

// valueLogBytes is the disk space the value-log files of db take.
func valueLogBytes(db *badger.DB) (int64, error) {
	return diskUsage(db.Opts().ValueDir, func(name string) bool { return strings.HasSuffix(name, ".vlog") })
}

// DiskUsage returns the disk space taken by the files under dir (what is
// allocated, not the apparent size: Badger's files are sparse).
func DiskUsage(dir string) (int64, error) {
	return diskUsage(dir, func(string) bool { return true })
}

func diskUsage(dir string, match func(name string) bool) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked: a compaction or GC
			}
			return err
		}
		if d.IsDir() || !match(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += allocated(info)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("persist: disk usage of %s: %w", dir, err)
	}
	return total, nil
}
