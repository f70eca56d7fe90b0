package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/httpx"
	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
	"github.com/liveanalytics/analyticsd/ui"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig("serve", args, getenv, stderr, func(fs *flag.FlagSet, c *Config) {
		fs.BoolVar(&c.NoMigrate, "no-migrate", false, "do not migrate; exit if the schema is behind")
		fs.BoolVar(&c.Demo, "demo", false, "on an empty database seed demo events, then keep inserting a trickle of live ones")
		fs.Int64Var(&c.DemoEvents, "demo-events", c.DemoEvents, "events to seed with --demo")
	})
	if err != nil {
		return helpOK(err)
	}
	log := newLogger(cfg, stderr)
	redis.SetLogger(redisLogger{log})

	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := prepareSchema(ctx, db, cfg.NoMigrate, log); err != nil {
		return err
	}
	rdb, err := newRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		// Not fatal: summaries come from PostgreSQL until Redis answers.
		log.Warn("redis does not answer; serving without cache until it does", "err", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var bg sync.WaitGroup // background work owned by this function
	defer bg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every instance runs the worker loop; one at a time does the work.
	roller := db.NewRoller(storage.RollupOptions{
		Interval: cfg.RollupInterval,
		Logger:   log,
		Metrics:  storage.NewRollupMetrics(reg),
	})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "analytics_rollup_bitmap_cache_bytes",
		Help: "Bytes of decoded rollup bitmaps cached in this instance (bounded by ROLLUP_CACHE_MB).",
	}, func() float64 { _, b := db.BitmapCacheStats(); return float64(b) }))
	bg.Add(1)
	go func() {
		defer bg.Done()
		roller.Run(ctx)
	}()
	if cfg.Demo {
		if err := startDemo(ctx, db, cfg.DemoEvents, log, &bg); err != nil {
			return err
		}
	}

	keys, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	if keys.Len() == 0 {
		log.Info("no API keys configured: POST /api/v1/events answers 401 until API_KEYS or API_KEYS_FILE lists one")
	}
	a := newHandler(cfg, db, rdb, keys, reg, log)
	handler, broker := a.handler, a.broker
	defer broker.Close()

	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", cfg.Port, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// No WriteTimeout: it would cut live streams. Handlers bound their
		// own work, and streams set a deadline per write.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ConnContext:    stream.ConnContext,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for handlers; live streams end when the broker closes.
	srv.RegisterOnShutdown(broker.Close)
	log.Info("listening", "addr", ln.Addr().String(), "demo", cfg.Demo)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer scancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		log.Error("serve", "err", serr)
	}
	cancel()
	bg.Wait()
	// Summaries still computing for clients that left write the cache
	// when done: let them finish (bounded) before Redis and the pool close.
	done := make(chan struct{})
	go func() { a.service.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// prepareSchema migrates, or with noMigrate refuses to run on an old schema.
func prepareSchema(ctx context.Context, db *storage.DB, noMigrate bool, log *slog.Logger) error {
	if noMigrate {
		n, err := db.Pending(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("the database schema is %d migration(s) behind and --no-migrate is set: run `analyticsd migrate`", n)
		}
		return nil
	}
	n, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info("applied migrations", "count", n)
	}
	return nil
}

// app is the HTTP surface: the handler to serve, the broker behind the
// streams, and the router (whose routes the OpenAPI test compares).
type app struct {
	handler http.Handler
	broker  *stream.Broker
	router  *mux.Router
	service *summary.Service
}

// newHandler builds the whole HTTP surface.
func newHandler(cfg Config, db *storage.DB, rdb redis.UniversalClient, keys *auth.Keys, reg *prometheus.Registry, log *slog.Logger) app {
	cache := summary.NewRedisCache(rdb, cfg.RedisPrefix, cfg.CacheTTL, cfg.CacheStaleTTL)
	svc := summary.NewService(db, cache, summary.ServiceOptions{
		QueryTimeout: cfg.DBStatementTimeout,
		Logger:       log,
		Metrics:      summary.NewMetrics(reg),
	})
	parser := summary.RangeParser{Align: cfg.RefreshInterval, MaxRange: cfg.MaxRange}
	sum := summary.NewHandler(svc, parser, log)
	broker := stream.New(svc, rdb, stream.Options{
		Interval:          cfg.RefreshInterval,
		Prefix:            cfg.RedisPrefix,
		MaxClients:        cfg.StreamMaxClients,
		MaxClientsPerAddr: cfg.StreamMaxClientsPerAddr,
		MaxRanges:         cfg.StreamMaxRanges,
		Heartbeat:         cfg.Heartbeat,
		WriteTimeout:      cfg.StreamWriteTimeout,
		Logger:            log,
		Metrics:           stream.NewMetrics(reg),
	})
	live := stream.NewHandler(broker, parser)
	live.Detach = cfg.StreamDetach

	r := mux.NewRouter()
	r.Use(httpx.TagRoute)
	// read registers a GET/HEAD endpoint and answers other methods on the
	// same path with a JSON 405 (mux's own 405 is lost once a later
	// catch-all route is tried).
	read := func(path string, h http.Handler) {
		r.Handle(path, noBody(h)).Methods(http.MethodGet, http.MethodHead)
		r.Handle(path, methodNotAllowed("GET, HEAD"))
	}
	series := summary.NewSeriesHandler(db, parser, cfg.DBStatementTimeout, log)
	im := ingest.NewMetrics(reg)
	g := newGuard(cfg, keys, im, reg)
	sumH := g.protect(sum, auth.ScopeRead, true, true)
	seriesH := g.protect(series, auth.ScopeRead, true, true)
	export := summary.NewSeriesHandler(db, parser, cfg.DBStatementTimeout, log)
	export.CSV = true
	exportH := g.protect(export, auth.ScopeRead, true, true)
	live.ClientAddr = g.proxies.ClientAddr
	liveH := g.protect(live, auth.ScopeRead, true, false)
	read("/api/analytics/summary", sumH)
	read("/api/v1/analytics/summary", sumH)
	read("/api/analytics/timeseries", seriesH)
	read("/api/v1/analytics/timeseries", seriesH)
	read("/api/v1/analytics/export.csv", exportH)
	read("/api/analytics/stream", liveH)
	read("/api/v1/analytics/stream", liveH)
	r.Handle("/api/v1/events", g.protect(ingest.NewHandler(db, requestKeyID, im, log), auth.ScopeIngest, false, true)).Methods(http.MethodPost)
	r.Handle("/api/v1/events", methodNotAllowed("POST"))
	read("/health", &healthHandler{db: db, rdb: rdb})
	read("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Everything outside /api/ is the dashboard; unknown API paths get the
	// JSON 404.
	notAPI := func(req *http.Request, _ *mux.RouteMatch) bool { return !strings.HasPrefix(req.URL.Path, "/api/") }
	r.PathPrefix("/").MatcherFunc(notAPI).Handler(noBody(ui.Handler())).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = notFound()
	r.MethodNotAllowedHandler = methodNotAllowed("GET, HEAD")
	return app{handler: httpx.Middleware(log, httpx.NewMetrics(reg))(cors(cfg.CORSOrigins, r)), broker: broker, router: r, service: svc}
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allow)
		httpx.WriteError(w, req, http.StatusMethodNotAllowed, "method_not_allowed", "method "+req.Method+" is not allowed here; use "+allow)
	})
}

func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpx.WriteError(w, req, http.StatusNotFound, "not_found", "no such endpoint: "+req.URL.Path)
	})
}
