package raftkv

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/config"
	"github.com/raftkv/raftkv/persist"
)

// Option configures Open.
type Option func(*options) error

type options struct {
	configFile     string
	config         *config.Config
	nodes          []uint64
	logger         *slog.Logger
	dataDir        string
	requestTimeout time.Duration
	metrics        bool
	join           bool
	// readIndexLatency is the metrics hook Open hands to the nodes.
	readIndexLatency func(time.Duration)
	// senderMiddleware injects network faults in tests.
	senderMiddleware []actor.SenderMiddleware
	// storage tunes the nodes' Badger databases in tests.
	storage []persist.Option
	// sessionTTL overrides kvstate's session TTL (in entries) in tests.
	sessionTTL uint64
}

// DefaultRequestTimeout bounds a call whose context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// WithConfigFile reads the configuration from path instead of ./config.yaml;
// the file must exist.
func WithConfigFile(path string) Option {
	return func(o *options) error { o.configFile = path; return nil }
}

// WithConfig uses cfg as the configuration; no file is read. Start from
// config.Default().
func WithConfig(cfg config.Config) Option {
	return func(o *options) error {
		if err := cfg.Validate(); err != nil {
			return err
		}
		o.config = &cfg
		return nil
	}
}

// WithNodes hosts only the given nodes of the configured cluster in this
// process (the rest run elsewhere); the returned DB still reaches the whole
// cluster. Today a process hosts either every node or exactly one.
func WithNodes(ids ...uint64) Option {
	return func(o *options) error {
		if len(ids) == 0 {
			return fmt.Errorf("%w: WithNodes needs at least one node id", ErrInvalidOption)
		}
		o.nodes = ids
		return nil
	}
}

// WithJoin starts the one node this process hosts (WithNodes) as a node
// joining a running cluster: on an empty data directory it records no
// configuration of its own, never campaigns, and serves nothing until the
// cluster adds it (AddLearner, `raftkv member add`), then catches up from
// the leader. The configuration file gives its own addresses and those of
// the cluster's members, so it can answer them. On a data directory that
// already holds its data, it changes nothing: the node follows its data.
func WithJoin() Option {
	return func(o *options) error { o.join = true; return nil }
}

// WithLogger sends all logs (the nodes' and protoactor's) to l. By default
// they go to stderr at the configuration's logLevel.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithDataDir overrides the configuration's persistPath.
func WithDataDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("%w: WithDataDir needs a directory", ErrInvalidOption)
		}
		o.dataDir = dir
		return nil
	}
}

// WithRequestTimeout bounds calls whose context has no deadline (default
// DefaultRequestTimeout).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout must be positive, got %v", ErrInvalidOption, d)
		}
		o.requestTimeout = d
		return nil
	}
}

// WithMetrics collects Prometheus metrics for the hosted nodes and the
// requests made through the DB or its client API (RegisterClientAPI);
// DB.MetricsHandler serves them.
func WithMetrics() Option {
	return func(o *options) error { o.metrics = true; return nil }
}

// withSenderMiddleware wraps every node's sends; tests use it to cut,
// delay or duplicate messages between nodes.
func withSenderMiddleware(mw ...actor.SenderMiddleware) Option {
	return func(o *options) error { o.senderMiddleware = mw; return nil }
}

// withStorageOptions passes options to every node's persist.OpenDB; tests
// use it to shrink Badger's files so that little data shows what much does.
func withStorageOptions(opts ...persist.Option) Option {
	return func(o *options) error { o.storage = opts; return nil }
}

// withSessionTTL makes client sessions expire after ttl applied entries
// instead of kvstate's default (2^20); tests use it to see expiry happen.
// Every node of a cluster must use the same value.
func withSessionTTL(ttl uint64) Option {
	return func(o *options) error { o.sessionTTL = ttl; return nil }
}
