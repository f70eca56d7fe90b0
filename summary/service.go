package summary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Result is a summary with where it came from.
type Result struct {
	Summary    Summary
	Cached     bool // served from the cache
	Stale      bool // served from the stale copy because the store failed
	ComputedAt time.Time

	body *encodedBody // shared by the answers of the in-process tier
}

// Metrics are the service's Prometheus collectors.
type Metrics struct {
	cacheRequests *prometheus.CounterVec
	localHits     prometheus.Counter
	storeQueries  *prometheus.HistogramVec
}

// NewMetrics registers the service's collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_cache_requests_total",
			Help: "Summary cache look-ups by result: hit, miss, stale (served the stale copy while the store failed) or error (Redis failed).",
		}, []string{"result"}),
		localHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_cache_local_hits_total",
			Help: "Summary cache hits answered from this instance's memory, without a Redis round trip (also counted as hits in analytics_cache_requests_total).",
		}),
		storeQueries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "analytics_store_query_duration_seconds",
			Help:    "Time to compute one summary in the store, by outcome (ok or error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
	}
	for _, r := range []string{"hit", "miss", "stale", "error"} {
		m.cacheRequests.WithLabelValues(r)
	}
	for _, o := range []string{"ok", "error"} {
		m.storeQueries.WithLabelValues(o) // exported from the start, for dashboards
	}
	reg.MustRegister(m.cacheRequests, m.localHits, m.storeQueries)
	return m
}

// Service answers summaries cache-aside: Redis first, the store on a miss,
// one store query per key at a time in this process.
type Service struct {
	store        Store
	cache        Cache
	local        *localTier // nil: off
	log          *slog.Logger
	metrics      *Metrics
	queryTimeout time.Duration
	interval     time.Duration // the refresh interval (0: unknown)
	now          func() time.Time
	group        singleflight.Group
	lastCacheLog atomic.Int64 // unix nanos of the last logged cache error
	// inflight counts computations, which outlive impatient callers. Not
	// a WaitGroup: a live stream or a late request may start one while
	// shutdown waits, which a WaitGroup forbids.
	inflight atomic.Int64
}

// Wait blocks until no computation is running, so that shutdown closes the
// pools after the last one (a caller that left does not stop its
// computation: others may be waiting on it).
func (s *Service) Wait() {
	for s.inflight.Load() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	// QueryTimeout bounds one store computation; it is detached from the
	// request so that one impatient client does not fail the others
	// waiting on the same key. Zero: 30s.
	QueryTimeout time.Duration
	// LocalEntries bounds the in-process tier in front of the cache; zero
	// turns it off. Its entries live until the next RefreshInterval
	// boundary and at most CacheTTL.
	LocalEntries int
	// RefreshInterval is the live stream's step. A cached answer for a
	// range that had not ended when it was computed (an absolute range
	// ending in the future) is used only within the interval it was
	// computed in, as a relative range's is.
	RefreshInterval time.Duration
	CacheTTL        time.Duration
	Logger          *slog.Logger
	Metrics         *Metrics
}

// NewService builds a Service. cache may be nil (no caching).
func NewService(store Store, cache Cache, o ServiceOptions) *Service {
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	s := &Service{store: store, cache: cache, log: o.Logger, metrics: o.Metrics,
		queryTimeout: o.QueryTimeout, interval: o.RefreshInterval, now: time.Now}
	if cache != nil && o.LocalEntries > 0 && o.RefreshInterval > 0 && o.CacheTTL > 0 {
		s.local = newLocalTier(o.RefreshInterval, o.CacheTTL, o.LocalEntries)
	}
	return s
}

// Invalidate forgets the in-process answer for the range key: a newer
// snapshot of it exists (the live stream calls it when another instance
// published one; that instance wrote the cache first).
func (s *Service) Invalidate(key string) {
	if s.local != nil {
		s.local.invalidate(key)
	}
}

// Get returns the summary of r.
func (s *Service) Get(ctx context.Context, r Range) (Result, error) {
	key := r.Key()
	if s.local != nil {
		if res, ok := s.local.get(key, s.now()); ok {
			s.metrics.cacheRequests.WithLabelValues("hit").Inc()
			s.metrics.localHits.Inc()
			return res, nil
		}
	}
	if s.cache != nil {
		e, ok, err := s.cache.Get(ctx, key)
		switch {
		case err != nil:
			s.cacheFailed(err)
		case ok && !s.current(r, e.ComputedAt):
			// Computed before the range ended, in an earlier interval:
			// events may have arrived since.
			s.metrics.cacheRequests.WithLabelValues("miss").Inc()
		case ok:
			s.metrics.cacheRequests.WithLabelValues("hit").Inc()
			e.Summary.Effective = e.Effective
			res := Result{Summary: e.Summary, Cached: true, ComputedAt: e.ComputedAt}
			if s.local != nil {
				s.local.put(key, res, s.now())
			}
			return res, nil
		default:
			s.metrics.cacheRequests.WithLabelValues("miss").Inc()
		}
	}
	ch := s.group.DoChan(key, func() (any, error) { return s.compute(ctx, r, key) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return s.fallback(ctx, key, res.Err)
		}
		return res.Val.(Result), nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// current reports whether an answer for r computed at is still the
// answer: r had ended when it was computed (what a later event can change
// is left to the cache's TTL, as before), or it was computed within the
// current refresh interval. A relative range resolves to the start of the
// interval it is asked in, so its answers are always the former; an
// absolute range that ends in the future is the latter, or an answer up
// to CACHE_TTL old would be served while the stream shows newer numbers.
func (s *Service) current(r Range, at time.Time) bool {
	if s.interval <= 0 || !at.Before(r.To) {
		return true
	}
	return Tick(at, s.interval) == Tick(s.now(), s.interval)
}

// Refresh recomputes r in the store and writes the cache, whatever the
// cache holds. The live stream calls it once per interval per range.
func (s *Service) Refresh(ctx context.Context, r Range) (Result, error) {
	key := r.Key()
	v, err, _ := s.group.Do("refresh:"+key, func() (any, error) { return s.compute(ctx, r, key) })
	if err != nil {
		return Result{}, err
	}
	return v.(Result), nil
}

func (s *Service) compute(ctx context.Context, r Range, key string) (Result, error) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.queryTimeout)
	defer cancel()
	start := s.now()
	sum, err := s.store.Summary(ctx, r)
	elapsed := s.now().Sub(start)
	if err != nil {
		s.metrics.storeQueries.WithLabelValues("error").Observe(elapsed.Seconds())
		return Result{}, err
	}
	s.metrics.storeQueries.WithLabelValues("ok").Observe(elapsed.Seconds())
	if sum.EventsByType == nil {
		sum.EventsByType = TypeCounts{}
	}
	res := Result{Summary: sum, ComputedAt: start.UTC()}
	if s.cache != nil {
		if err := s.cache.Set(ctx, key, Entry{Summary: sum, ComputedAt: res.ComputedAt, Effective: sum.Effective}); err != nil {
			s.cacheFailed(err)
		} else if s.local != nil {
			s.local.put(key, res, s.now())
		}
	}
	return res, nil
}

// fallback serves the stale copy when the store failed.
func (s *Service) fallback(ctx context.Context, key string, storeErr error) (Result, error) {
	if s.cache != nil {
		e, ok, err := s.cache.GetStale(ctx, key)
		if err == nil && ok {
			s.metrics.cacheRequests.WithLabelValues("stale").Inc()
			s.log.WarnContext(ctx, "store failed; serving stale summary", "range", key, "err", storeErr)
			e.Summary.Effective = e.Effective
			return Result{Summary: e.Summary, Cached: true, Stale: true, ComputedAt: e.ComputedAt}, nil
		}
	}
	return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, storeErr)
}

// cacheFailed counts a Redis failure and logs it at most every 10 s, so an
// outage does not flood the log with one line per request.
func (s *Service) cacheFailed(err error) {
	s.metrics.cacheRequests.WithLabelValues("error").Inc()
	now := s.now().UnixNano()
	last := s.lastCacheLog.Load()
	if now-last > int64(10*time.Second) && s.lastCacheLog.CompareAndSwap(last, now) {
		s.log.Warn("cache unavailable; answering from the store", "err", err)
	}
}

// IsUnavailable reports whether err means the data cannot be had now.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }
