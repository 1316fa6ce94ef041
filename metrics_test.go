package raftkv

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func scrape(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestMetricsAndHealth(t *testing.T) {
	db := openTest(t, testConfig(t, 3), WithMetrics())
	defer db.Close()
	ctx := ctxT(t)
	for i := 0; i < 10; i++ {
		if err := db.Put(ctx, key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Get(ctx, key(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Get(ctx, "absent"); err == nil {
		t.Fatal("Get absent succeeded")
	}
	h := db.MetricsHandler()
	code, body := scrape(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`raftkv_client_request_seconds_count{op="put",outcome="ok"} 10`,
		`raftkv_client_request_seconds_count{op="get",outcome="ok"} 10`,
		`raftkv_client_request_seconds_count{op="get",outcome="not_found"} 1`,
		`raftkv_node_up{node="1"} 1`,
		`raftkv_node_has_leader{node="3"} 1`,
		`raftkv_storage_bytes{kind="vlog",node="2"}`,
		`raftkv_read_index_seconds_count`,
		`raftkv_leader_changes_total{node="1"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "raftkv_read_index_seconds_count 0\n") {
		t.Error("no ReadIndex latency was observed")
	}
	leader := waitLeader(t, db)
	// The leader reports each member's match index and lag.
	for _, m := range []string{"1", "2", "3"} {
		want := `raftkv_member_lag_entries{member="` + m + `",node="` + itoa(int(leader)) + `",role="voter"}`
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = scrape(t, h, "/healthz/"+itoa(int(leader)))
	var hl struct {
		Healthy bool   `json:"healthy"`
		Role    string `json:"role"`
		Members []struct {
			ID    uint64 `json:"id"`
			Role  string `json:"role"`
			Match uint64 `json:"match"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(body), &hl); err != nil || code != 200 || !hl.Healthy || hl.Role != "leader" {
		t.Fatalf("/healthz of the leader: %d %s (%v)", code, body, err)
	}
	if len(hl.Members) != 3 || hl.Members[0].Role != "voter" || hl.Members[0].Match == 0 {
		t.Fatalf("/healthz of the leader reports members %+v, want 3 voters with match indexes", hl.Members)
	}
	// A stopped node is unhealthy.
	var other uint64 = 1
	if leader == 1 {
		other = 2
	}
	if err := db.stopNode(other); err != nil {
		t.Fatal(err)
	}
	if code, body := scrape(t, h, "/healthz/"+itoa(int(other))); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz of a stopped node: %d %s, want 503", code, body)
	}
}

// A write through the client API takes the same path as the DB's own, so
// raftkv_client_request_seconds counts it: in a `raftkv serve` cluster
// every write arrives that way. (A client may send an attempt again after
// a slow answer, and each attempt a node serves is counted, hence "at
// least".)
func TestMetricsCountClientAPIWrites(t *testing.T) {
	db := openTest(t, testConfig(t, 3), WithMetrics())
	defer db.Close()
	ctx := ctxT(t)
	c, err := Dial(ctx, serveClients(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		if err := c.Put(ctx, key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Update(ctx, key(0), []byte("w")); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, key(1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove absent: %v, want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, key(0)); err != nil {
		t.Fatal(err)
	}
	_, body := scrape(t, db.MetricsHandler(), "/metrics")
	for series, least := range map[string]int{
		`raftkv_client_request_seconds_count{op="put",outcome="ok"}`:           5,
		`raftkv_client_request_seconds_count{op="update",outcome="ok"}`:        1,
		`raftkv_client_request_seconds_count{op="remove",outcome="ok"}`:        1,
		`raftkv_client_request_seconds_count{op="remove",outcome="not_found"}`: 1,
		`raftkv_client_request_seconds_count{op="get",outcome="ok"}`:           1,
	} {
		if got := sampleValue(body, series); got < float64(least) {
			t.Errorf("%s = %v (-1: absent), want at least %d", series, got, least)
		}
	}
}

// sampleValue is the value of series in a Prometheus text exposition, or
// -1 when it is absent.
func sampleValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}
