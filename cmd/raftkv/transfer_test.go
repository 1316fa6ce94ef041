package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// leaderOf reads `raftkv status --json` and returns the leader of the
// highest term and that term (0, 0 when none).
func leaderOf(t *testing.T, ep string) (id, term uint64) {
	t.Helper()
	var nodes []struct {
		ID   uint64 `json:"id"`
		Role string `json:"role"`
		Term uint64 `json:"term"`
	}
	out := mustRun(t, nil, "status", "--json", ep)
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, n := range nodes {
		if n.Role == "leader" && n.Term >= term {
			id, term = n.ID, n.Term
		}
	}
	return id, term
}

func TestTransferLeader(t *testing.T) {
	t.Setenv(endpointsEnv, "")
	ep := "--endpoints=" + startCluster(t)
	old, oldTerm := leaderOf(t, ep)
	if old == 0 {
		t.Fatal("no leader")
	}
	to := old%3 + 1

	out := mustRun(t, nil, "transfer-leader", ep, "--to", strconv.FormatUint(to, 10))
	if want := "node " + strconv.FormatUint(to, 10) + " leads (term "; !strings.HasPrefix(out, want) {
		t.Fatalf("transfer-leader --to %d printed %q, want it to start with %q", to, out, want)
	}
	if now, term := leaderOf(t, ep); now != to || term <= oldTerm {
		t.Fatalf("after transfer-leader --to %d, status shows leader %d in term %d (was %d in term %d)", to, now, term, old, oldTerm)
	}

	// Without --to the leader chooses; --json reports who.
	var res transferResult
	js := mustRun(t, nil, "transfer-leader", "--json", ep)
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatalf("transfer-leader --json: %v\n%s", err, js)
	}
	if res.To != 0 || res.Leader == 0 || res.Leader == to {
		t.Fatalf("transfer-leader --json from leader %d = %+v; want to 0 and another leader", to, res)
	}
	if now, term := leaderOf(t, ep); now != res.Leader || term != res.Term {
		t.Fatalf("status shows leader %d in term %d; transfer-leader reported %+v", now, term, res)
	}

	// Refused: not a member, and the leader itself. Nothing moves.
	for _, bad := range []uint64{99, res.Leader} {
		code, out, errs := runCmd(t, nil, "transfer-leader", ep, "--to", strconv.FormatUint(bad, 10))
		if code != exitFailure || out != "" || !strings.Contains(errs, "invalid leadership transfer") {
			t.Errorf("transfer-leader --to %d: exit %d, stdout %q, stderr %q; want 1 and the reason", bad, code, out, errs)
		}
	}
	if now, term := leaderOf(t, ep); now != res.Leader || term != res.Term {
		t.Fatalf("refused transfers moved leadership: leader %d in term %d, was %+v", now, term, res)
	}
}
