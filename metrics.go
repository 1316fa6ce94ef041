package raftkv

import (
	"net/http"
	"net/http/pprof"
	"strconv"
)

// MetricsHandler serves /metrics; /healthz/<id> for each hosted node, and
// /healthz too when the DB hosts a single node; and Go's profiles under
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
		mux.Handle("/healthz/"+strconv.FormatUint(id, 10), db.metrics.HealthHandler(id))
	}
	if len(db.hosted) == 1 {
		mux.Handle("/healthz", db.metrics.HealthHandler(db.hosted[0]))
	}
	return mux
}
