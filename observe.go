package raftkv

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/raftkv/raftkv/metrics"
)

// Metrics returns the DB's metrics, or nil unless it was opened
// WithMetrics.
func (db *DB) Metrics() *metrics.Set { return db.metrics }

// MetricsHandler serves /metrics; /healthz (single hosted node) or
// /healthz/<id> for each hosted node; and Go's profiles under
// /debug/pprof/, so a live node can be profiled. It is nil unless the DB
// was opened WithMetrics.
func (db *DB) MetricsHandler() http.Handler {
	if db.metrics == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", db.metrics.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	for _, id := range db.hosted {
		mux.Handle("/healthz/"+itoa64(id), db.metrics.HealthHandler(id))
	}
	if len(db.hosted) == 1 {
		mux.Handle("/healthz", db.metrics.HealthHandler(db.hosted[0]))
	}
	return mux
}

func (db *DB) observe(op string, start time.Time, errp *error) {
	if db.metrics == nil {
		return
	}
	outcome := "ok"
	switch {
	case errp == nil || *errp == nil:
	case errors.Is(*errp, ErrNotFound):
		outcome = "not_found"
	default:
		outcome = "error"
	}
	db.metrics.ObserveClient(op, outcome, time.Since(start))
}

// samples reports the hosted nodes for metrics.
func (db *DB) samples(ctx context.Context) []metrics.NodeSample {
	st, _ := db.statusOf(ctx, db.hosted)
	out := make([]metrics.NodeSample, 0, len(st))
	for _, n := range st {
		out = append(out, metrics.NodeSample{
			ID: n.ID, Reachable: n.Reachable, Role: n.Role, Term: n.Term, Leader: n.Leader,
			Commit: n.Commit, Applied: n.Applied, FirstIndex: n.FirstIndex, LastIndex: n.LastIndex,
			SnapshotIndex: n.SnapshotIndex, LSMBytes: n.LSMBytes, VlogBytes: n.VlogBytes,
			DiskBytes: n.DiskBytes, DiskFreeBytes: n.DiskFreeBytes,
			LeaderChanges: n.LeaderChanges, Proposals: n.Proposals,
		})
	}
	return out
}

func itoa64(v uint64) string { return strconv.FormatUint(v, 10) }
