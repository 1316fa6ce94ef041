package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftkv/raftkv/internal/limits"
	"gopkg.in/yaml.v3"
)

// Sentinel errors. Every error about a file's contents or a Config's values
// wraps one of them (an error listing several problems may wrap both), so
// callers can tell "the file is wrong" from I/O failures, which wrap the os
// error instead, while the message carries the key and value to fix.
var (
	// ErrInvalid refuses a value that is malformed, of the wrong type, out of
	// range or inconsistent with another value.
	ErrInvalid = errors.New("config: invalid value")
	// ErrUnknownKey refuses a key the format does not define. Unknown keys
	// are refused rather than ignored because they are almost always typos
	// ("serverNum"), and a silently ignored typo starts the wrong cluster.
	ErrUnknownKey = errors.New("config: unknown key")
)

const (
	// MaxServers bounds the number of nodes. Raft clusters beyond a handful
	// of voters only slow down commits; the bound exists to turn a typo such
	// as "serversNum: 300" into an error instead of hundreds of processes,
	// ports and data directories.
	MaxServers = 99
	// MaxValueSizeLimit bounds maxValueSize (64 MiB). Every value travels
	// inside a Raft log entry and a replication message, so a value of
	// hundreds of megabytes would stall replication for every other write.
	MaxValueSizeLimit = limits.MaxValueSize
	// MaxClusterIDBytes bounds clusterId, which every message between
	// nodes carries.
	MaxClusterIDBytes = limits.MaxClusterIDBytes
	// maxFileBytes bounds what Load reads, so pointing it at a wrong (huge)
	// file fails fast instead of filling memory.
	maxFileBytes = 1 << 20
)

// Built-in defaults, the values of Default().
const (
	defaultServersNum      = 3
	defaultAddress         = "127.0.0.1"
	defaultPort            = 8001
	defaultClientPort      = 9001
	defaultMetricsPort     = 0
	defaultPersistPath     = "./data"
	defaultClusterID       = "raftkv"
	defaultTickInterval    = 10 * time.Millisecond
	defaultElectionTicks   = 10
	defaultHeartbeatTicks  = 1
	defaultSnapshotEntries = 10000
	defaultCatchUpEntries  = 5000
	defaultSnapshotBytes   = 64 << 20
	defaultDiskReserve     = 256 << 20
	defaultMaxValueSize    = 1 << 20
	defaultLogLevel        = "warn"
)

// Config is a validated cluster configuration. The YAML key of each field is
// given in its comment; Parse fills every field, taking the default for keys
// the file leaves out. A Config built in code should start from Default()
// and be checked with Validate.
type Config struct {
	// ServersNum (serversNum, default 3) is the number of nodes, 1..MaxServers.
	// Without ServerList the nodes get ids 1..ServersNum; with ServerList it
	// must equal len(ServerList) (Parse sets it when the file leaves it out).
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
	// its address. At most MaxClusterIDBytes bytes.
	ClusterID string
	// TickInterval (tickInterval, default 10ms) is the wall-clock length of
	// one Raft tick; election and heartbeat timeouts count ticks.
	TickInterval time.Duration
	// ElectionTicks (electionTicks, default 10) is the minimum election
	// timeout in ticks.
	ElectionTicks int
	// HeartbeatTicks (heartbeatTicks, default 1) is the leader's heartbeat
	// interval in ticks. It must be below ElectionTicks, or followers would
	// time out between two heartbeats of a healthy leader.
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
	// memory-mapped files, and a full disk then raises SIGBUS). It must
	// cover what Badger writes on its own: memtable flushes and
	// compactions. 0 turns the check off.
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

// Load reads and parses the configuration file at path, which must exist.
// Errors from Parse are prefixed with the path.
func Load(path string) (Config, error) {
	data, err := readFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(data)
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
		return nil, fmt.Errorf("%w: %s is larger than %d bytes; not a configuration file", ErrInvalid, path, maxFileBytes)
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

// Parse parses and validates a configuration file's contents. A key whose
// value is empty (`port:` or `port: ~`) counts as left out. The file must be
// a single YAML document whose top level is a mapping, and `mode` is
// required: an empty file is refused rather than guessed at. With
// mode: default it returns Default(); the other keys must still be known and
// well typed, but their values are neither checked nor used.
func Parse(data []byte) (Config, error) {
	raw, err := decode(data)
	if err != nil {
		return Config{}, err
	}
	if raw.Mode == nil {
		return Config{}, fmt.Errorf("%w: mode: missing; want %q or %q", ErrInvalid, modeDefault, modeConfig)
	}
	switch *raw.Mode {
	case modeDefault:
		return Default(), nil
	case modeConfig:
	default:
		return Config{}, fmt.Errorf("%w: mode: %q; want %q or %q", ErrInvalid, *raw.Mode, modeDefault, modeConfig)
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

// decode checks the document's shape key by key (so that errors can name the
// key and line) and then decodes it strictly into a rawConfig.
func decode(data []byte) (rawConfig, error) {
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := noPanic(func() error { return dec.Decode(&doc) }); err != nil {
		if errors.Is(err, io.EOF) {
			return raw, nil // no document at all: mode is then missing
		}
		return raw, fmt.Errorf("%w: malformed YAML: %v", ErrInvalid, err)
	}
	var next yaml.Node
	if err := noPanic(func() error { return dec.Decode(&next) }); !errors.Is(err, io.EOF) {
		return raw, fmt.Errorf("%w: the file must hold a single YAML document (found a second one or junk after the first)", ErrInvalid)
	}
	if len(doc.Content) == 0 {
		return raw, nil
	}
	top := resolve(doc.Content[0])
	if isNull(top) {
		return raw, nil
	}
	if top.Kind != yaml.MappingNode {
		return raw, fmt.Errorf("%w: line %d: the top level must be a mapping of key: value pairs", ErrInvalid, top.Line)
	}
	if errs := checkMapping(top, "", reflect.TypeFor[rawConfig]()); len(errs) > 0 {
		return raw, errors.Join(errs...)
	}
	// The walk above accepted every key and value, so this strict decode is
	// expected to succeed; KnownFields keeps it from ever accepting what the
	// walk might have missed.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := noPanic(func() error { return strict.Decode(&raw) }); err != nil {
		return rawConfig{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return raw, nil
}

// checkMapping checks every key of mapping m against the yaml tags of struct
// type t and every value against its field's type. prefix is the path of m
// ("" at the top, "servers[2]." in a list entry). It reports all problems,
// so that one run of the tool lists everything to fix.
func checkMapping(m *yaml.Node, prefix string, t reflect.Type) []error {
	fields := make(map[string]reflect.Type, t.NumField())
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fields[name] = f.Type
		names = append(names, name)
	}
	var errs []error
	seen := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%w: %sline %d: keys must be plain names", ErrInvalid, prefix, k.Line))
			continue
		}
		key := prefix + k.Value
		ft, ok := fields[k.Value]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: %q at line %d%s", ErrUnknownKey, key, k.Line, suggest(k.Value, names)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			errs = append(errs, fmt.Errorf("%w: %s (line %d): set twice, first at line %d", ErrInvalid, key, k.Line, first))
			continue
		}
		seen[k.Value] = k.Line
		errs = append(errs, checkValue(key, k.Line, v, ft)...)
	}
	return errs
}

// checkValue checks that node v can be decoded into type t without loss.
// line is the line of v's key, which is where an operator looks.
func checkValue(key string, line int, v *yaml.Node, t reflect.Type) []error {
	v = resolve(v)
	if isNull(v) {
		if t.Kind() == reflect.Pointer {
			return nil // left out
		}
		return []error{fmt.Errorf("%w: %s (line %d): empty; want %s", ErrInvalid, key, line, describe(t))}
	}
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	wrongType := func() []error {
		return []error{fmt.Errorf("%w: %s (line %d): got %s; want %s", ErrInvalid, key, line, show(v), describe(base))}
	}
	switch base.Kind() {
	case reflect.Slice:
		if v.Kind != yaml.SequenceNode {
			return wrongType()
		}
		var errs []error
		for j, item := range v.Content {
			errs = append(errs, checkValue(fmt.Sprintf("%s[%d]", key, j), item.Line, item, base.Elem())...)
		}
		return errs
	case reflect.Struct:
		if v.Kind != yaml.MappingNode {
			return wrongType()
		}
		return checkMapping(v, key+".", base)
	case reflect.Int, reflect.Uint64:
		// yaml.v3 would truncate 1.5 into an int field; require an integer.
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
			return wrongType()
		}
		if err := noPanic(func() error { return v.Decode(reflect.New(base).Interface()) }); err != nil {
			return wrongType()
		}
	case reflect.String:
		// Any scalar reads as its text (clusterId: 42 is "42"); lists and
		// mappings do not.
		if v.Kind != yaml.ScalarNode {
			return wrongType()
		}
	}
	return nil
}

// noPanic runs a yaml.v3 call and turns a panic into an error. yaml.v3 has
// had inputs that panic (CVE-2022-28948), and whatever it does, a bad file
// must come back as an error. Only calls into yaml.v3 are wrapped, so a bug
// in this package still panics where tests and FuzzParse can see it.
func noPanic(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return f()
}

// resolve follows an alias (*name) to the node it refers to.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a value of type t looks like in YAML.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int:
		return "an integer"
	case reflect.Uint64:
		return "a positive integer"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a mapping of key: value pairs"
	}
	return t.String()
}

// show describes a node for an error message, keeping long scalars short.
func show(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		s := n.Value
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return strconv.Quote(s)
	}
	return "an unsupported node"
}

// suggest proposes the known key closest to an unknown one, because most
// unknown keys are a letter off ("serverNum") or in another case or style
// ("servers_num").
func suggest(key string, known []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(s))
	}
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(norm(key), norm(k), bestDist); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return "; known keys: " + strings.Join(known, ", ")
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit (which keeps long junk keys cheap).
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
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
			return Config{}, fmt.Errorf("%w: tickInterval: %q is not a duration such as \"10ms\"", ErrInvalid, *raw.TickInterval)
		}
		c.TickInterval = d
	}
	if raw.Servers != nil {
		list := *raw.Servers
		if len(list) == 0 {
			return Config{}, fmt.Errorf("%w: servers: empty list; list at least one server or leave the key out", ErrInvalid)
		}
		// A list entry must say where the node is: defaulting an address
		// or port for a node on another host would only ever be wrong.
		var errs []error
		for i, rs := range list {
			missing := func(field string) {
				errs = append(errs, fmt.Errorf("%w: servers[%d].%s: missing", ErrInvalid, i, field))
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

// Servers returns the nodes of the cluster: a copy of ServerList when it is
// set, otherwise ServersNum nodes derived from Address and the port bases.
// It returns nil when ServersNum is outside 1..MaxServers, which Validate
// refuses, rather than allocating whatever an unchecked count asks for.
func (c Config) Servers() []Server {
	if len(c.ServerList) > 0 {
		return slices.Clone(c.ServerList)
	}
	if c.ServersNum < 1 || c.ServersNum > MaxServers {
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
