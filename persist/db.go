package persist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Option adjusts OpenDB or NewLogStore; each ignores what does not concern
// it.
type Option func(*dbConfig)

type dbConfig struct {
	largest     int
	logger      *slog.Logger
	inMemory    bool
	tune        []func(badger.Options) badger.Options
	diskReserve int64
}

// WithLogger sets where warnings go (by default nowhere: a node passes its
// own logger, and this package never reaches for a global one). For OpenDB,
// that is Badger's warnings and errors; its informational chatter goes to l
// at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(c *dbConfig) { c.logger = l }
}

// WithDiskReserve makes LogStore.Save refuse, with ErrDiskFull and before
// writing anything, a batch that would leave less than reserve bytes free on
// the database's filesystem (see CheckSpace). 0, the default, turns the
// check off.
func WithDiskReserve(reserve int64) Option {
	return func(c *dbConfig) { c.diskReserve = reserve }
}

// WithLargestValue tells OpenDB the largest value it will be asked to store
// in one key (a log entry, a user value with its record header). Badger
// refuses a value larger than its value-log file size, so OpenDB makes the
// files at least that large (plus room for the record's framing).
func WithLargestValue(n int) Option {
	return func(c *dbConfig) { c.largest = n }
}

// withInMemory keeps the whole database in memory, for tests that do not
// care about durability. dir must then be empty. Sync is a no-op, so nothing
// such a database holds survives Close.
func withInMemory(on bool) Option {
	return func(c *dbConfig) { c.inMemory = on }
}

// WithBadgerOptions lets the caller change any Badger option after OpenDB
// has applied its own. It is an escape hatch for tests (of this package and
// of the ones that open a node's databases: read-only inspection, smaller
// files), which is why it is exported: the defaults are chosen so that
// several nodes fit in one small process, and turning SyncWrites off breaks
// every durability promise this package and kvstate make.
func WithBadgerOptions(f func(badger.Options) badger.Options) Option {
	return func(c *dbConfig) { c.tune = append(c.tune, f) }
}

// Defaults for one node's database. A node's working set is its recent log
// and its key-value data; Badger's defaults (64 MiB memtables, five of them,
// 256 MiB block cache, 1 GiB value log files) are sized for a dedicated
// server. Every buffer Badger allocates is Go heap, and the Go collector
// lets the heap grow to twice what is live, so each MiB here costs about
// two of resident memory, per database, two databases per node.
const (
	// memTableSize bounds a memtable's arena (allocated whole, about 1.3
	// times this) and the table a flush builds from it, and with
	// baseTableSize most of Badger's heap: 16 MiB memtables (with 2 MiB
	// tables) made a loaded `raftkv serve` peak at 300-350 MB and an
	// embedded 3-node cluster at 1.1-1.2 GB; 1 MiB ones at about 90-110 MB
	// and 190-200 MB (256-byte values, 64 clients), with no measurable
	// change in CPU per write. It also fixes the largest transaction Badger
	// accepts (15% of it: about 150 KiB, or about 1,600 writes): LogStore
	// and kvstate split bigger batches themselves, at the price of one more
	// sync per transaction, and valueThreshold keeps every single write far
	// below it.
	memTableSize = 1 << 20
	// baseTableSize is the size of the tables compactions write. Badger
	// starts each table builder with a buffer of twice this and keeps up to
	// eight builders' buffers per database for reuse, so it bounds that
	// pool; it must not be below half of memTableSize, or the buffer of the
	// builder a flush uses outgrows it, doubles, and the pool keeps the
	// doubled one (512 KiB tables with 2 MiB memtables peaked higher than
	// 2 MiB tables).
	baseTableSize = 1 << 20
	// valueThreshold: values this large or larger go to the value log, and
	// only a pointer to them into the LSM tree. Badger's default (1 MiB)
	// kept such values in memtables and tables, so each byte was rewritten
	// by every compaction and the builders grew to hold them: at 16 KiB
	// values a serve process peaked at 1.6-1.8 GB and spent 800 µs of CPU
	// per write; with values in the value log, 0.5-0.6 GB (mostly the value
	// log's mapped pages, which the kernel can drop) and 650 µs. 1 KiB was
	// Badger v2's default; smaller values stay in the tree, where they cost
	// less than a value-log lookup and value-log GC.
	valueThreshold = 1 << 10
	numMemtables   = 2
	// No compression: Raft log entries and user values are mostly what
	// clients sent, often already compressed or random, and compressing
	// cost a second copy of every table being built (the heap profile's
	// largest item after the memtables) and a decompressed copy of every
	// block read. Without compression (and encryption) Badger reads blocks
	// straight from the memory-mapped table, so a block cache would only
	// hold a second copy of pages the kernel caches anyway, and the index
	// cache is never consulted (Badger uses it only for encrypted tables).
	blockCacheSize = 0
	indexCacheSize = 0
	// valueLogFileSize is small so that value-log GC (which never touches
	// the file being written) can reclaim space in fine steps.
	valueLogFileSize = 16 << 20
	// valueLogSlack is room in a value-log file beyond its largest value,
	// for the entry's key and framing.
	valueLogSlack = 1 << 20
	// numCompactors is Badger's minimum (it refuses 1; 0 would stop
	// compaction).
	numCompactors = 2
)

// OpenDB opens (creating if needed) a Badger database in dir, tuned for a
// RaftKV node: a node opens two, one for its Raft log (LogDir, used by
// LogStore) and one for its state machine (StateDir, used by kvstate). The
// caller owns the database and closes it after its users are done.
//
// Every transaction commit is durable when it returns (SyncWrites): Badger
// then syncs the write-ahead log of the memtable the commit went to, and the
// value log, before answering. Syncing once per batch with DB.Sync instead
// is not enough: DB.Sync reaches only the active memtable, and one that
// filled up and was rotated out during the batch stays in the page cache
// until its background flush ends, so a power cut could punch a hole in an
// acknowledged log. Group commit comes from the callers: LogStore.Save
// writes a whole Raft Ready in one transaction, kvstate the entries applied
// since its last commit (its Flush, every 20 ms or so: see actors'
// stateFlushInterval).
func OpenDB(dir string, opts ...Option) (*badger.DB, error) {
	cfg := dbConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.inMemory && dir != "":
		return nil, errors.New("persist: an in-memory database takes no directory")
	case !cfg.inMemory && dir == "":
		return nil, errors.New("persist: database directory is empty")
	}
	if !cfg.inMemory {
		if err := MkdirDurable(dir); err != nil {
			return nil, err
		}
		if err := removeEmptyLogFiles(dir, cfg.logger); err != nil {
			return nil, err
		}
	}
	bo := badger.DefaultOptions(dir).
		WithInMemory(cfg.inMemory).
		WithSyncWrites(true).
		WithMemTableSize(memTableSize).
		WithBaseTableSize(baseTableSize).
		WithValueThreshold(valueThreshold).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(max(valueLogFileSize, int64(cfg.largest)+valueLogSlack)).
		WithNumCompactors(numCompactors).
		WithCompression(options.None).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{cfg.logger.With("component", "badger")})
	if cfg.inMemory {
		bo = bo.WithDir("").WithValueDir("")
	}
	for _, f := range cfg.tune {
		bo = f(bo)
	}
	db, err := openBadger(bo)
	if err != nil {
		return nil, fmt.Errorf("persist: open database in %q: %w", dir, err)
	}
	return db, nil
}

// removeEmptyLogFiles deletes zero-length memtable logs (.mem) and value
// logs (.vlog) from dir. Badger creates such a file and sizes it in two
// steps; a crash between them leaves an empty file, which Badger v4.9.6
// then refuses to open ("while opening fid: 1 err: Create a new file"), so
// the node could never start again. An empty file holds nothing, so
// removing it loses nothing.
func removeEmptyLogFiles(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("persist: read %s: %w", dir, err)
	}
	removed := false
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".vlog")) {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("persist: remove the empty file %s left by a crash: %w", name, err)
		}
		log.Warn("removed an empty Badger file left by a crash", "dir", dir, "file", name)
		removed = true
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// openBadger turns the one panic Badger raises on bad options (compression
// without a block cache) into an error, since WithBadgerOptions can cause it.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("invalid options: %v", r)
		}
	}()
	return badger.Open(bo)
}

// badgerLogger adapts Badger's printf-style logger to slog. Badger ends its
// messages with newlines, which slog handlers would keep.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }
