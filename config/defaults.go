package config

import "time"

// Built-in defaults, the values of Default().
const (
	defaultServersNum      = 3
	defaultAddress         = "127.0.0.1"
	defaultPort            = 8001
	defaultClientPort      = 9001
	defaultMetricsPort     = 0
	defaultPersistPath     = "./data"
	defaultClusterID       = "raftkv"
	defaultTickInterval    = 50 * time.Millisecond
	defaultElectionTicks   = 10
	defaultHeartbeatTicks  = 2
	defaultSnapshotEntries = 10000
	defaultCatchUpEntries  = 5000
	defaultSnapshotBytes   = 64 << 20
	defaultDiskReserve     = 256 << 20
	defaultMaxValueSize    = 1 << 20
	defaultLogLevel        = "warn"
)

// Default returns the built-in configuration: three nodes on 127.0.0.1
// ports 8001-8003 (clients 9001-9003), data under ./data. It is what
// "mode: default" and a missing optional file yield.
func Default() Config {
	return Config{
		ServersNum:      defaultServersNum,
		Address:         defaultAddress,
		Port:            defaultPort,
		ClientPort:      defaultClientPort,
		MetricsPort:     defaultMetricsPort,
		PersistPath:     defaultPersistPath,
		ClusterID:       defaultClusterID,
		TickInterval:    defaultTickInterval,
		ElectionTicks:   defaultElectionTicks,
		HeartbeatTicks:  defaultHeartbeatTicks,
		SnapshotEntries: defaultSnapshotEntries,
		SnapshotBytes:   defaultSnapshotBytes,
		CatchUpEntries:  defaultCatchUpEntries,
		DiskReserve:     defaultDiskReserve,
		MaxValueSize:    defaultMaxValueSize,
		LogLevel:        defaultLogLevel,
	}
}
