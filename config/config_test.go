package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/limits"
)

func mustParse(t *testing.T, yaml string) Config {
	t.Helper()
	c, err := parse([]byte(yaml))
	if err != nil {
		t.Fatalf("parse(%q): %v", yaml, err)
	}
	return c
}

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		ServersNum:      3,
		Address:         "127.0.0.1",
		Port:            8001,
		ClientPort:      9001,
		MetricsPort:     0,
		PersistPath:     "./data",
		ClusterID:       "raftkv",
		TickInterval:    50 * time.Millisecond,
		ElectionTicks:   10,
		HeartbeatTicks:  2,
		SnapshotEntries: 10000,
		SnapshotBytes:   64 << 20,
		CatchUpEntries:  5000,
		DiskReserve:     256 << 20,
		MaxValueSize:    1048576,
		LogLevel:        "warn",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if c.SlogLevel() != slog.LevelWarn {
		t.Fatalf("SlogLevel() = %v, want warn", c.SlogLevel())
	}
}

func TestModeDefaultIgnoresOtherKeys(t *testing.T) {
	// The ancestor's files said "mode: default" next to concrete values.
	c := mustParse(t, "mode: default\nserversNum: 5\naddress: 10.1.1.1\nport: 7000\npersistPath: /tmp/x\n")
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("mode: default gave %+v, want Default()", c)
	}
	// Ignored values are not validated either...
	mustParse(t, "mode: default\nport: 0\nserversNum: 1000\n")
	// ...but unknown keys and wrong types are still refused.
	if _, err := parse([]byte("mode: default\nserverNum: 5\n")); !errors.Is(err, errUnknownKey) {
		t.Fatalf("unknown key under mode: default: err = %v, want errUnknownKey", err)
	}
	if _, err := parse([]byte("mode: default\nport: abc\n")); !errors.Is(err, errInvalid) {
		t.Fatalf("wrong type under mode: default: err = %v, want errInvalid", err)
	}
}

func TestModeConfigKeepsDefaultsForMissingKeys(t *testing.T) {
	c := mustParse(t, "mode: config\n")
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("mode: config alone gave %+v, want Default()", c)
	}
	c = mustParse(t, "mode: config\nport: ~\naddress:\n")
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("empty values gave %+v, want Default()", c)
	}
}

func TestModeConfigReadsEveryKey(t *testing.T) {
	c := mustParse(t, `
mode: config
serversNum: 5
address: 10.0.0.7
port: 7001
clientPort: 7101
metricsPort: 7201
persistPath: /var/lib/raftkv
clusterId: prod
tickInterval: 50ms
electionTicks: 20
heartbeatTicks: 2
snapshotEntries: 500
snapshotBytes: 2097152
catchUpEntries: 100
diskReserve: 1048576
maxValueSize: 4096
logLevel: debug
`)
	want := Config{
		ServersNum:      5,
		Address:         "10.0.0.7",
		Port:            7001,
		ClientPort:      7101,
		MetricsPort:     7201,
		PersistPath:     "/var/lib/raftkv",
		ClusterID:       "prod",
		TickInterval:    50 * time.Millisecond,
		ElectionTicks:   20,
		HeartbeatTicks:  2,
		SnapshotEntries: 500,
		SnapshotBytes:   2 << 20,
		CatchUpEntries:  100,
		DiskReserve:     1 << 20,
		MaxValueSize:    4096,
		LogLevel:        "debug",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if c.SlogLevel() != slog.LevelDebug {
		t.Fatalf("SlogLevel() = %v, want debug", c.SlogLevel())
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn,
		"error": slog.LevelError, "bogus": slog.LevelWarn,
	} {
		c := Default()
		c.LogLevel = level
		if got := c.SlogLevel(); got != want {
			t.Errorf("LogLevel %q: SlogLevel() = %v, want %v", level, got, want)
		}
	}
}

func TestDerivedServers(t *testing.T) {
	c := mustParse(t, "mode: config\nserversNum: 4\naddress: 10.0.0.9\nport: 8100\nclientPort: 9100\nmetricsPort: 2000\npersistPath: /srv/kv\n")
	want := []Server{
		{ID: 1, Address: "10.0.0.9", Port: 8100, ClientPort: 9100, MetricsPort: 2000},
		{ID: 2, Address: "10.0.0.9", Port: 8101, ClientPort: 9101, MetricsPort: 2001},
		{ID: 3, Address: "10.0.0.9", Port: 8102, ClientPort: 9102, MetricsPort: 2002},
		{ID: 4, Address: "10.0.0.9", Port: 8103, ClientPort: 9103, MetricsPort: 2003},
	}
	if got := c.Servers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Servers() = %+v, want %+v", got, want)
	}
	for _, s := range want {
		got, ok := c.Server(s.ID)
		if !ok || got != s {
			t.Errorf("Server(%d) = %+v, %v; want %+v", s.ID, got, ok, s)
		}
		if got, want := c.DataDir(s.ID), filepath.Join("/srv/kv", fmt.Sprintf("node%d", s.ID)); got != want {
			t.Errorf("DataDir(%d) = %q, want %q", s.ID, got, want)
		}
	}
	if got := c.RemoteAddr(3); got != "10.0.0.9:8102" {
		t.Errorf("RemoteAddr(3) = %q", got)
	}
	if _, ok := c.Server(5); ok {
		t.Errorf("Server(5) found a node that does not exist")
	}
	if got := c.RemoteAddr(5); got != "" {
		t.Errorf("RemoteAddr(5) = %q, want empty", got)
	}

	// Metrics off: every node's metrics port is 0, not 0+i-1.
	for _, s := range Default().Servers() {
		if s.MetricsPort != 0 {
			t.Errorf("default node %d has metrics port %d, want 0 (off)", s.ID, s.MetricsPort)
		}
	}
	if got := Default().DataDir(2); got != filepath.Join("data", "node2") {
		t.Errorf("default DataDir(2) = %q", got)
	}
}

func TestServersOnUncheckedCount(t *testing.T) {
	for _, n := range []int{0, -1, limits.MaxServers + 1, 1 << 60} {
		c := Default()
		c.ServersNum = n
		if got := c.Servers(); got != nil {
			t.Errorf("ServersNum %d: Servers() = %d servers, want nil", n, len(got))
		}
	}
}

func TestExplicitServers(t *testing.T) {
	c := mustParse(t, `
mode: config
persistPath: /data
servers:
  - {id: 7, address: 10.0.0.1, port: 8001, clientPort: 9001}
  - id: 9
    address: kv-b.example.com
    port: 8001
    clientPort: 9001
    metricsPort: 2112
  - {id: 11, address: "::1", port: 8001, clientPort: 9001}
`)
	want := []Server{
		{ID: 7, Address: "10.0.0.1", Port: 8001, ClientPort: 9001},
		{ID: 9, Address: "kv-b.example.com", Port: 8001, ClientPort: 9001, MetricsPort: 2112},
		{ID: 11, Address: "::1", Port: 8001, ClientPort: 9001},
	}
	if got := c.Servers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Servers() = %+v, want %+v", got, want)
	}
	if c.ServersNum != 3 {
		t.Errorf("ServersNum = %d, want 3 (the list's length)", c.ServersNum)
	}
	if got := c.RemoteAddr(9); got != "kv-b.example.com:8001" {
		t.Errorf("RemoteAddr(9) = %q", got)
	}
	if got := c.RemoteAddr(11); got != "[::1]:8001" {
		t.Errorf("RemoteAddr(11) = %q, want bracketed IPv6", got)
	}
	if got := c.DataDir(11); got != filepath.Join("/data", "node11") {
		t.Errorf("DataDir(11) = %q", got)
	}
	if _, ok := c.Server(1); ok {
		t.Errorf("Server(1) found a derived node although servers is listed")
	}
	// Servers returns a copy: callers cannot change the Config through it.
	c.Servers()[0].Port = 1
	if c.ServerList[0].Port != 8001 {
		t.Errorf("Servers() aliases ServerList")
	}
	// serversNum that agrees with the list is accepted.
	mustParse(t, "mode: config\nserversNum: 1\nservers:\n  - {id: 1, address: h, port: 1, clientPort: 2}\n")
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("mode: config\nserversNum: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.ServersNum != 5 {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	c, found, err := LoadOptional(path)
	if err != nil || !found || c.ServersNum != 5 {
		t.Fatalf("LoadOptional = %+v, %v, %v", c, found, err)
	}

	// A parse error names the file.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("mode: config\nport: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, load := range []func(string) error{
		func(p string) error { _, err := Load(p); return err },
		func(p string) error { _, _, err := LoadOptional(p); return err },
	} {
		err := load(bad)
		if !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "port") {
			t.Errorf("loading %s: err = %v, want errInvalid naming the file and port", bad, err)
		}
	}

	// An oversized file is refused without being read whole.
	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, []byte("mode: config\n"+strings.Repeat("#", maxFileBytes)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(huge); !errors.Is(err, errInvalid) {
		t.Errorf("Load(huge) = %v, want errInvalid", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	if _, err := Load(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(absent) = %v, want fs.ErrNotExist", err)
	}
	c, found, err := LoadOptional(path)
	if err != nil || found {
		t.Fatalf("LoadOptional(absent) = found %v, err %v; want false, nil", found, err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("LoadOptional(absent) = %+v, want Default()", c)
	}
	// A path that exists but is not a readable file is an error, not a
	// fallback to the defaults.
	if _, found, err := LoadOptional(t.TempDir()); err == nil || !found {
		t.Fatalf("LoadOptional(directory) = found %v, err %v; want an error", found, err)
	}
}

// TestShippedConfig checks the repository's config.yaml: as shipped it
// parses to the defaults, and with every setting uncommented and mode
// switched to config it still parses to the defaults (apart from the example
// servers list), so the values it documents are the real defaults.
func TestShippedConfig(t *testing.T) {
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse(data)
	if err != nil {
		t.Fatalf("shipped config.yaml: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("shipped config.yaml = %+v, want Default()", c)
	}

	setting := regexp.MustCompile(`(?m)^#([a-zA-Z]|  - )`)
	edited := setting.ReplaceAllString(string(data), "$1")
	edited = strings.Replace(edited, "mode: default", "mode: config", 1)
	c, err = parse([]byte(edited))
	if err != nil {
		t.Fatalf("uncommented config.yaml: %v\n%s", err, edited)
	}
	if len(c.ServerList) != 3 {
		t.Fatalf("uncommented config.yaml lists %d servers, want the 3 of the example", len(c.ServerList))
	}
	c.ServerList = nil
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("uncommented config.yaml = %+v, want Default(): the comments document other defaults", c)
	}

	// Every known key is documented.
	for _, key := range knownKeys() {
		if !strings.Contains(string(data), "#"+key+":") {
			t.Errorf("config.yaml does not document key %q", key)
		}
	}
}

func knownKeys() []string {
	var keys []string
	rt := reflect.TypeFor[rawConfig]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("yaml"), ",")
		if name != "mode" {
			keys = append(keys, name)
		}
	}
	return keys
}
