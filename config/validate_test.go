package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/raftkv/raftkv/internal/limits"
)

// checkErr asserts that err wraps sentinel and mentions every one of words
// (the key to edit, and where useful the value or line).
func checkErr(t *testing.T, err, sentinel error, words ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want one wrapping %v", err, sentinel)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err = %q, want it to mention %q", err, w)
		}
	}
}

const threeServers = `
servers:
  - {id: 1, address: 10.0.0.1, port: 8001, clientPort: 9001}
  - {id: 2, address: 10.0.0.2, port: 8001, clientPort: 9001}
  - {id: 3, address: 10.0.0.3, port: 8001, clientPort: 9001}
`

// TestValidationRules parses one bad file per rule (all with mode: config)
// and checks the error wraps errInvalid and names the key and value.
func TestValidationRules(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		words []string
	}{
		{"mode unknown", "mode: custom", []string{"mode", `"custom"`}},
		{"mode missing", "serversNum: 3", []string{"mode", "missing"}},
		{"empty file", "", []string{"mode", "missing"}},

		{"serversNum zero", "serversNum: 0", []string{"serversNum", "0"}},
		{"serversNum negative", "serversNum: -2", []string{"serversNum", "-2"}},
		{"serversNum too large", "serversNum: 100", []string{"serversNum", "100"}},
		{"serversNum disagrees with servers", "serversNum: 5" + threeServers, []string{"serversNum", "5", "3 entries"}},
		{"servers empty list", "servers: []", []string{"servers", "empty"}},

		{"port zero", "port: 0", []string{"port", "0"}},
		{"port negative", "port: -5", []string{"port", "-5"}},
		{"port too high", "port: 65536", []string{"port", "65536"}},
		{"port base overflows", "port: 65534", []string{"port", "65534", "65536"}},
		{"clientPort zero", "clientPort: 0", []string{"clientPort", "0"}},
		{"clientPort too high", "clientPort: 70000", []string{"clientPort", "70000"}},
		{"metricsPort negative", "metricsPort: -1", []string{"metricsPort", "-1"}},
		{"metricsPort too high", "metricsPort: 65536", []string{"metricsPort", "65536"}},
		{"address empty", `address: ""`, []string{"address", `""`}},
		{"address with port", "address: 127.0.0.1:8001", []string{"address", "127.0.0.1:8001"}},

		{"derived port collides with clientPort", "port: 8001\nclientPort: 8002",
			[]string{"port (node 2)", "clientPort (node 1)", "127.0.0.1:8002"}},
		{"derived metrics collide with port", "metricsPort: 8003",
			[]string{"metricsPort (node 1)", "port (node 3)", "127.0.0.1:8003"}},

		{"server id zero", "servers:\n  - {id: 0, address: h, port: 1, clientPort: 2}", []string{"servers[0].id", "0"}},
		{"server id duplicate", "servers:\n  - {id: 4, address: a, port: 1, clientPort: 2}\n  - {id: 4, address: b, port: 1, clientPort: 2}",
			[]string{"servers[1].id", "4", "servers[0].id"}},
		{"server port out of range", "servers:\n  - {id: 1, address: h, port: 0, clientPort: 2}", []string{"servers[0].port", "0"}},
		{"server clientPort out of range", "servers:\n  - {id: 1, address: h, port: 1, clientPort: 65536}", []string{"servers[0].clientPort", "65536"}},
		{"server metricsPort out of range", "servers:\n  - {id: 1, address: h, port: 1, clientPort: 2, metricsPort: 99999}", []string{"servers[0].metricsPort", "99999"}},
		{"server address empty", "servers:\n  - {id: 1, address: '', port: 1, clientPort: 2}", []string{"servers[0].address"}},
		{"server missing id", "servers:\n  - {address: h, port: 1, clientPort: 2}", []string{"servers[0].id", "missing"}},
		{"server missing address", "servers:\n  - {id: 1, port: 1, clientPort: 2}", []string{"servers[0].address", "missing"}},
		{"server missing port", "servers:\n  - {id: 1, address: h, clientPort: 2}", []string{"servers[0].port", "missing"}},
		{"server missing clientPort", "servers:\n  - {id: 1, address: h, port: 1}", []string{"servers[0].clientPort", "missing"}},
		{"two servers on one port", "servers:\n  - {id: 1, address: h, port: 8001, clientPort: 9001}\n  - {id: 2, address: H, port: 8001, clientPort: 9002}",
			[]string{"servers[1].port", "servers[0].port", "h:8001"}},
		{"client port on another's raft port", "servers:\n  - {id: 1, address: 10.0.0.1, port: 8001, clientPort: 9001}\n  - {id: 2, address: 10.0.0.1, port: 8002, clientPort: 8001}",
			[]string{"servers[1].clientPort", "servers[0].port", "10.0.0.1:8001"}},
		{"one server reusing its own port", "servers:\n  - {id: 1, address: h, port: 8001, clientPort: 8001}",
			[]string{"servers[0].clientPort", "servers[0].port"}},
		{"IPv6 spelled two ways", "servers:\n  - {id: 1, address: '::1', port: 8001, clientPort: 9001}\n  - {id: 2, address: '0:0::1', port: 8001, clientPort: 9002}",
			[]string{"servers[1].port", "[::1]:8001"}},

		{"clusterId empty", `clusterId: ""`, []string{"clusterId", `""`}},
		{"persistPath empty", `persistPath: ""`, []string{"persistPath", `""`}},
		{"tickInterval zero", "tickInterval: 0s", []string{"tickInterval", "0s"}},
		{"tickInterval negative", "tickInterval: -10ms", []string{"tickInterval", "-10ms"}},
		{"tickInterval without unit", "tickInterval: 10", []string{"tickInterval", `"10"`}},
		{"tickInterval garbage", "tickInterval: soon", []string{"tickInterval", `"soon"`}},
		{"electionTicks zero", "electionTicks: 0", []string{"electionTicks", "0"}},
		{"heartbeatTicks zero", "heartbeatTicks: 0", []string{"heartbeatTicks", "0"}},
		{"heartbeatTicks equal to electionTicks", "electionTicks: 5\nheartbeatTicks: 5", []string{"heartbeatTicks", "electionTicks", "5"}},
		{"heartbeatTicks above electionTicks", "electionTicks: 3\nheartbeatTicks: 4", []string{"heartbeatTicks", "4", "electionTicks", "3"}},
		{"snapshotEntries zero", "snapshotEntries: 0", []string{"snapshotEntries", "0"}},
		{"snapshotBytes too small", "snapshotBytes: 1000", []string{"snapshotBytes", "1000"}},
		{"catchUpEntries negative", "catchUpEntries: -1", []string{"catchUpEntries", "-1"}},
		{"diskReserve negative", "diskReserve: -5", []string{"diskReserve", "-5"}},
		{"maxValueSize zero", "maxValueSize: 0", []string{"maxValueSize", "0"}},
		{"maxValueSize above 64 MiB", "maxValueSize: 67108865", []string{"maxValueSize", "67108865"}},
		{"logLevel unknown", "logLevel: verbose", []string{"logLevel", `"verbose"`}},
		{"logLevel wrong case", "logLevel: DEBUG", []string{"logLevel", `"DEBUG"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.yaml
			if !strings.HasPrefix(doc, "mode:") && tt.name != "mode missing" && tt.name != "empty file" {
				doc = "mode: config\n" + doc
			}
			c, err := parse([]byte(doc))
			checkErr(t, err, errInvalid, tt.words...)
			if c.ServersNum != 0 || c.ServerList != nil {
				t.Errorf("Parse returned a Config with its error: %+v", c)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.ClusterID = ""
	c.Port = 0
	c.LogLevel = "loud"
	err := c.Validate()
	checkErr(t, err, errInvalid, "clusterId", "port", "logLevel")
}

func TestValidateBounds(t *testing.T) {
	ok := func(mutate func(*Config)) {
		t.Helper()
		c := Default()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("Validate() = %v, want nil", err)
		}
	}
	ok(func(c *Config) { c.ServersNum = 1 })
	ok(func(c *Config) { c.ServersNum = limits.MaxServers })
	ok(func(c *Config) { c.Port = 65535 - 2 }) // three nodes end at 65535
	ok(func(c *Config) { c.MetricsPort = 2112 })
	ok(func(c *Config) { c.MaxValueSize = MaxValueSizeLimit })
	ok(func(c *Config) { c.MaxValueSize = 1 })
	ok(func(c *Config) { c.SnapshotEntries = 1 })
	ok(func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = 2, 1 })
	// Ignored keys are not checked once a list replaces them.
	ok(func(c *Config) {
		c.Port, c.Address = 0, ""
		c.ServerList = []Server{{ID: 1, Address: "h", Port: 1, ClientPort: 2}}
		c.ServersNum = 1
	})

	// A list built in code must agree with ServersNum.
	c := Default()
	c.ServerList = []Server{{ID: 1, Address: "h", Port: 1, ClientPort: 2}}
	checkErr(t, c.Validate(), errInvalid, "serversNum", "3")

	c = Default()
	c.ServerList = make([]Server, limits.MaxServers+1)
	for i := range c.ServerList {
		c.ServerList[i] = Server{ID: uint64(i + 1), Address: "h", Port: 1000 + i, ClientPort: 2000 + i}
	}
	c.ServersNum = len(c.ServerList)
	checkErr(t, c.Validate(), errInvalid, "servers", "100")
}

func TestUnknownKey(t *testing.T) {
	tests := []struct {
		yaml  string
		words []string
	}{
		{"mode: config\nserverNum: 5\n", []string{`"serverNum"`, "line 2", `did you mean "serversNum"`}},
		{"mode: config\n\nPersist_Path: x\n", []string{`"Persist_Path"`, "line 3", `"persistPath"`}},
		{"mode: config\nDebug: true\n", []string{`"Debug"`, "line 2", "logLevel"}},
		{"mode: config\nservers:\n  - {id: 1, address: h, port: 1, clientPort: 2, host: x}\n", []string{`"servers[0].host"`, "line 3"}},
		{"mode: config\nservers:\n  - id: 1\n    adress: h\n", []string{`"servers[0].adress"`, "line 4", `"address"`}},
	}
	for _, tt := range tests {
		_, err := parse([]byte(tt.yaml))
		checkErr(t, err, errUnknownKey, tt.words...)
		if errors.Is(err, errInvalid) {
			t.Errorf("%q: an unknown key alone should not also be errInvalid: %v", tt.yaml, err)
		}
	}
	// All unknown keys are reported at once.
	_, err := parse([]byte("mode: config\nfoo: 1\nbar: 2\n"))
	checkErr(t, err, errUnknownKey, `"foo"`, `"bar"`, "line 2", "line 3")
}

func TestWrongType(t *testing.T) {
	tests := []struct {
		yaml  string
		words []string
	}{
		{"mode: config\nport: abc\n", []string{"port", "line 2", `"abc"`, "integer"}},
		{"mode: config\nserversNum: 2.5\n", []string{"serversNum", `"2.5"`, "integer"}},
		{"mode: config\nelectionTicks: '10'\n", []string{"electionTicks", "integer"}},
		{"mode: config\nmaxValueSize: 99999999999999999999999\n", []string{"maxValueSize", "integer"}},
		{"mode: config\nsnapshotEntries: true\n", []string{"snapshotEntries", `"true"`}},
		{"mode: config\naddress: [a, b]\n", []string{"address", "a list", "string"}},
		{"mode: config\nlogLevel: {a: 1}\n", []string{"logLevel", "a mapping"}},
		{"mode: [config]\n", []string{"mode", "line 1"}},
		{"mode: config\nservers: 3\n", []string{"servers", "list"}},
		{"mode: config\nservers: {id: 1}\n", []string{"servers", "a mapping", "list"}},
		{"mode: config\nservers:\n  - 5\n", []string{"servers[0]", "line 3", "mapping"}},
		{"mode: config\nservers:\n  - ~\n", []string{"servers[0]", "empty"}},
		{"mode: config\nservers:\n  - {id: -1, address: h, port: 1, clientPort: 2}\n", []string{"servers[0].id", `"-1"`}},
		{"mode: config\nservers:\n  - {id: x, address: h, port: 1, clientPort: 2}\n", []string{"servers[0].id", `"x"`}},
		{"mode: config\nport: 1\nport: 2\n", []string{"port", "line 3", "line 2", "twice"}},
		{"- a\n- b\n", []string{"top level", "mapping"}},
		{"mode: config\n---\nmode: default\n", []string{"single YAML document"}},
		{"mode: config\n  port: [\n", []string{"malformed YAML"}},
		{"mode: config\n? [a]\n: 1\n", []string{"line 2", "plain names"}},
	}
	for _, tt := range tests {
		_, err := parse([]byte(tt.yaml))
		checkErr(t, err, errInvalid, tt.words...)
	}
}

func TestAliases(t *testing.T) {
	c := mustParse(t, `
mode: config
port: &p 8100
clientPort: 9100
servers:
  - &s {id: 1, address: a, port: *p, clientPort: 9100}
  - {id: 2, address: b, port: *p, clientPort: 9100}
`)
	if got := c.Servers()[1].Port; got != 8100 {
		t.Fatalf("aliased port = %d, want 8100", got)
	}
	// A server listed twice through an alias is a duplicate id.
	_, err := parse([]byte("mode: config\nservers:\n  - &s {id: 1, address: a, port: 1, clientPort: 2}\n  - *s\n"))
	checkErr(t, err, errInvalid, "servers[1].id")
	// Merge keys are not part of the format.
	_, err = parse([]byte("mode: config\nservers:\n  - &s {id: 1, address: a, port: 1, clientPort: 2}\n  - {<<: *s, id: 2, address: b}\n"))
	checkErr(t, err, errUnknownKey, "servers[1].<<")
}

// TestConfigRefusesWhatLimitsRefuse: Validate reports For's refusal
// against maxValueSize, and bounds clusterId, which the overheads assume.
func TestConfigRefusesWhatLimitsRefuse(t *testing.T) {
	cfg := Default()
	cfg.MaxValueSize = limits.MaxValueSize
	if err := cfg.Validate(); err != nil {
		t.Errorf("maxValueSize %d (the limit): %v", limits.MaxValueSize, err)
	}
	cfg.MaxValueSize = limits.MaxValueSize + 1
	if err := cfg.Validate(); !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), "maxValueSize") {
		t.Errorf("maxValueSize %d: %v; want errInvalid naming maxValueSize", cfg.MaxValueSize, err)
	}
	cfg = Default()
	cfg.ClusterID = strings.Repeat("c", limits.MaxClusterIDBytes)
	if err := cfg.Validate(); err != nil {
		t.Errorf("clusterId of %d bytes: %v", limits.MaxClusterIDBytes, err)
	}
	cfg.ClusterID += "c"
	if err := cfg.Validate(); !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), "clusterId") {
		t.Errorf("clusterId of %d bytes: %v; want errInvalid naming clusterId", len(cfg.ClusterID), err)
	}
	if MaxValueSizeLimit != limits.MaxValueSize {
		t.Errorf("MaxValueSizeLimit %d, limits.MaxValueSize %d", MaxValueSizeLimit, limits.MaxValueSize)
	}
}
