package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeRefuses(t *testing.T) {
	// A client port that is taken: serve fails before it opens the node.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	_, peer, _ := net.SplitHostPort(deadAddr(t)) // never reached
	peerPort, _ := strconv.Atoi(peer)
	good := writeConfig(t, "mode: config\npersistPath: "+t.TempDir()+"\nservers:\n"+
		"  - id: 1\n    address: 127.0.0.1\n    port: "+strconv.Itoa(peerPort)+"\n    clientPort: "+strconv.Itoa(busyPort)+"\n")
	bad := writeConfig(t, "mode: config\nserverNum: 3\n")
	badValue := writeConfig(t, "mode: config\nclientPort: abc\n")

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no flags", []string{"serve"}, exitUsage, "--config FILE and --id N are required"},
		{"no id", []string{"serve", "--config", good}, exitUsage, "--id N are required"},
		{"no config", []string{"serve", "--id", "1"}, exitUsage, "--config FILE"},
		{"extra argument", []string{"serve", "--config", good, "--id", "1", "extra"}, exitUsage, "nothing else"},
		{"unknown flag", []string{"serve", "--bogus"}, exitUsage, "flag provided but not defined"},
		{"id not in config", []string{"serve", "--config", good, "--id", "7"}, exitUsage, "node 7 is not in"},
		{"unknown key", []string{"serve", "--config", bad, "--id", "1"}, exitUsage, `"serverNum"`},
		{"invalid value", []string{"serve", "--config", badValue, "--id", "1"}, exitUsage, "clientPort"},
		{"missing file", []string{"serve", "--config", filepath.Join(t.TempDir(), "none.yaml"), "--id", "1"}, exitUsage, "none.yaml"},
		{"client port taken", []string{"serve", "--config", good, "--id", "1"}, exitFailure, "client port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errs)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q does not contain %q", errs, tc.want)
			}
		})
	}
}
