package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that no input panics Parse, that every refusal wraps one
// of the sentinels, and that every accepted file yields a Config that passes
// Validate and has as many servers as ServersNum says.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../config.yaml"); err == nil {
		f.Add(data)
	}
	for _, seed := range []string{
		"",
		"mode: default\n",
		"mode: config\n",
		"mode: config\nserversNum: 5\nport: 7000\nclientPort: 7100\nmetricsPort: 7200\n",
		"mode: config\nservers:\n  - {id: 1, address: a, port: 1, clientPort: 2}\n  - {id: 2, address: '::1', port: 1, clientPort: 2, metricsPort: 3}\n",
		"mode: config\nservers:\n  - &s {id: 1, address: a, port: 1, clientPort: 2}\n  - *s\n",
		"mode: config\ntickInterval: 1h\nelectionTicks: 3\nheartbeatTicks: 2\nlogLevel: info\n",
		"mode: config\nport: &a [*a]\n",
		"mode: config\nserverNum: 3\n",
		"mode: config\n---\nmode: config\n",
		"{mode: config, port: 65535, serversNum: 1}",
		"mode: !!binary Y29uZmln\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data)
		if err != nil {
			if !errors.Is(err, errInvalid) && !errors.Is(err, errUnknownKey) {
				t.Fatalf("parse(%q) error wraps no sentinel: %v", data, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parse(%q) accepted a Config that Validate refuses: %v", data, err)
		}
		if n := len(c.Servers()); n != c.ServersNum || n < 1 {
			t.Fatalf("parse(%q): %d servers, ServersNum %d", data, n, c.ServersNum)
		}
		for _, s := range c.Servers() {
			if got, ok := c.Server(s.ID); !ok || got != s || c.RemoteAddr(s.ID) == "" {
				t.Fatalf("parse(%q): lookup of server %d failed", data, s.ID)
			}
		}
	})
}
