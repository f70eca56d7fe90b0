package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/liveanalytics/analyticsd/internal/api"
	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/storage"
)

const usage = `analyticsd: live analytics server

Usage:
  analyticsd [serve] [flags]   run the HTTP server (default); --demo seeds and trickles demo data
  analyticsd migrate [flags]   apply pending database migrations and exit
  analyticsd seed [flags]      load synthetic events (--events N --days D --users U --types a:3,b:1)
  analyticsd bench [flags]     seed a benchmark database and compare plain SQL with the rollups
  analyticsd bench-http [flags]
                               the cached summary through the server against a bare handler
                               writing the same bytes (needs wrk)
  analyticsd keygen [--scopes ingest,read]
                               make an API key; prints the key (give it to the client) and
                               the entry for API_KEYS / API_KEYS_FILE (only its hash)
  analyticsd healthcheck [--timeout 3s]
                               ask this machine's server (GET /health on PORT): exit 0 when
                               it is ok or degraded, 1 otherwise (the container health check)
  analyticsd help              show this text

Every flag also reads an environment variable; run "analyticsd serve -h" to list them.
`

// errUsage marks a command line that could not be understood (exit 2).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, getenv, stderr)
	case "migrate":
		return runMigrate(ctx, args, getenv, stdout, stderr)
	case "seed":
		return runSeed(ctx, args, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, args, getenv, stdout, stderr)
	case "bench-http":
		return runBenchHTTP(ctx, args, getenv, stdout, stderr)
	case "keygen":
		return runKeygen(args, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}

// parseConfig reads env and flags for one subcommand; extra registers the
// subcommand's own flags.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet, *Config)) (Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("analyticsd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if extra != nil {
		extra(fs, &cfg)
	}
	rest, err := cfg.load(fs, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, err
	}
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", errUsage, err)
	}
	if len(rest) > 0 {
		return cfg, fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	return cfg, nil
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func openDB(ctx context.Context, cfg Config) (*storage.DB, error) {
	return storage.Open(ctx, storage.Options{
		URL:              cfg.DatabaseURL,
		MaxConns:         int32(cfg.DBMaxConns),
		StatementTimeout: cfg.DBStatementTimeout,
		CreateDatabase:   true,
		BitmapCacheBytes: bitmapCacheBytes(cfg.RollupCacheMB),
		ReadURL:          cfg.DatabaseReadURL,
		Naive:            !cfg.Rollups,
	})
}

// openMigrated opens the database and brings its schema up to date (for
// the commands that write events).
func openMigrated(ctx context.Context, cfg Config) (*storage.DB, error) {
	db, err := openDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func bitmapCacheBytes(mb int) int64 {
	if mb == 0 {
		return -1 // disabled
	}
	return int64(mb) << 20
}

// newRedis builds the client with short timeouts: the cache must fail fast
// and let PostgreSQL answer rather than hold requests up.
func newRedis(cfg Config) (redis.Client, error) {
	rdb, err := redis.NewClient(cfg.RedisURL, cfg.RedisCluster)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return rdb, nil
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig("migrate", args, getenv, stderr, nil)
	if err != nil {
		return helpOK(err)
	}
	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migration(s)\n", n)
	return nil
}

func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o storage.SeedOptions
	var types string
	cfg, err := parseConfig("seed", args, getenv, stderr, func(fs *flag.FlagSet, _ *Config) {
		fs.Int64Var(&o.Events, "events", 1_000_000, "number of events to generate")
		fs.IntVar(&o.Days, "days", 30, "spread the events over the last D days")
		fs.IntVar(&o.Users, "users", 50_000, "users at the end: the pool grows with the events, a skewed loyal core and recent joiners")
		fs.StringVar(&types, "types", "", "event types with weights, e.g. page_view:60,click:25,purchase:1 (default: a realistic mix)")
		fs.Uint64Var(&o.Seed, "seed", 0, "random seed for a reproducible data set (0: random)")
		fs.IntVar(&o.Workers, "workers", 2, "parallel COPY streams")
	})
	if err != nil {
		return helpOK(err)
	}
	if types != "" {
		if o.Types, err = storage.ParseTypes(types); err != nil {
			return fmt.Errorf("%w: --types: %w", errUsage, err)
		}
	}
	o.Progress = stdout
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	o.Partitions = cfg.PartitionInterval
	st, err := db.Seed(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d events in %s (%.0f events/s)\n", st.Events, st.Elapsed.Round(time.Millisecond), float64(st.Events)/st.Elapsed.Seconds())
	start := time.Now()
	switch err := db.NewRoller(storage.RollupOptions{Partitions: cfg.partitionOptions()}).CatchUp(ctx); {
	case errors.Is(err, storage.ErrRollupBusy):
		fmt.Fprintln(stdout, "a running server is the rollup worker; it rolls the new events up (answers are exact meanwhile)")
	case err != nil:
		return err
	default:
		fmt.Fprintf(stdout, "rolled up in %s\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// runKeygen prints a new API key and its configuration entry.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("analyticsd keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scopes := fs.String("scopes", "ingest", "comma-separated scopes: ingest, read")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var list []auth.Scope
	for _, s := range strings.Split(*scopes, ",") {
		switch sc := auth.Scope(strings.TrimSpace(s)); sc {
		case auth.ScopeIngest, auth.ScopeRead:
			list = append(list, sc)
		default:
			return fmt.Errorf("%w: unknown scope %q (use ingest, read)", errUsage, s)
		}
	}
	token, entry, err := auth.Generate(list...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key (give to the client, shown once):  %s\nentry (for API_KEYS or API_KEYS_FILE): %s\n", token, entry)
	return nil
}

// runHealthcheck is `analyticsd healthcheck`, the container's health check
// (the distroless image has no shell and no curl): GET /health on this
// machine's PORT within --timeout. It exits 0 when the server answers ok or
// degraded and 1 otherwise, never 2, which Docker reserves.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	timeout := 3 * time.Second
	cfg, err := parseConfig("healthcheck", args, getenv, stderr, func(fs *flag.FlagSet, _ *Config) {
		fs.DurationVar(&timeout, "timeout", timeout, "give up when the server has not answered within this")
	})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("healthcheck: %v", err) // %v: exit 1, not the usage error's 2
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status, err := api.CheckHealth(ctx, healthURL(cfg))
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	fmt.Fprintln(stdout, status)
	return nil
}

// healthURL is where a server with cfg answers on this host: on its
// LISTEN_ADDR, or on the loopback address when it listens on every
// interface.
func healthURL(cfg Config) string {
	host := cfg.ListenAddr
	if a, err := netip.ParseAddr(host); host == "" || err == nil && a.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)) + "/health"
}

// helpOK turns -h into a clean exit.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
