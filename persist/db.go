package persist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Option adjusts OpenDB or NewLogStore; each ignores what does not concern
// it.
type Option func(*dbConfig)

type dbConfig struct {
	largest  int
	logger   *slog.Logger
	inMemory bool
	tune     []func(badger.Options) badger.Options
}

// WithLogger sets where warnings go (default slog.Default()). For OpenDB,
// that is Badger's warnings and errors; its informational chatter goes to l
// at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(c *dbConfig) { c.logger = l }
}

// WithLargestValue tells OpenDB the largest value it will be asked to store
// in one key (a log entry, a user value with its record header). Badger
// refuses a value larger than its value-log file size, so OpenDB makes the
// files at least that large (plus room for the record's framing).
func WithLargestValue(n int) Option {
	return func(c *dbConfig) { c.largest = n }
}

// WithInMemory keeps the whole database in memory, for tests that do not
// care about durability. dir must then be empty. Sync is a no-op, so nothing
// such a database holds survives Close.
func WithInMemory(on bool) Option {
	return func(c *dbConfig) { c.inMemory = on }
}

// WithBadgerOptions lets the caller change any Badger option after OpenDB
// has applied its own. It is an escape hatch: the defaults are chosen so
// that several nodes fit in one small process, and SyncWrites must stay
// false for LogStore's group commit to mean anything.
func WithBadgerOptions(f func(badger.Options) badger.Options) Option {
	return func(c *dbConfig) { c.tune = append(c.tune, f) }
}

// Defaults for one node's database. A node's working set is its recent log
// and its key-value data; Badger's defaults (64 MiB memtables, five of them,
// 256 MiB block cache, 1 GiB value log files) are sized for a dedicated
// server and would put a three-node test cluster far over its memory budget.
const (
	// memTableSize also fixes the largest transaction Badger accepts (15%
	// of it, about 2.4 MiB); LogStore splits bigger batches itself.
	memTableSize     = 16 << 20
	numMemtables     = 2
	blockCacheSize   = 8 << 20
	indexCacheSize   = 4 << 20
	valueLogFileSize = 64 << 20
	// valueLogSlack is room in a value-log file beyond its largest value,
	// for the entry's key and framing.
	valueLogSlack = 1 << 20
	numCompactors = 2
)

// OpenDB opens (creating if needed) the Badger database of one node in dir.
// The persist package (key prefix "r/") and the state machine (kvstate,
// prefixes "k/" and "m/") share it; the caller owns it and closes it after
// both are done.
//
// Writes are not synced by Badger (SyncWrites=false): LogStore.Save calls
// Sync once per batch, which also makes every earlier write durable,
// including the state machine's.
func OpenDB(dir string, opts ...Option) (*badger.DB, error) {
	cfg := dbConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	switch {
	case cfg.inMemory && dir != "":
		return nil, errors.New("persist: an in-memory database takes no directory")
	case !cfg.inMemory && dir == "":
		return nil, errors.New("persist: database directory is empty")
	}
	bo := badger.DefaultOptions(dir).
		WithInMemory(cfg.inMemory).
		WithSyncWrites(false).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(max(valueLogFileSize, int64(cfg.largest)+valueLogSlack)).
		WithNumCompactors(numCompactors).
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
