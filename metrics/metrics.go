package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NodeSample is one node's state at scrape time.
type NodeSample struct {
	ID            uint64
	Reachable     bool
	Role          string
	Term          uint64
	Leader        uint64
	Commit        uint64
	Applied       uint64
	FirstIndex    uint64
	LastIndex     uint64
	SnapshotIndex uint64
	LSMBytes      uint64
	VlogBytes     uint64
	DiskBytes     uint64
	DiskFreeBytes uint64
	LeaderChanges uint64
	Proposals     uint64
}

// Source returns the current samples of the nodes a process hosts.
type Source func(ctx context.Context) []NodeSample

// Set is the metrics of one process.
type Set struct {
	reg    *prometheus.Registry
	source Source
	client *prometheus.HistogramVec
	read   prometheus.Histogram
}

// New builds a Set whose node gauges are read from source at each scrape.
func New(source Source) *Set {
	s := &Set{
		reg:    prometheus.NewRegistry(),
		source: source,
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

// Health is what /healthz reports for one node.
type Health struct {
	Node     uint64 `json:"node"`
	Role     string `json:"role"`
	Term     uint64 `json:"term"`
	Leader   uint64 `json:"leader"`
	Commit   uint64 `json:"commit"`
	Applied  uint64 `json:"applied"`
	CaughtUp bool   `json:"caught_up"`
	Healthy  bool   `json:"healthy"`
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
			h = Health{Node: id, Role: n.Role, Term: n.Term, Leader: n.Leader, Commit: n.Commit, Applied: n.Applied}
			h.CaughtUp = n.Applied+maxApplyLag >= n.Commit
			h.Healthy = n.Leader != 0 && h.CaughtUp
		}
		w.Header().Set("Content-Type", "application/json")
		if !h.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
}

// nodeCollector turns node samples into gauges at scrape time.
type nodeCollector Set

var (
	descTerm      = prometheus.NewDesc("raftkv_node_term", "Current Raft term.", []string{"node"}, nil)
	descLeader    = prometheus.NewDesc("raftkv_node_is_leader", "1 if the node is the leader.", []string{"node"}, nil)
	descHasLeader = prometheus.NewDesc("raftkv_node_has_leader", "1 if the node knows a leader.", []string{"node"}, nil)
	descCommit    = prometheus.NewDesc("raftkv_node_commit_index", "Highest log index known committed.", []string{"node"}, nil)
	descApplied   = prometheus.NewDesc("raftkv_node_applied_index", "Highest log index applied to the state machine.", []string{"node"}, nil)
	descLag       = prometheus.NewDesc("raftkv_node_apply_lag", "Committed entries not yet applied.", []string{"node"}, nil)
	descLog       = prometheus.NewDesc("raftkv_node_log_entries", "Entries in the log (since the last snapshot).", []string{"node"}, nil)
	descSnap      = prometheus.NewDesc("raftkv_node_snapshot_index", "Index of the last snapshot the log starts after.", []string{"node"}, nil)
	descBytes     = prometheus.NewDesc("raftkv_storage_bytes", "Badger on-disk size as Badger last estimated it (refreshed about once a minute).", []string{"node", "kind"}, nil)
	descDisk      = prometheus.NewDesc("raftkv_disk_bytes", "Disk space the node's data directory takes (allocated bytes, read at scrape time).", []string{"node"}, nil)
	descDiskFree  = prometheus.NewDesc("raftkv_disk_free_bytes", "Free space on the filesystem of the node's data directory; below diskReserve the node stops writing.", []string{"node"}, nil)
	descChanges   = prometheus.NewDesc("raftkv_leader_changes_total", "Leader changes this node observed since it started.", []string{"node"}, nil)
	descProposals = prometheus.NewDesc("raftkv_proposals_total", "Proposals this node accepted as leader since it started.", []string{"node"}, nil)
	descUp        = prometheus.NewDesc("raftkv_node_up", "1 if the node answered its status request.", []string{"node"}, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descLeader, descHasLeader, descCommit, descApplied, descLag, descLog, descSnap, descBytes, descChanges, descProposals, descUp} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range c.source(ctx) {
		id := strconv.FormatUint(n.ID, 10)
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{id}, labels...)...)
		}
		gauge(descUp, b2f(n.Reachable))
		if !n.Reachable {
			continue
		}
		gauge(descTerm, float64(n.Term))
		gauge(descLeader, b2f(n.Role == "leader"))
		gauge(descHasLeader, b2f(n.Leader != 0))
		gauge(descCommit, float64(n.Commit))
		gauge(descApplied, float64(n.Applied))
		gauge(descLag, float64(n.Commit-min(n.Commit, n.Applied)))
		gauge(descLog, float64(n.LastIndex+1-min(n.LastIndex+1, n.FirstIndex)))
		gauge(descSnap, float64(n.SnapshotIndex))
		gauge(descBytes, float64(n.LSMBytes), "lsm")
		gauge(descBytes, float64(n.VlogBytes), "vlog")
		gauge(descDisk, float64(n.DiskBytes))
		gauge(descDiskFree, float64(n.DiskFreeBytes))
		ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(n.LeaderChanges), id)
		ch <- prometheus.MustNewConstMetric(descProposals, prometheus.CounterValue, float64(n.Proposals), id)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
