package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/api"
	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/ratelimit"
	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/stream"
)

// Config is everything the server reads from its environment. Env vars set
// it, flags override env vars, and Validate rejects what cannot work.
type Config struct {
	Port                    int
	ListenAddr              string
	DatabaseURL             string
	RedisURL                string
	RedisPrefix             string
	CacheTTL                time.Duration
	CacheStaleTTL           time.Duration
	CacheLocalEntries       int
	RefreshInterval         time.Duration
	MaxRange                time.Duration
	DBMaxConns              int
	DBStatementTimeout      time.Duration
	ShutdownTimeout         time.Duration
	StreamMaxClients        int
	StreamMaxClientsPerAddr int
	StreamMaxRanges         int
	StreamMaxRangesPerAddr  int
	Heartbeat               time.Duration
	StreamWriteTimeout      time.Duration
	StreamDetach            bool
	LogLevel                slog.Level
	LogFormat               string
	AccessLogSample         int
	Rollups                 bool
	RollupInterval          time.Duration
	RollupCacheMB           int
	PartitionInterval       storage.Grain
	RawRetention            time.Duration
	RollupRetention         time.Duration
	DatabaseReadURL         string
	RedisCluster            bool
	APIKeys                 string
	APIKeysFile             string
	APIKeysReloadInterval   time.Duration
	ReadAuth                auth.ReadAuth
	RateLimitAddr           int
	RateLimitKey            int
	RateLimitAuthFailures   int
	TrustedProxies          string
	CORSOrigins             string

	// Flags only.
	NoMigrate  bool
	Demo       bool
	DemoEvents int64
	DemoDays   int
}

// defaultConfig works on a machine with a local PostgreSQL and Redis.
// Where a package owns a setting, its default is the package's own.
func defaultConfig() Config {
	so := stream.DefaultOptions()
	return Config{
		Port:                    3000,
		DatabaseURL:             "postgres://localhost:5432/analytics?sslmode=disable",
		RedisURL:                "redis://localhost:6379/0",
		RedisPrefix:             redis.DefaultPrefix,
		CacheTTL:                60 * time.Second,
		CacheStaleTTL:           24 * time.Hour,
		CacheLocalEntries:       10_000,
		RefreshInterval:         so.Interval,
		MaxRange:                400 * 24 * time.Hour,
		DBMaxConns:              storage.DefaultMaxConns,
		DBStatementTimeout:      storage.DefaultStatementTimeout,
		ShutdownTimeout:         15 * time.Second,
		StreamMaxClients:        so.MaxClients,
		StreamMaxClientsPerAddr: so.MaxClientsPerAddr,
		StreamMaxRanges:         so.MaxRanges,
		StreamMaxRangesPerAddr:  so.MaxRangesPerAddr,
		Heartbeat:               so.Heartbeat,
		StreamWriteTimeout:      so.WriteTimeout,
		StreamDetach:            true,
		LogLevel:                slog.LevelInfo,
		LogFormat:               "json",
		AccessLogSample:         1,
		DemoEvents:              300_000,
		DemoDays:                30,
		Rollups:                 true,
		RollupInterval:          time.Second,
		RollupCacheMB:           storage.DefaultBitmapCacheBytes >> 20,
		PartitionInterval:       storage.Month,
		ReadAuth:                auth.ReadOpen,
		RateLimitAddr:           50,
		RateLimitKey:            100,
		RateLimitAuthFailures:   10,
		APIKeysReloadInterval:   5 * time.Second,
	}
}

// streamOptions are the broker's settings.
func (c Config) streamOptions(log *slog.Logger, reg prometheus.Registerer) stream.Options {
	return stream.Options{
		Interval:          c.RefreshInterval,
		MaxClients:        c.StreamMaxClients,
		MaxClientsPerAddr: c.StreamMaxClientsPerAddr,
		MaxRanges:         c.StreamMaxRanges,
		MaxRangesPerAddr:  c.StreamMaxRangesPerAddr,
		Heartbeat:         c.Heartbeat,
		WriteTimeout:      c.StreamWriteTimeout,
		Logger:            log,
		Metrics:           stream.NewMetrics(reg),
	}
}

// partitionOptions are the events table's partitions and retention.
func (c Config) partitionOptions() storage.PartitionOptions {
	return storage.PartitionOptions{Grain: c.PartitionInterval, RawRetention: c.RawRetention, RollupRetention: c.RollupRetention}
}

// apiOptions are the HTTP edge's settings; access gets the request lines,
// and accessOut, when not nil, is the writer under access's handler (the
// edge then formats the lines by hand, exactly as that handler would).
func (c Config) apiOptions(log, access *slog.Logger, accessOut io.Writer) api.Options {
	proxies, _ := ratelimit.ParseProxies(c.TrustedProxies) // checked by Validate
	return api.Options{
		RefreshInterval: c.RefreshInterval,
		MaxRange:        c.MaxRange,
		QueryTimeout:    c.DBStatementTimeout,
		ReadAuth:        c.ReadAuth,
		RateLimitAddr:   c.RateLimitAddr,
		RateLimitKey:    c.RateLimitKey,
		TrustedProxies:  proxies,
		CORSOrigins:     c.CORSOrigins,
		StreamDetach:    c.StreamDetach,
		Logger:          log,
		AccessLog:       access,
		AccessLogSample: c.AccessLogSample,
		AccessLogOut:    accessOut,
		AccessLogJSON:   c.LogFormat != "text",

		RateLimitAuthFailures: c.RateLimitAuthFailures,
	}
}

// setting binds one env var to one flag and one field.
type setting struct {
	env, flag, usage string
	value            flag.Value
}

func (c *Config) settings() []setting {
	return []setting{
		{"PORT", "port", "HTTP port to listen on", (*portValue)(&c.Port)},
		{"LISTEN_ADDR", "listen-addr", "address to listen on, without the port (127.0.0.1, ::1, a host name); empty: every interface", (*hostValue)(&c.ListenAddr)},
		{"DATABASE_URL", "database-url", "PostgreSQL URL; the database is created when missing and the role may", (*pgURLValue)(&c.DatabaseURL)},
		{"DATABASE_READ_URL", "database-read-url", "PostgreSQL replica for summaries, time series and streams (default: DATABASE_URL)", (*optionalPGURLValue)(&c.DatabaseReadURL)},
		{"REDIS_URL", "redis-url", "Redis URL (redis:// or rediss://); with REDIS_CLUSTER, seed nodes as redis://host1:6379?addr=host2:6379&addr=host3:6379", (*redisURLValue)(&c.RedisURL)},
		{"REDIS_CLUSTER", "redis-cluster", "REDIS_URL names a Redis Cluster", (*boolValue)(&c.RedisCluster)},
		{"REDIS_PREFIX", "redis-prefix", "prefix of every Redis key, to share one Redis between deployments", (*stringValue)(&c.RedisPrefix)},
		{"CACHE_TTL", "cache-ttl", "how long a computed summary is served from Redis", (*durationValue)(&c.CacheTTL)},
		{"CACHE_LOCAL_ENTRIES", "cache-local-entries", "summaries kept in this instance's memory in front of Redis, each until the next refresh boundary (0 disables)", (*countValue)(&c.CacheLocalEntries)},
		{"CACHE_STALE_TTL", "cache-stale-ttl", "how long a stale copy is kept to answer while PostgreSQL is down (0 disables)", (*durationValue)(&c.CacheStaleTTL)},
		{"REFRESH_INTERVAL", "refresh-interval", "live refresh step; \"now\" is aligned down to it", (*durationValue)(&c.RefreshInterval)},
		{"MAX_RANGE", "max-range", "longest from..to span a request may ask for (e.g. 400d)", (*durationValue)(&c.MaxRange)},
		{"DB_MAX_CONNS", "db-max-conns", "PostgreSQL pool size", (*intValue)(&c.DBMaxConns)},
		{"DB_STATEMENT_TIMEOUT", "db-statement-timeout", "server-side statement_timeout of every query", (*durationValue)(&c.DBStatementTimeout)},
		{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "how long a graceful shutdown waits for requests to finish", (*durationValue)(&c.ShutdownTimeout)},
		{"STREAM_MAX_CLIENTS", "stream-max-clients", "live stream clients per instance; more are refused (an EventSource: 200 with retry: and event: refused; others: 503 + Retry-After)", (*intValue)(&c.StreamMaxClients)},
		{"STREAM_MAX_CLIENTS_PER_ADDR", "stream-max-clients-per-addr", "live stream clients per remote address", (*intValue)(&c.StreamMaxClientsPerAddr)},
		{"STREAM_MAX_RANGES", "stream-max-ranges", "distinct live ranges per instance; at the limit an idle range (no clients, in its grace period) makes room for a new one", (*intValue)(&c.StreamMaxRanges)},
		{"STREAM_MAX_RANGES_PER_ADDR", "stream-max-ranges-per-addr", "distinct live ranges one client address may have streams on; more are refused (an EventSource: 200 with retry: and event: refused; others: 429)", (*intValue)(&c.StreamMaxRangesPerAddr)},
		{"STREAM_HEARTBEAT", "stream-heartbeat", "comment line sent on idle streams", (*durationValue)(&c.Heartbeat)},
		{"STREAM_WRITE_TIMEOUT", "stream-write-timeout", "deadline of one write to a stream; a client that cannot take it is dropped", (*durationValue)(&c.StreamWriteTimeout)},
		{"STREAM_DETACH", "stream-detach", "hand HTTP/1.1 streams to a shared writer pool after the headers (about 6 KB per client instead of about 35 KB)", (*boolValue)(&c.StreamDetach)},
		{"ROLLUPS", "rollups", "answer from the rollups (false: plain SQL aggregates, slow on long ranges; the worker keeps running)", (*boolValue)(&c.Rollups)},
		{"ROLLUP_INTERVAL", "rollup-interval", "how often the rollup worker looks for changed minutes", (*durationValue)(&c.RollupInterval)},
		{"ROLLUP_CACHE_MB", "rollup-cache-mb", "memory for decoded rollup bitmaps per instance (0 disables)", (*countValue)(&c.RollupCacheMB)},
		{"PARTITION_INTERVAL", "partition-interval", "range of one partition of the events table: month or day (a change applies to the partitions created after it)", (*partitionValue)(&c.PartitionInterval)},
		{"RAW_RETENTION", "raw-retention", "drop partitions of raw events wholly older than this (e.g. 90d; 0 keeps them): older ranges are answered from the rollups, at minute resolution", (*durationValue)(&c.RawRetention)},
		{"ROLLUP_RETENTION", "rollup-retention", "delete rollups older than this (0 keeps them forever); at least RAW_RETENTION", (*durationValue)(&c.RollupRetention)},
		{"API_KEYS", "api-keys", "API keys as sha256:<hex>:<scopes> entries separated by spaces or ';' (see `analyticsd keygen`)", (*secretValue)(&c.APIKeys)},
		{"API_KEYS_FILE", "api-keys-file", "file of API key entries, one per line, # comments; reloaded on SIGHUP and when it changes", (*stringValue)(&c.APIKeysFile)},
		{"API_KEYS_RELOAD_INTERVAL", "api-keys-reload-interval", "how often API_KEYS_FILE is checked for changes (0: only on SIGHUP)", (*durationValue)(&c.APIKeysReloadInterval)},
		{"READ_AUTH", "read-auth", "open (reads need no key) or required (reads need a key with the read scope)", (*readAuthValue)(&c.ReadAuth)},
		{"RATE_LIMIT_ADDR", "rate-limit-addr", "API requests per second per client address, bursts of twice that (0 disables)", (*countValue)(&c.RateLimitAddr)},
		{"RATE_LIMIT_KEY", "rate-limit-key", "API requests per second per API key, bursts of twice that (0 disables)", (*countValue)(&c.RateLimitKey)},
		{"RATE_LIMIT_AUTH_FAILURES", "rate-limit-auth-failures", "wrong API keys a minute per client address, in bursts of as many; past them requests with a key get 429 (0 disables)", (*countValue)(&c.RateLimitAuthFailures)},
		{"TRUSTED_PROXIES", "trusted-proxies", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For names the client", (*stringValue)(&c.TrustedProxies)},
		{"CORS_ORIGINS", "cors-origins", "comma-separated origins allowed to call the API from a browser (* for any; empty: none)", (*stringValue)(&c.CORSOrigins)},
		{"LOG_LEVEL", "log-level", "debug, info, warn or error", (*levelValue)(&c.LogLevel)},
		{"LOG_FORMAT", "log-format", "json or text", (*formatValue)(&c.LogFormat)},
		{"ACCESS_LOG_SAMPLE", "access-log-sample", "access log: every error, and one in N other requests (1: every request; 0: errors only)", (*countValue)(&c.AccessLogSample)},
	}
}

// load fills c from the environment, then from args. It returns the
// remaining positional arguments.
func (c *Config) load(fs *flag.FlagSet, args []string, getenv func(string) string) ([]string, error) {
	for _, s := range c.settings() {
		if v := getenv(s.env); v != "" {
			if err := s.value.Set(v); err != nil {
				return nil, fmt.Errorf("%s=%q: %w", s.env, redact(s.env, v), err)
			}
		}
		fs.Var(s.value, s.flag, s.usage+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), c.Validate()
}

// Validate checks the relations between settings.
func (c *Config) Validate() error {
	var errs []error
	if c.CacheTTL <= 0 {
		errs = append(errs, errors.New("CACHE_TTL must be positive"))
	}
	if c.RefreshInterval < 100*time.Millisecond {
		errs = append(errs, errors.New("REFRESH_INTERVAL must be at least 100ms"))
	}
	if c.MaxRange <= 0 {
		errs = append(errs, errors.New("MAX_RANGE must be positive"))
	}
	if c.DBMaxConns < 4 {
		// The rollup worker holds one connection, ROLLUPS=false runs three
		// queries per summary, and ingest, health and summaries need the
		// rest: below 4 they queue behind each other.
		errs = append(errs, errors.New("DB_MAX_CONNS must be at least 4"))
	}
	if c.DBStatementTimeout <= 0 {
		errs = append(errs, errors.New("DB_STATEMENT_TIMEOUT must be positive"))
	}
	if c.RollupInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("ROLLUP_INTERVAL must be at least 10ms"))
	}
	if c.RawRetention < 0 || c.RollupRetention < 0 {
		errs = append(errs, errors.New("RAW_RETENTION and ROLLUP_RETENTION must not be negative"))
	}
	if c.RawRetention > 0 && c.RawRetention < 2*24*time.Hour {
		errs = append(errs, errors.New("RAW_RETENTION must be at least 2d (or 0 to keep every event)"))
	}
	if c.RollupRetention > 0 && (c.RawRetention == 0 || c.RollupRetention < c.RawRetention) {
		errs = append(errs, errors.New("ROLLUP_RETENTION must be at least RAW_RETENTION: a range must stay answerable from one or the other"))
	}
	if c.RollupCacheMB < 0 {
		errs = append(errs, errors.New("ROLLUP_CACHE_MB must not be negative"))
	}
	if c.RateLimitAddr < 0 || c.RateLimitKey < 0 {
		errs = append(errs, errors.New("RATE_LIMIT_ADDR and RATE_LIMIT_KEY must not be negative"))
	}
	if _, err := ratelimit.ParseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %w", err))
	}
	if c.APIKeysReloadInterval != 0 && c.APIKeysReloadInterval < 100*time.Millisecond {
		errs = append(errs, errors.New("API_KEYS_RELOAD_INTERVAL must be 0 (only on SIGHUP) or at least 100ms"))
	}
	if c.CacheStaleTTL < 0 {
		errs = append(errs, errors.New("CACHE_STALE_TTL must not be negative"))
	}
	if c.Heartbeat < time.Second {
		errs = append(errs, errors.New("STREAM_HEARTBEAT must be at least 1s"))
	}
	if c.StreamWriteTimeout <= 0 {
		errs = append(errs, errors.New("STREAM_WRITE_TIMEOUT must be positive"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must be positive"))
	}
	return errors.Join(errs...)
}

// secretValue is a string never printed back (flag defaults, errors).
type secretValue string

func (v *secretValue) String() string {
	if *v == "" {
		return ""
	}
	return "(set)"
}
func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

// partitionValue is PARTITION_INTERVAL.
type partitionValue storage.Grain

func (v *partitionValue) String() string { return storage.Grain(*v).String() }
func (v *partitionValue) Set(s string) error {
	g, err := storage.ParsePartitionGrain(s)
	if err != nil {
		return err
	}
	*v = partitionValue(g)
	return nil
}

type readAuthValue auth.ReadAuth

func (v *readAuthValue) String() string { return string(*v) }
func (v *readAuthValue) Set(s string) error {
	r, err := auth.ParseReadAuth(s)
	if err != nil {
		return err
	}
	*v = readAuthValue(r)
	return nil
}

// optionalPGURLValue is a PostgreSQL URL that may be empty.
type optionalPGURLValue string

func (v *optionalPGURLValue) String() string { return string(*v) }
func (v *optionalPGURLValue) Set(s string) error {
	if s == "" {
		*v = ""
		return nil
	}
	var u pgURLValue
	if err := u.Set(s); err != nil {
		return err
	}
	*v = optionalPGURLValue(u)
	return nil
}

// redact hides passwords in URLs echoed back in errors.
func redact(env, v string) string {
	if env == "API_KEYS" {
		return "…"
	}
	if !strings.HasSuffix(env, "_URL") {
		return v
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return "…"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true or false")
	}
	*v = boolValue(b)
	return nil
}

// IsBoolFlag lets --stream-detach stand alone on the command line.
func (v *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return errors.New("must be a positive whole number")
	}
	*v = intValue(n)
	return nil
}

// countValue is a whole number where 0 means "off".
type countValue int

func (v *countValue) String() string { return strconv.Itoa(int(*v)) }
func (v *countValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("must be a whole number, 0 to disable")
	}
	*v = countValue(n)
	return nil
}

// hostValue is an address to listen on without its port: an IP address
// (IPv6 with or without brackets), a host name, or empty for every
// interface. A port in it is refused rather than silently preferred to
// PORT.
type hostValue string

func (v *hostValue) String() string { return string(*v) }
func (v *hostValue) Set(s string) error {
	if _, port, err := net.SplitHostPort(s); err == nil {
		return fmt.Errorf("is the address only; give the port (%s) with PORT", port)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !validHostName(host) {
		return errors.New("must be an IP address such as 127.0.0.1 or ::1, or a host name")
	}
	*v = hostValue(host)
	return nil
}

// validHostName accepts letters, digits, '-' and '.' in labels of at most
// 63 characters.
func validHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

type portValue int

func (v *portValue) String() string { return strconv.Itoa(int(*v)) }
func (v *portValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("must be a port number from 0 to 65535")
	}
	*v = portValue(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v = durationValue(d)
	return nil
}

// parseDuration is time.ParseDuration plus whole days ("400d") and bare
// seconds ("60").
func parseDuration(s string) (time.Duration, error) {
	bad := errors.New("must be a duration such as 60s, 5m, 2h or 400d")
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 100*366*24*3600 {
			return 0, bad
		}
		return time.Duration(n) * time.Second, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*366 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

type levelValue slog.Level

func (v *levelValue) String() string { return slog.Level(*v).String() }
func (v *levelValue) Set(s string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return errors.New("must be debug, info, warn or error")
	}
	*v = levelValue(l)
	return nil
}

type formatValue string

func (v *formatValue) String() string { return string(*v) }
func (v *formatValue) Set(s string) error {
	if s != "json" && s != "text" {
		return errors.New("must be json or text")
	}
	*v = formatValue(s)
	return nil
}

type pgURLValue string

func (v *pgURLValue) String() string { return redact("DATABASE_URL", string(*v)) }
func (v *pgURLValue) Set(s string) error {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return errors.New("must be a postgres:// URL")
		}
	}
	*v = pgURLValue(s)
	return nil
}

type redisURLValue string

func (v *redisURLValue) String() string { return redact("REDIS_URL", string(*v)) }
func (v *redisURLValue) Set(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		return errors.New("must be a redis://, rediss:// or unix:// URL")
	}
	*v = redisURLValue(s)
	return nil
}
