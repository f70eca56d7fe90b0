// Package api is the server's one HTTP edge: every route and handler, the
// middleware (request ids, logging, panic recovery, metrics, CORS, body
// limits, authentication, rate limits), the one JSON error shape, the
// health check and the dashboard's assets. Below it the domain packages
// (summary, stream, ingest, storage) know nothing of HTTP.
//
// Routes are gorilla/mux routes; their templates are the metric labels.
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/internal/ratelimit"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// Summaries answers one range; *summary.Service is the cache-aside one.
type Summaries interface {
	Get(ctx context.Context, r summary.Range) (summary.Result, error)
}

// Deps are what the edge serves.
type Deps struct {
	Summaries Summaries          // summary endpoint
	Series    summary.Aggregator // time series and CSV export
	Broker    *stream.Broker     // live streams
	Events    ingest.Writer      // ingest (wrapped by ingest.Metrics.Counted to count what it accepts)
	Keys      *auth.Keys         // API keys (may be empty)
	// Postgres and Redis are the health checks: PostgreSQL down is 503,
	// Redis down is "degraded" (answers still come from PostgreSQL).
	Postgres, Redis func(context.Context) error
	// Storage, when set, reports partitions, bytes and oldest data in /health.
	Storage func(context.Context) (StorageHealth, error)
	// Registry gets the edge's collectors and is served at /metrics.
	Registry *prometheus.Registry
}

// Options are the edge's settings.
type Options struct {
	RefreshInterval time.Duration // the live step: "now" is aligned to it
	MaxRange        time.Duration // longest from..to
	QueryTimeout    time.Duration // bounds one time-series computation
	ReadAuth        auth.ReadAuth
	RateLimitAddr   int // requests per second per client address; 0: off
	RateLimitKey    int // requests per second per API key; 0: off
	TrustedProxies  ratelimit.Proxies
	CORSOrigins     string // comma-separated; "*" for any
	StreamDetach    bool   // hand HTTP/1.1 streams to the broker's writer pool
	Logger          *slog.Logger
	// AccessLog gets the request lines (Logger when nil): every error, and
	// one in AccessLogSample of the others (1: all; 0: none).
	AccessLog       *slog.Logger
	AccessLogSample int
	// AccessLogOut, when set, is the writer under AccessLog's handler, a
	// slog JSONHandler (AccessLogJSON) or TextHandler: request lines are
	// then formatted by hand into it, byte for byte what the handler would
	// write, at a fraction of slog's cost (lines with a value that needs
	// escaping still go through AccessLog).
	AccessLogOut  io.Writer
	AccessLogJSON bool

	// RateLimitAuthFailures is how many wrong keys a minute a client
	// address may send (in bursts of as many) before its requests with a
	// key get 429s; 0: off.
	RateLimitAuthFailures int
}

// API is the HTTP surface.
type API struct {
	router  *mux.Router
	handler http.Handler
	log     *slog.Logger
}

// New builds every route.
func New(d Deps, o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AccessLog == nil {
		o.AccessLog = o.Logger
	}
	parser := summary.RangeParser{Align: o.RefreshInterval, MaxRange: o.MaxRange}
	im := newIngestMetrics(d.Registry)
	g := newGuard(d.Keys, o, im, d.Registry)
	r := mux.NewRouter()
	r.Use(tagRoute)
	// read registers a GET/HEAD endpoint and answers other methods on the
	// same path with a JSON 405 (mux's own 405 is lost once a later
	// catch-all route is tried).
	fast := &fastRoutes{exact: map[string]http.Handler{}, mux: r}
	read := func(path string, h http.Handler) {
		h = noBody(h)
		r.Handle(path, h).Methods(http.MethodGet, http.MethodHead)
		r.Handle(path, methodNotAllowed("GET, HEAD"))
		fast.exact[path] = h
	}
	// Every endpoint that reads the query string takes each parameter
	// once (strictQuery), checked before the key in it is.
	sum := strictQuery(g.protect(&summaryHandler{svc: d.Summaries, parser: parser, log: o.Logger, broker: d.Broker}, readAccess))
	series := strictQuery(g.protect(&seriesHandler{agg: d.Series, parser: parser, timeout: o.QueryTimeout, log: o.Logger}, readAccess))
	export := strictQuery(g.protect(&seriesHandler{agg: d.Series, parser: parser, timeout: o.QueryTimeout, log: o.Logger, csv: true}, readAccess))
	live := strictQuery(g.protect(&streamHandler{b: d.Broker, parser: parser, detach: o.StreamDetach, clientAddr: g.proxies.ClientAddr}, streamAccess))
	read("/api/analytics/summary", sum)
	read("/api/v1/analytics/summary", sum)
	read("/api/analytics/timeseries", series)
	read("/api/v1/analytics/timeseries", series)
	read("/api/v1/analytics/export.csv", export)
	read("/api/analytics/stream", live)
	read("/api/v1/analytics/stream", live)
	read("/api/v1/config", strictQuery(g.protect(configHandler(o), readAccess)))
	r.Handle("/api/v1/events", g.protect(&ingestHandler{w: d.Events, log: o.Logger, metrics: im, now: time.Now}, ingestAccess)).Methods(http.MethodPost)
	r.Handle("/api/v1/events", methodNotAllowed("POST"))
	read("/health", &healthHandler{postgres: d.Postgres, redis: d.Redis, storage: d.Storage})
	read("/metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{Registry: d.Registry}))
	// Everything outside /api/ is the dashboard; unknown API paths get the
	// JSON 404.
	notAPI := func(req *http.Request, _ *mux.RouteMatch) bool { return !strings.HasPrefix(req.URL.Path, "/api/") }
	r.PathPrefix("/").MatcherFunc(notAPI).Handler(noBody(dashboard())).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = notFound()
	r.MethodNotAllowedHandler = methodNotAllowed("GET, HEAD")
	hm := newHTTPMetrics(d.Registry)
	hm.declare(r)
	access := &accessLog{log: o.AccessLog, sample: uint64(max(o.AccessLogSample, 0)), out: o.AccessLogOut, json: o.AccessLogJSON}
	return &API{router: r, log: o.Logger, handler: instrument(o.Logger, access, hm)(cors(o.CORSOrigins, fast))}
}

// fastRoutes sends a GET or HEAD of a path registered by read (static
// paths, no variables) straight to its handler, and everything else to
// the mux, which would have chosen the same handler: a cached answer then
// skips the mux's matching and the two request copies it makes to carry
// the route and its (empty) variables. The route label is the path, which
// is the route's template.
type fastRoutes struct {
	exact map[string]http.Handler
	mux   *mux.Router
}

func (f *fastRoutes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if h, ok := f.exact[r.URL.Path]; ok {
			if info, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
				info.route = r.URL.Path
			}
			h.ServeHTTP(w, r)
			return
		}
	}
	f.mux.ServeHTTP(w, r)
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Server is the http.Server for the API. It has no WriteTimeout, which
// would cut live streams: handlers bound their own work, and streams set a
// deadline per write. onShutdown runs when Shutdown starts (the broker's
// Close, which ends the streams Shutdown would otherwise wait for).
func (a *API) Server(onShutdown func()) *http.Server {
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if onShutdown != nil {
		srv.RegisterOnShutdown(onShutdown)
	}
	return srv
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, req, http.StatusMethodNotAllowed, "method_not_allowed", "method "+req.Method+" is not allowed here; use "+allow)
	})
}

func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, http.StatusNotFound, "not_found", "no such endpoint: "+req.URL.Path)
	})
}
