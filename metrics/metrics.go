package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/raftkv/raftkv/nodestatus"
)

// Source returns the current state of the nodes a process hosts.
type Source func(ctx context.Context) []nodestatus.Status

// Set is the metrics of one process.
type Set struct {
	reg    *prometheus.Registry
	source Source
	// up is reported for every node, nodeMetrics only for those that
	// answered.
	up          *prometheus.Desc
	nodeMetrics []nodeMetric
	// memberMatch and memberLag are reported by the leader, per member.
	memberMatch, memberLag *prometheus.Desc
	client                 *prometheus.HistogramVec
	read                   prometheus.Histogram
}

// New builds a Set whose node gauges are read from source at each scrape.
func New(source Source) *Set {
	s := &Set{
		reg:         prometheus.NewRegistry(),
		source:      source,
		up:          prometheus.NewDesc("raftkv_node_up", "1 if the node answered its status request.", []string{"node"}, nil),
		nodeMetrics: nodeMetrics(),
		memberMatch: prometheus.NewDesc("raftkv_member_match_index", "Highest log index the leader knows replicated on each member, by role; reported by the leader.", []string{"node", "member", "role"}, nil),
		memberLag:   prometheus.NewDesc("raftkv_member_lag_entries", "Entries of the leader's log each member lacks, by role; reported by the leader.", []string{"node", "member", "role"}, nil),
		client: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "raftkv_client_request_seconds",
			Help:    "Latency of client requests (put, update, remove, get) by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"op", "outcome"}),
		read: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftkv_read_index_seconds",
			Help:    "Time for a leader to confirm a ReadIndex with a quorum.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 16),
		}),
	}
	s.reg.MustRegister(s.client, s.read, (*nodeCollector)(s),
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return s
}

// ObserveClient records one client request; outcome is "ok", "not_found"
// or "error".
func (s *Set) ObserveClient(op, outcome string, d time.Duration) {
	s.client.WithLabelValues(op, outcome).Observe(d.Seconds())
}

// ObserveReadIndex records how long one ReadIndex took to confirm.
func (s *Set) ObserveReadIndex(d time.Duration) { s.read.Observe(d.Seconds()) }

// Handler serves the registry in the Prometheus text format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// Health is what /healthz reports for one node: its status and the
// verdict.
type Health struct {
	// Node is the node's id, whether or not it answered (Status.ID is 0
	// when it did not). Readers of /healthz know it by this name.
	Node uint64 `json:"node"`
	nodestatus.Status
	CaughtUp bool `json:"caught_up"`
	Healthy  bool `json:"healthy"`
}

// maxApplyLag is how far applied may trail commit for a node to count as
// caught up.
const maxApplyLag = 1000

// HealthHandler serves /healthz for node id: 200 when it knows a leader and
// its state machine is within maxApplyLag of its commit index, else 503.
func (s *Set) HealthHandler(id uint64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		h := Health{Node: id}
		for _, n := range s.source(ctx) {
			if n.ID != id || !n.Reachable {
				continue
			}
			h.Status = n
			h.CaughtUp = n.ApplyLag() <= maxApplyLag
			h.Healthy = n.Leader != 0 && h.CaughtUp
		}
		w.Header().Set("Content-Type", "application/json")
		if !h.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
}

// nodeCollector turns the nodes' status into metrics at scrape time.
type nodeCollector Set

// nodeMetric is one metric of a node, read from its status.
type nodeMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(n nodestatus.Status) float64
	// label is the value of the desc's second label, if it has one.
	label string
}

// nodeMetrics lists every metric read from a node's status: adding one is
// one line here (and, for a new number, a field of nodestatus.Status).
func nodeMetrics() []nodeMetric {
	node := []string{"node"}
	gauge := func(name, help string, value func(n nodestatus.Status) float64) nodeMetric {
		return nodeMetric{desc: prometheus.NewDesc(name, help, node, nil), kind: prometheus.GaugeValue, value: value}
	}
	counter := func(name, help string, value func(n nodestatus.Status) float64) nodeMetric {
		return nodeMetric{desc: prometheus.NewDesc(name, help, node, nil), kind: prometheus.CounterValue, value: value}
	}
	storage := prometheus.NewDesc("raftkv_storage_bytes", "Badger on-disk size as Badger last estimated it (refreshed about once a minute).", []string{"node", "kind"}, nil)
	return []nodeMetric{
		gauge("raftkv_node_term", "Current Raft term.", func(n nodestatus.Status) float64 { return float64(n.Term) }),
		gauge("raftkv_node_is_leader", "1 if the node is the leader.", func(n nodestatus.Status) float64 { return b2f(n.Role == "leader") }),
		gauge("raftkv_node_has_leader", "1 if the node knows a leader.", func(n nodestatus.Status) float64 { return b2f(n.Leader != 0) }),
		gauge("raftkv_node_commit_index", "Highest log index known committed.", func(n nodestatus.Status) float64 { return float64(n.Commit) }),
		gauge("raftkv_node_applied_index", "Highest log index applied to the state machine.", func(n nodestatus.Status) float64 { return float64(n.Applied) }),
		gauge("raftkv_node_apply_lag", "Committed entries not yet applied.", func(n nodestatus.Status) float64 { return float64(n.ApplyLag()) }),
		gauge("raftkv_node_log_entries", "Entries in the log (since the last snapshot).", func(n nodestatus.Status) float64 { return float64(n.LogEntries()) }),
		gauge("raftkv_node_snapshot_index", "Index of the last snapshot the log starts after.", func(n nodestatus.Status) float64 { return float64(n.SnapshotIndex) }),
		{desc: storage, kind: prometheus.GaugeValue, label: "lsm", value: func(n nodestatus.Status) float64 { return float64(n.LSMBytes) }},
		{desc: storage, kind: prometheus.GaugeValue, label: "vlog", value: func(n nodestatus.Status) float64 { return float64(n.VlogBytes) }},
		gauge("raftkv_disk_bytes", "Disk space the node's data directory takes (allocated bytes, read at scrape time).", func(n nodestatus.Status) float64 { return float64(n.DiskBytes) }),
		gauge("raftkv_disk_free_bytes", "Free space on the filesystem of the node's data directory; below diskReserve the node stops writing.", func(n nodestatus.Status) float64 { return float64(n.DiskFreeBytes) }),
		counter("raftkv_leader_changes_total", "Leader changes this node observed since it started.", func(n nodestatus.Status) float64 { return float64(n.LeaderChanges) }),
		counter("raftkv_proposals_total", "Proposals this node accepted as leader since it started.", func(n nodestatus.Status) float64 { return float64(n.Proposals) }),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.memberMatch
	ch <- c.memberLag
	for _, m := range c.nodeMetrics {
		ch <- m.desc
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range c.source(ctx) {
		id := strconv.FormatUint(n.ID, 10)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(n.Reachable), id)
		if !n.Reachable {
			continue
		}
		for _, m := range c.nodeMetrics {
			labels := []string{id}
			if m.label != "" {
				labels = append(labels, m.label)
			}
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(n), labels...)
		}
		if n.Role != "leader" {
			continue
		}
		for _, m := range n.Members {
			member := strconv.FormatUint(m.ID, 10)
			ch <- prometheus.MustNewConstMetric(c.memberMatch, prometheus.GaugeValue, float64(m.Match), id, member, m.Role)
			ch <- prometheus.MustNewConstMetric(c.memberLag, prometheus.GaugeValue, float64(m.Lag), id, member, m.Role)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
