package stream

import "github.com/prometheus/client_golang/prometheus"

// role is how an instance took part in one interval of a range: the
// label of analytics_stream_refreshes_total.
type role string

const (
	roleLeader   role = "leader"   // held the lease, computed and published
	roleFollower role = "follower" // received another instance's snapshot
	roleLocal    role = "local"    // computed without coordination (Redis failed)
	roleError    role = "error"    // the computation failed
)

// publishResult is the label of analytics_stream_publishes_total.
type publishResult string

const (
	publishOK     publishResult = "published"
	publishFenced publishResult = "fenced" // a newer snapshot was stored
	publishError  publishResult = "error"
)

// rejectReason is the label of analytics_stream_rejected_total.
type rejectReason string

const (
	rejectClients       rejectReason = "clients"
	rejectRanges        rejectReason = "ranges"
	rejectRangesPerAddr rejectReason = "ranges_per_addr"
)

// Metrics are the stream's Prometheus collectors.
type Metrics struct {
	clients         prometheus.Gauge
	ranges          prometheus.Gauge
	clusterRanges   prometheus.Gauge
	refreshes       *prometheus.CounterVec
	contention      prometheus.Counter
	publishes       *prometheus.CounterVec
	deliveries      prometheus.Counter
	slow            prometheus.Counter
	rejected        *prometheus.CounterVec
	evicted         prometheus.Counter
	delays          *prometheus.CounterVec
	refreshDuration prometheus.Histogram
	lag             prometheus.Histogram
}

// NewMetrics registers the stream collectors on reg (nil: a private one).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "analytics_stream_clients", Help: "Connected stream clients on this instance."}),
		ranges:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "analytics_stream_ranges", Help: "Live ranges held by this instance."}),
		clusterRanges: prometheus.NewGauge(prometheus.GaugeOpts{Name: "analytics_stream_cluster_ranges",
			Help: "Distinct live ranges refreshed across the instances sharing this Redis, each counted once however many instances hold it, as this instance counted them in the last interval (use max over instances); this instance's own when Redis fails."}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "analytics_stream_refreshes_total",
			Help: "Range intervals by role: leader (computed and published), follower (received), local (computed without Redis), error."}, []string{"role"}),
		contention: prometheus.NewCounter(prometheus.CounterOpts{Name: "analytics_stream_lease_contention_total", Help: "Lease attempts lost to another instance."}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "analytics_stream_publishes_total",
			Help: "Snapshot publications by result: published, fenced (a newer one existed), error."}, []string{"result"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "analytics_stream_deliveries_total", Help: "Snapshots written to clients."}),
		slow:       prometheus.NewCounter(prometheus.CounterOpts{Name: "analytics_stream_slow_client_disconnects_total", Help: "Clients dropped because a write missed its deadline."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "analytics_stream_rejected_total",
			Help: "Stream connections refused by limit: clients, ranges, or ranges_per_addr."}, []string{"reason"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "analytics_stream_ranges_evicted_total",
			Help: "Idle ranges (no clients, in their grace period) forgotten early to make room for a new range at STREAM_MAX_RANGES."}),
		delays: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "analytics_stream_delayed_intervals_total",
			Help: "Range intervals without a snapshot, whose clients this instance told so with a status event, by reason: storage_unavailable (the computation failed) or refresh_overdue (nothing arrived in time)."}, []string{"reason"}),
		refreshDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "analytics_stream_refresh_duration_seconds",
			Help: "Time to compute one range refresh.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "analytics_stream_delivery_lag_seconds",
			Help: "From a leader's publish to local fan-out on this instance.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}),
	}
	// Every series exists from the start, so that rate() sees the first
	// increment.
	for _, r := range []role{roleLeader, roleFollower, roleLocal, roleError} {
		m.refreshes.WithLabelValues(string(r))
	}
	for _, r := range []publishResult{publishOK, publishFenced, publishError} {
		m.publishes.WithLabelValues(string(r))
	}
	for _, r := range []rejectReason{rejectClients, rejectRanges, rejectRangesPerAddr} {
		m.rejected.WithLabelValues(string(r))
	}
	for _, r := range []string{ReasonStorage, ReasonOverdue} {
		m.delays.WithLabelValues(r)
	}
	reg.MustRegister(m.clients, m.ranges, m.clusterRanges, m.refreshes, m.contention, m.publishes, m.deliveries, m.slow, m.rejected, m.evicted, m.delays, m.refreshDuration, m.lag)
	return m
}

func (m *Metrics) refreshed(r role)        { m.refreshes.WithLabelValues(string(r)).Inc() }
func (m *Metrics) publish(r publishResult) { m.publishes.WithLabelValues(string(r)).Inc() }
func (m *Metrics) reject(r rejectReason)   { m.rejected.WithLabelValues(string(r)).Inc() }
func (m *Metrics) delayed(reason string)   { m.delays.WithLabelValues(reason).Inc() }
