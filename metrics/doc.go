// Package metrics exposes a RaftKV process's health to operators: a
// Prometheus registry of Raft and storage gauges (sampled from the nodes'
// status at scrape time, so nothing is added to the write or read path),
// latency histograms fed by small hooks, and a /healthz handler that says
// whether a node has a leader and has caught up.
//
// The numbers come from nodestatus.Status, the one node status type; each
// node metric is one entry of nodeMetrics, read from it.
//
// It owns only the presentation of numbers; it must never reach into a
// node's state or storage itself, and it keeps no package-level state:
// every Set has its own registry. It carries no compatibility promise:
// programs use raftkv.WithMetrics and DB.MetricsHandler.
package metrics
