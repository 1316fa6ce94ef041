package main

import (
	"encoding/json"
	"strings"
	"testing"
)

type memberRow struct {
	ID            uint64 `json:"id"`
	Role          string `json:"role"`
	Match         uint64 `json:"match"`
	PeerAddress   string `json:"peer_address"`
	ClientAddress string `json:"client_address"`
}

func memberList(t *testing.T, ep string) []memberRow {
	t.Helper()
	var ms []memberRow
	out := mustRun(t, nil, "member", "list", "--json", ep)
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("member list --json: %v\n%s", err, out)
	}
	return ms
}

func TestMember(t *testing.T) {
	t.Setenv(endpointsEnv, "")
	ep := "--endpoints=" + startCluster(t)
	mustRun(t, nil, "put", ep, "k", "v") // the leader has an entry of its term

	ms := memberList(t, ep)
	if len(ms) != 3 {
		t.Fatalf("member list: %+v, want 3 members", ms)
	}
	for i, m := range ms {
		if m.ID != uint64(i+1) || m.Role != "voter" || m.PeerAddress == "" || m.Match == 0 {
			t.Fatalf("member %+v: want voter %d with a peer address and a match index", m, i+1)
		}
	}
	table := mustRun(t, nil, "member", "list", ep)
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("member list printed:\n%s", table)
	}

	// Refusals: exit 1, the reason named, nothing changed.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "2", "--peer", "127.0.0.1:1"}, "already a member"},
		{[]string{"promote", "9"}, "invalid membership change"},
		{[]string{"promote", "2"}, "already a member"},
		{[]string{"remove", "9"}, "not a member"},
	} {
		code, _, stderr := runCmd(t, nil, append([]string{"member", ep}, c.args...)...)
		if code != exitFailure || !strings.Contains(stderr, c.want) {
			t.Errorf("member %v: exit %d, stderr %q; want exit 1 naming %q", c.args, code, stderr, c.want)
		}
	}
	if got := memberList(t, ep); len(got) != 3 {
		t.Fatalf("refused changes changed the members: %+v", got)
	}

	out := mustRun(t, nil, "member", "remove", "3", ep)
	if !strings.Contains(out, "done") {
		t.Fatalf("member remove 3 printed %q", out)
	}
	if got := memberList(t, ep); len(got) != 2 || got[0].ID != 1 || got[1].ID != 2 {
		t.Fatalf("after member remove 3: %+v", got)
	}
	mustRun(t, nil, "put", ep, "after", "removal")
}

func TestMemberUsage(t *testing.T) {
	t.Setenv(endpointsEnv, "")
	for _, args := range [][]string{
		{"member"},
		{"member", "join", "--endpoints=h:1"},
		{"member", "add", "--endpoints=h:1"},
		{"member", "add", "4", "--endpoints=h:1"}, // no --peer
		{"member", "add", "0", "--peer", "h:2", "--endpoints=h:1"},
		{"member", "remove", "x", "--endpoints=h:1"},
		{"member", "promote", "1", "2", "--endpoints=h:1"},
		{"member", "list", "extra", "--endpoints=h:1"},
		{"member", "list"}, // no endpoints
	} {
		if code, _, stderr := runCmd(t, nil, args...); code != exitUsage || !strings.Contains(stderr, "usage:") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
}
