package ingest

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// The sources of accepted events: the label of analytics_ingest_events_total.
const (
	SourceAPI  = "api"  // POST /api/v1/events
	SourceDemo = "demo" // the --demo trickle of live events
)

// Metrics count the events a Writer accepted, by source.
type Metrics struct {
	accepted *prometheus.CounterVec
}

// NewMetrics registers analytics_ingest_events_total on reg, every source
// at 0 from the start (rate() never counts a counter's first increment).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "analytics_ingest_events_total",
		Help: "Events stored through the ingest Writer, by source: api (POST /api/v1/events; idempotent replays not counted again) or demo (the --demo trickle).",
	}, []string{"source"})}
	for _, s := range []string{SourceAPI, SourceDemo} {
		m.accepted.WithLabelValues(s)
	}
	reg.MustRegister(m.accepted)
	return m
}

// Counted wraps w: every batch it stores (not an idempotent replay) adds
// its events to source's count.
func (m *Metrics) Counted(w Writer, source string) Writer {
	return countedWriter{w: w, accepted: m.accepted.WithLabelValues(source)}
}

type countedWriter struct {
	w        Writer
	accepted prometheus.Counter
}

func (c countedWriter) WriteEvents(ctx context.Context, keyID, idemKey string, bodyHash []byte, events []Event) (int, bool, error) {
	accepted, replayed, err := c.w.WriteEvents(ctx, keyID, idemKey, bodyHash, events)
	if err == nil && !replayed {
		c.accepted.Add(float64(accepted))
	}
	return accepted, replayed, err
}
