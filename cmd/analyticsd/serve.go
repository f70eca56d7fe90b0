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
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/liveanalytics/analyticsd/internal/api"
	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/internal/logbuf"
	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// runServe is `analyticsd serve`: it opens PostgreSQL and Redis, starts the
// background work (rollup worker, demo), serves the API until ctx ends,
// then shuts down in order.
func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig("serve", args, getenv, stderr, func(fs *flag.FlagSet, c *Config) {
		fs.BoolVar(&c.NoMigrate, "no-migrate", false, "do not migrate; exit if the schema is behind")
		fs.BoolVar(&c.Demo, "demo", false, "on an empty database seed demo events, then keep inserting live ones at the rate the history has at that time of day")
		fs.Int64Var(&c.DemoEvents, "demo-events", c.DemoEvents, "events to seed with --demo (their rate sets the live events' rate)")
		fs.IntVar(&c.DemoDays, "demo-days", c.DemoDays, "days of history to seed with --demo")
	})
	if err != nil {
		return helpOK(err)
	}
	log := newLogger(cfg, stderr)
	redis.UseLogger(log)
	// The access log is the busy one: its lines are batched (at most
	// 100 ms late), so a request does not cost a write call.
	accessOut := logbuf.New(stderr, 64<<10, 100*time.Millisecond)
	defer accessOut.Close()
	access := newLogger(cfg, accessOut)

	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := prepareSchema(ctx, db, cfg.NoMigrate, log); err != nil {
		return err
	}
	if err := db.EnsureCurrentPartitions(ctx, cfg.partitionOptions()); err != nil {
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
	keys := &auth.Keys{}
	reloader := auth.NewReloader(keys, auth.Source{Inline: cfg.APIKeys, File: cfg.APIKeysFile}, cfg.APIKeysReloadInterval, log, reg)
	if err := reloader.Load(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if keys.Len() == 0 {
		log.Info("no API keys configured: POST /api/v1/events answers 401 until API_KEYS or API_KEYS_FILE lists one")
	}
	// SIGHUP reloads API_KEYS_FILE instead of ending the process. The
	// handler is this function's, so a test running it in process can
	// signal itself.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var bg sync.WaitGroup // background work owned by this function
	defer bg.Wait()
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	bg.Add(1)
	go func() {
		defer bg.Done()
		reloader.Run(bgCtx, hup)
	}()
	ingested := ingest.NewMetrics(reg)
	if err := startBackground(bgCtx, cfg, db, ingested.Counted(db, ingest.SourceDemo), reg, log, &bg); err != nil {
		return err
	}

	st := newStack(cfg, db, ingested.Counted(db, ingest.SourceAPI), rdb, keys, reg, log, access, accessOut)
	defer st.broker.Close()

	// Shutdown waits for handlers; live streams end when the broker closes.
	srv := st.edge.Server(st.broker.Close)
	err = serve(ctx, srv, cfg, log)
	stopBackground()
	bg.Wait()
	// Summaries still computing for clients that left write the cache
	// when done: let them finish (bounded) before Redis and the pool close.
	waitBounded(st.service.Wait, cfg.ShutdownTimeout)
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// stack is what serves requests: the cache-aside summaries, the live
// broker and the HTTP edge over them.
type stack struct {
	service *summary.Service
	broker  *stream.Broker
	edge    *api.API
}

// newStack wires the serving stack over db, with ingested events written
// through events; the caller closes the broker.
func newStack(cfg Config, db *storage.DB, events ingest.Writer, rdb redis.Client, keys *auth.Keys, reg *prometheus.Registry, log, access *slog.Logger, accessOut io.Writer) stack {
	svc := summary.NewService(db, redis.NewCache(rdb, cfg.RedisPrefix, cfg.CacheTTL, cfg.CacheStaleTTL), summary.ServiceOptions{
		QueryTimeout:    cfg.DBStatementTimeout,
		LocalEntries:    cfg.CacheLocalEntries,
		RefreshInterval: cfg.RefreshInterval,
		CacheTTL:        cfg.CacheTTL,
		Logger:          log,
		Metrics:         summary.NewMetrics(reg),
	})
	so := cfg.streamOptions(log, reg)
	so.Invalidate = svc.Invalidate
	broker := stream.New(svc, redis.NewCoordinator(rdb, cfg.RedisPrefix), so)
	edge := api.New(api.Deps{
		Summaries: svc,
		Series:    db,
		Broker:    broker,
		Events:    events,
		Keys:      keys,
		Postgres:  db.Ping,
		Redis:     func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Storage: func(ctx context.Context) (api.StorageHealth, error) {
			f, err := db.Footprint(ctx)
			return api.StorageHealth{Partitions: f.Partitions, RawBytes: f.RawBytes, RollupBytes: f.RollupBytes,
				OldestRaw: f.OldestRaw, OldestRollup: f.OldestRollup, RawRetainedFrom: f.Retention.RawFrom}, err
		},
		Registry: reg,
	}, cfg.apiOptions(log, access, accessOut))
	return stack{service: svc, broker: broker, edge: edge}
}

// startBackground starts the rollup worker (every instance runs the loop;
// one at a time does the work) and, with --demo, the demo data, whose live
// events go through demo (the ingest path, counted as source "demo").
func startBackground(ctx context.Context, cfg Config, db *storage.DB, demo ingest.Writer, reg prometheus.Registerer, log *slog.Logger, bg *sync.WaitGroup) error {
	roller := db.NewRoller(storage.RollupOptions{
		Interval:   cfg.RollupInterval,
		Partitions: cfg.partitionOptions(),
		Logger:     log,
		Metrics:    storage.NewRollupMetrics(reg),
	})
	footprint := db.NewFootprintCollector()
	reg.MustRegister(footprint)
	bg.Add(1)
	go func() {
		defer bg.Done()
		footprint.Run(ctx, 30*time.Second)
	}()
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
		return startDemo(ctx, db, demo, cfg.DemoEvents, cfg.DemoDays, log, bg)
	}
	return nil
}

// serve listens and serves until ctx ends, then shuts srv down within
// SHUTDOWN_TIMEOUT.
func serve(ctx context.Context, srv *http.Server, cfg Config, log *slog.Logger) error {
	addr := net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "demo", cfg.Demo)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		log.Error("serve", "err", serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// waitBounded runs wait and returns when it does or after timeout.
func waitBounded(wait func(), timeout time.Duration) {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
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
