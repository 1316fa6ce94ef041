package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Reading a file: the schema (rawConfig, whose yaml tags are the list of
// known keys), the two modes, and overlaying the keys set on Default().
// yamlcheck.go holds the schema-independent checking.

// Load reads and parses the configuration file at path, which must exist.
// Errors about the contents are prefixed with the path.
func Load(path string) (Config, error) {
	data, err := readFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadOptional is Load for a file that may be absent: it returns Default()
// and false when nothing exists at path, so an embedded database runs with
// no configuration file at all. A file that exists but cannot be read or
// does not parse is an error, never a silent fallback to the defaults: a
// node that ignored its operator's broken file would start the wrong cluster.
func LoadOptional(path string) (Config, bool, error) {
	c, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), false, nil
	}
	if err != nil {
		return Config{}, true, err
	}
	return c, true, nil
}

// readFile reads at most maxFileBytes of the file at path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes; not a configuration file", errInvalid, path, maxFileBytes)
	}
	return data, nil
}

// rawConfig mirrors the file. Its fields are pointers so that Parse can tell
// a key left out (nil: take the default) from a key set to a zero value
// (which Validate then refuses). Its yaml tags are the single list of known
// keys: checkMapping reads them, so the diagnosis and the decoding cannot
// disagree about which keys exist.
type rawConfig struct {
	Mode            *string      `yaml:"mode"`
	ServersNum      *int         `yaml:"serversNum"`
	Address         *string      `yaml:"address"`
	Port            *int         `yaml:"port"`
	ClientPort      *int         `yaml:"clientPort"`
	MetricsPort     *int         `yaml:"metricsPort"`
	PersistPath     *string      `yaml:"persistPath"`
	Servers         *[]rawServer `yaml:"servers"`
	ClusterID       *string      `yaml:"clusterId"`
	TickInterval    *string      `yaml:"tickInterval"`
	ElectionTicks   *int         `yaml:"electionTicks"`
	HeartbeatTicks  *int         `yaml:"heartbeatTicks"`
	SnapshotEntries *int         `yaml:"snapshotEntries"`
	SnapshotBytes   *int64       `yaml:"snapshotBytes"`
	CatchUpEntries  *int         `yaml:"catchUpEntries"`
	DiskReserve     *int64       `yaml:"diskReserve"`
	MaxValueSize    *int         `yaml:"maxValueSize"`
	LogLevel        *string      `yaml:"logLevel"`
}

// rawServer mirrors one entry of the servers list.
type rawServer struct {
	ID          *uint64 `yaml:"id"`
	Address     *string `yaml:"address"`
	Port        *int    `yaml:"port"`
	ClientPort  *int    `yaml:"clientPort"`
	MetricsPort *int    `yaml:"metricsPort"`
}

// Modes, the values of the mode key.
const (
	modeDefault = "default"
	modeConfig  = "config"
)

// parse parses and validates a configuration file's contents. A key whose
// value is empty (`port:` or `port: ~`) counts as left out. The file must be
// a single YAML document whose top level is a mapping, and `mode` is
// required: an empty file is refused rather than guessed at. With
// mode: default it returns Default(); the other keys must still be known and
// well typed, but their values are neither checked nor used.
func parse(data []byte) (Config, error) {
	raw, err := decodeChecked[rawConfig](data)
	if err != nil {
		return Config{}, err
	}
	if raw.Mode == nil {
		return Config{}, fmt.Errorf("%w: mode: missing; want %q or %q", errInvalid, modeDefault, modeConfig)
	}
	switch *raw.Mode {
	case modeDefault:
		return Default(), nil
	case modeConfig:
	default:
		return Config{}, fmt.Errorf("%w: mode: %q; want %q or %q", errInvalid, *raw.Mode, modeDefault, modeConfig)
	}
	c, err := fromRaw(raw)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// fromRaw overlays the keys the file sets on Default().
func fromRaw(raw rawConfig) (Config, error) {
	c := Default()
	setInt := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	setString := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	setInt(&c.ServersNum, raw.ServersNum)
	setString(&c.Address, raw.Address)
	setInt(&c.Port, raw.Port)
	setInt(&c.ClientPort, raw.ClientPort)
	setInt(&c.MetricsPort, raw.MetricsPort)
	setString(&c.PersistPath, raw.PersistPath)
	setString(&c.ClusterID, raw.ClusterID)
	setInt(&c.ElectionTicks, raw.ElectionTicks)
	setInt(&c.HeartbeatTicks, raw.HeartbeatTicks)
	setInt(&c.SnapshotEntries, raw.SnapshotEntries)
	setInt(&c.CatchUpEntries, raw.CatchUpEntries)
	if raw.SnapshotBytes != nil {
		c.SnapshotBytes = *raw.SnapshotBytes
	}
	if raw.DiskReserve != nil {
		c.DiskReserve = *raw.DiskReserve
	}
	setInt(&c.MaxValueSize, raw.MaxValueSize)
	setString(&c.LogLevel, raw.LogLevel)
	if raw.TickInterval != nil {
		d, err := time.ParseDuration(*raw.TickInterval)
		if err != nil {
			return Config{}, fmt.Errorf("%w: tickInterval: %q is not a duration such as \"10ms\"", errInvalid, *raw.TickInterval)
		}
		c.TickInterval = d
	}
	if raw.Servers != nil {
		list := *raw.Servers
		if len(list) == 0 {
			return Config{}, fmt.Errorf("%w: servers: empty list; list at least one server or leave the key out", errInvalid)
		}
		// A list entry must say where the node is: defaulting an address
		// or port for a node on another host would only ever be wrong.
		var errs []error
		for i, rs := range list {
			missing := func(field string) {
				errs = append(errs, fmt.Errorf("%w: servers[%d].%s: missing", errInvalid, i, field))
			}
			s := Server{}
			if rs.ID == nil {
				missing("id")
			} else {
				s.ID = *rs.ID
			}
			if rs.Address == nil {
				missing("address")
			} else {
				s.Address = *rs.Address
			}
			if rs.Port == nil {
				missing("port")
			} else {
				s.Port = *rs.Port
			}
			if rs.ClientPort == nil {
				missing("clientPort")
			} else {
				s.ClientPort = *rs.ClientPort
			}
			if rs.MetricsPort != nil {
				s.MetricsPort = *rs.MetricsPort
			}
			c.ServerList = append(c.ServerList, s)
		}
		if len(errs) > 0 {
			return Config{}, errors.Join(errs...)
		}
		if raw.ServersNum == nil {
			c.ServersNum = len(list)
		}
	}
	return c, nil
}
