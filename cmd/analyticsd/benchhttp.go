package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/api"
	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/logbuf"
	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/storage"
)

// benchHTTPOptions are the flags of `analyticsd bench-http`.
type benchHTTPOptions struct {
	duration    time.Duration
	connections int
	threads     int
	rounds      int
	events      int64
	cpuProfile  string
}

// runBenchHTTP measures the cached summary through the whole server
// (middleware, routing, auth, the summary handler, the cache) against a
// bare net/http handler that writes the same bytes, both served from this
// process and driven by wrk with the same settings, alternating, in one
// run. It seeds a scratch schema and a scratch Redis prefix and removes
// both.
func runBenchHTTP(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o benchHTTPOptions
	cfg, err := parseConfig("bench-http", args, getenv, stderr, func(fs *flag.FlagSet, _ *Config) {
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each wrk run")
		fs.IntVar(&o.connections, "connections", 64, "wrk connections")
		fs.IntVar(&o.threads, "threads", 2, "wrk threads")
		fs.IntVar(&o.rounds, "rounds", 3, "runs per side, alternating bare and server (the median is printed)")
		fs.Int64Var(&o.events, "events", 200_000, "events seeded into the scratch schema")
		fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured runs (both sides) to this file")
	})
	if err != nil {
		return helpOK(err)
	}
	if o.rounds < 1 || o.connections < 1 || o.threads < 1 || o.duration <= 0 {
		return fmt.Errorf("%w: --rounds, --connections, --threads and --duration must be positive", errUsage)
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("bench-http needs wrk (Debian: apt-get install wrk)")
	}
	// The server as `serve` runs it, rate limits off, its access log
	// written (to the null device) as it would be in production.
	cfg.RateLimitAddr, cfg.RateLimitKey = 0, 0
	cfg.RedisPrefix = fmt.Sprintf("bench-http:%d:", time.Now().UnixNano())
	logFile, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := newLogger(cfg, logFile)
	accessOut := logbuf.New(logFile, 64<<10, 100*time.Millisecond)
	defer accessOut.Close()
	access := newLogger(cfg, accessOut)

	admin, err := openDB(ctx, cfg) // creates the database when missing
	if err != nil {
		return err
	}
	admin.Close()
	dsn, drop, err := storage.ScratchSchema(ctx, cfg.DatabaseURL, "bench_http_")
	if err != nil {
		return err
	}
	defer drop() //nolint:errcheck // best effort
	cfg.DatabaseURL = dsn
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Seed(ctx, storage.SeedOptions{Events: o.events, Days: 30, Users: 20_000, Seed: 1, Uniform: true}); err != nil {
		return err
	}
	if err := db.NewRoller(storage.RollupOptions{}).CatchUp(ctx); err != nil {
		return err
	}
	rdb, err := newRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	defer redis.DeletePrefix(context.WithoutCancel(ctx), rdb, cfg.RedisPrefix) //nolint:errcheck // best effort

	reg := prometheus.NewRegistry()
	st := newStack(cfg, db, db, rdb, &auth.Keys{}, reg, log, access, accessOut)
	defer st.broker.Close()
	srv := st.edge.Server(nil)
	serverURL, stop, err := listen(srv)
	if err != nil {
		return err
	}
	defer stop()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(stdout, "wrk -t%d -c%d -d%s --latency, %d rounds per side, alternating; %d events; GOMAXPROCS=%s\n\n",
		o.threads, o.connections, o.duration, o.rounds, o.events, orDash(os.Getenv("GOMAXPROCS")))
	fmt.Fprintln(stdout, "| request | bare handler req/s | server req/s | ratio | bare p50 / p99 | server p50 / p99 |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---|---|")
	end := time.Now().UTC().Truncate(24 * time.Hour)
	for _, c := range []struct{ name, path string }{
		{"summary, 30 whole days (absolute)", "/api/v1/analytics/summary?from=" + url.QueryEscape(end.Add(-30*24*time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(end.Format(time.RFC3339))},
		{"summary, now-24h..now (live)", "/api/v1/analytics/summary?from=now-24h&to=now"},
	} {
		before := cacheCounts(reg)
		if err := benchOneHTTP(ctx, stdout, wrk, o, c.name, serverURL+c.path); err != nil {
			return err
		}
		after := cacheCounts(reg)
		var parts []string
		for _, r := range []string{"hit", "miss", "stale", "error"} {
			parts = append(parts, fmt.Sprintf("%s %.0f", r, after[r]-before[r]))
		}
		fmt.Fprintf(stdout, "|   (server's cache look-ups during those runs: %s) | | | | | |\n", strings.Join(parts, ", "))
	}
	return nil
}

// cacheCounts reads analytics_cache_requests_total by result.
func cacheCounts(reg *prometheus.Registry) map[string]float64 {
	out := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "analytics_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// benchOneHTTP primes the cache for u, serves its exact body from a bare
// handler, and runs wrk against both.
func benchOneHTTP(ctx context.Context, w io.Writer, wrk string, o benchHTTPOptions, name, u string) error {
	var body []byte
	var ctype string
	// The second answer is the cached one, unless a live range moved to
	// the next interval in between.
	for range 5 {
		resp, err := http.Get(u)
		if err != nil {
			return err
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", u, resp.StatusCode, body)
		}
		ctype = resp.Header.Get("Content-Type")
		if bytes.Contains(body, []byte(`"cached":true`)) {
			break
		}
		time.Sleep(1100 * time.Millisecond) // past the cache's circuit breaker
	}
	if !bytes.Contains(body, []byte(`"cached":true`)) {
		return fmt.Errorf("%s: not served from the cache: %s", u, body)
	}
	bare := &http.Server{Handler: api.Bare(ctype, body), ReadHeaderTimeout: 10 * time.Second}
	bareURL, stop, err := listen(bare)
	if err != nil {
		return err
	}
	defer stop()
	path := u[strings.Index(u[len("http://"):], "/")+len("http://"):]
	var bareRuns, serverRuns []wrkResult
	for range o.rounds {
		for _, side := range []struct {
			url  string
			into *[]wrkResult
		}{{bareURL + path, &bareRuns}, {u, &serverRuns}} {
			r, err := runWrk(ctx, wrk, o, side.url)
			if err != nil {
				return err
			}
			*side.into = append(*side.into, r)
		}
	}
	b, s := medianWrk(bareRuns), medianWrk(serverRuns)
	fmt.Fprintf(w, "| %s | %.0f | %.0f | **%.2f×** | %s / %s | %s / %s |\n", name, b.rps, s.rps, s.rps/b.rps, b.p50, b.p99, s.p50, s.p99)
	return nil
}

// listen serves srv on a free loopback port.
func listen(srv *http.Server) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(ln) //nolint:errcheck // closed by stop
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

type wrkResult struct {
	rps      float64
	p50, p99 string
}

var (
	wrkRate    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+(\S+)`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: .*`)
)

func runWrk(ctx context.Context, wrk string, o benchHTTPOptions, u string) (wrkResult, error) {
	out, err := exec.CommandContext(ctx, wrk, "-t"+strconv.Itoa(o.threads), "-c"+strconv.Itoa(o.connections),
		"-d"+strconv.Itoa(int(o.duration.Seconds()))+"s", "--latency", u).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(out)
}

// parseWrk reads requests/s and the p50/p99 latencies from wrk's report;
// a report with failed requests is an error.
func parseWrk(out []byte) (wrkResult, error) {
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return wrkResult{}, fmt.Errorf("wrk: no Requests/sec in:\n%s", out)
	}
	if e := wrkErrors.Find(out); e != nil {
		return wrkResult{}, fmt.Errorf("wrk: %s in:\n%s", e, out)
	}
	r := wrkResult{}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, l := range wrkLatency.FindAllSubmatch(out, -1) {
		if string(l[1]) == "50" {
			r.p50 = string(l[2])
		} else {
			r.p99 = string(l[2])
		}
	}
	return r, nil
}

func medianWrk(rs []wrkResult) wrkResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b wrkResult) int {
		switch {
		case a.rps < b.rps:
			return -1
		case a.rps > b.rps:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
