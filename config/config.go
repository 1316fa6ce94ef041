package config

import (
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/raftkv/raftkv/internal/limits"
)

// Sentinel errors. Every error about a file's contents or a Config's values
// wraps one of them (an error listing several problems may wrap both), and
// names the key and value to fix; I/O failures wrap the os error instead.
// No other package tells them apart, so they are unexported; this
// package's tests compare them.
var (
	// errInvalid refuses a value that is malformed, of the wrong type, out of
	// range or inconsistent with another value.
	errInvalid = errors.New("config: invalid value")
	// errUnknownKey refuses a key the format does not define. Unknown keys
	// are refused rather than ignored because they are almost always typos
	// ("serverNum"), and a silently ignored typo starts the wrong cluster.
	errUnknownKey = errors.New("config: unknown key")
)

const (
	// MaxValueSizeLimit bounds maxValueSize (64 MiB, limits.MaxValueSize).
	// Every value travels inside a Raft log entry and a replication message,
	// so a value of hundreds of megabytes would stall replication for every
	// other write.
	MaxValueSizeLimit = limits.MaxValueSize
	// maxFileBytes bounds what Load reads, so pointing it at a wrong (huge)
	// file fails fast instead of filling memory.
	maxFileBytes = 1 << 20
)

// Config is a validated cluster configuration. The YAML key of each field is
// given in its comment; Load fills every field, taking the default for keys
// the file leaves out. A Config built in code should start from Default()
// and be checked with Validate.
type Config struct {
	// ServersNum (serversNum, default 3) is the number of nodes, 1..99
	// (limits.MaxServers).
	// Without ServerList the nodes get ids 1..ServersNum; with ServerList it
	// must equal len(ServerList) (Load sets it when the file leaves it out).
	ServersNum int
	// Address (address, default "127.0.0.1") is the host every derived node
	// listens on. Ignored when ServerList is set.
	Address string
	// Port (port, default 8001) is the Raft port base: node i listens on
	// Port+i-1. Ignored when ServerList is set.
	Port int
	// ClientPort (clientPort, default 9001) is the client API port base: node
	// i serves clients on ClientPort+i-1. Ignored when ServerList is set.
	ClientPort int
	// MetricsPort (metricsPort, default 0) is the metrics port base: node i
	// exposes metrics on MetricsPort+i-1; 0 disables metrics. Ignored when
	// ServerList is set.
	MetricsPort int
	// PersistPath (persistPath, default "./data") is the directory under
	// which node i keeps its data, in PersistPath/node<i>. It is used for
	// derived and listed nodes alike, so on a shared disk ids keep the data
	// of different nodes apart.
	PersistPath string
	// ServerList (servers) lists the nodes explicitly, for clusters whose
	// nodes run on different hosts. When non-empty it replaces the nodes
	// derived from ServersNum, Address and the port bases.
	ServerList []Server
	// ClusterID (clusterId, default "raftkv") names the cluster, so that a
	// node can refuse messages from a node of another cluster that reuses
	// its address. At most 255 bytes
	// (limits.MaxClusterIDBytes).
	ClusterID string
	// TickInterval (tickInterval, default 50ms) is the wall-clock length of
	// one Raft tick; election and heartbeat timeouts count ticks. Every
	// tick wakes each node, so ticks cost CPU even when the cluster is idle.
	TickInterval time.Duration
	// ElectionTicks (electionTicks, default 10: 500 ms) is the minimum
	// election timeout in ticks; a follower waits between one and two of
	// them without hearing from a leader before it stands for election, so
	// it also bounds how fast a failed leader is replaced (about 0.6-0.9 s
	// with the defaults, on one machine).
	ElectionTicks int
	// HeartbeatTicks (heartbeatTicks, default 2: 100 ms, like etcd's) is the
	// leader's heartbeat interval in ticks. It must be below ElectionTicks,
	// or followers would time out between two heartbeats of a healthy
	// leader. Each heartbeat is a message to every follower and back, the
	// main cost of an idle cluster.
	HeartbeatTicks int
	// SnapshotEntries (snapshotEntries, default 10000) is how many applied
	// entries a node accumulates before it snapshots and compacts its log.
	SnapshotEntries int
	// SnapshotBytes (snapshotBytes, default 67108864: 64 MiB) bounds the
	// bytes of the log's entries, which a node also holds in memory: past
	// it the log is compacted before SnapshotEntries is reached, and the
	// entries a compaction keeps weigh at most half of it. At least 1 MiB.
	SnapshotBytes int64
	// CatchUpEntries (catchUpEntries, default 5000) is how many of the
	// newest applied entries a compaction keeps, so that a follower only
	// briefly behind (a restart, a lost message) catches up from the log
	// rather than by a full snapshot. At most half of SnapshotEntries is
	// kept (see CatchUp), so the log never holds more than SnapshotEntries
	// entries, in memory as on disk.
	CatchUpEntries int
	// DiskReserve (diskReserve, default 268435456: 256 MiB) is the free
	// space, in bytes, a node keeps on the filesystem of its data directory.
	// A node that would go below it stops writing and fail-stops with an
	// error naming the path and the free space, rather than let Badger hit
	// a full disk (which kills the whole process: Badger writes through
	// memory-mapped files, and a full disk then raises SIGBUS). It should
	// cover what Badger writes on its own, unchecked: a memtable flush
	// writes up to 2 MiB per database (a node has two) and a compaction
	// more, so a reserve below a few MiB leaves even one flush uncovered. That
	// is a risk, not a certain failure (a node storing little may never
	// flush before it stops), so it is allowed; the default covers both
	// databases' flushes and their compactions. 0 turns the check off.
	DiskReserve int64
	// MaxValueSize (maxValueSize, default 1048576) is the largest value in
	// bytes a client may store, 1..MaxValueSizeLimit. Every other size
	// limit (client and peer gRPC messages, transport batches) is derived
	// from it.
	MaxValueSize int
	// LogLevel (logLevel, default "warn") is one of "debug", "info", "warn"
	// and "error". The ancestor's Debug=true switch is logLevel: debug.
	LogLevel string
}

// Server is one node of the cluster and the addresses it listens on.
type Server struct {
	// ID identifies the node in Raft; it is non-zero and unique.
	ID uint64
	// Address is the host name or IP the node listens on and peers dial.
	Address string
	// Port is the Raft (peer-to-peer) port.
	Port int
	// ClientPort is the port of the client API.
	ClientPort int
	// MetricsPort is the metrics port; 0 means metrics are off.
	MetricsPort int
}

// Servers returns the nodes of the cluster: a copy of ServerList when it is
// set, otherwise ServersNum nodes derived from Address and the port bases.
// It returns nil when ServersNum is outside 1..limits.MaxServers, which Validate
// refuses, rather than allocating whatever an unchecked count asks for.
func (c Config) Servers() []Server {
	if len(c.ServerList) > 0 {
		return slices.Clone(c.ServerList)
	}
	if c.ServersNum < 1 || c.ServersNum > limits.MaxServers {
		return nil
	}
	out := make([]Server, c.ServersNum)
	for i := range out {
		s := Server{
			ID:         uint64(i + 1),
			Address:    c.Address,
			Port:       c.Port + i,
			ClientPort: c.ClientPort + i,
		}
		if c.MetricsPort != 0 {
			s.MetricsPort = c.MetricsPort + i
		}
		out[i] = s
	}
	return out
}

// Server returns the node with the given id, and whether there is one.
func (c Config) Server(id uint64) (Server, bool) {
	for _, s := range c.Servers() {
		if s.ID == id {
			return s, true
		}
	}
	return Server{}, false
}

// RemoteAddr returns the "host:port" peers dial to reach node id's Raft
// port (IPv6 hosts in brackets), or "" when there is no such node.
func (c Config) RemoteAddr(id uint64) string {
	s, ok := c.Server(id)
	if !ok {
		return ""
	}
	return net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
}

// DataDir returns the directory of node id's data, PersistPath/node<id>. It
// depends only on PersistPath and id, not on membership, so a node being
// added to the cluster can be given its directory before it is listed.
func (c Config) DataDir(id uint64) string {
	return filepath.Join(c.PersistPath, "node"+strconv.FormatUint(id, 10))
}

// SlogLevel returns LogLevel as a slog.Level. A level Validate would refuse
// maps to the default, slog.LevelWarn.
func (c Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "error":
		return slog.LevelError
	}
	return slog.LevelWarn
}

// CatchUp is how many applied entries a compaction keeps: CatchUpEntries,
// but at most half of SnapshotEntries, so that compaction still happens
// every SnapshotEntries/2 entries or more often.
func (c Config) CatchUp() int { return min(c.CatchUpEntries, c.SnapshotEntries/2) }
