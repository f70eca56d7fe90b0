package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/storage"
)

// fleetOptions are the flags of `analytics-loadgen fleet`.
type fleetOptions struct {
	server      string
	instances   int
	generators  int
	clients     int
	ranges      int
	types       string
	rangeUnit   string
	duration    time.Duration
	interval    time.Duration
	rate        int
	basePort    int
	events      int64
	probes      int
	databaseURL string
	redisURL    string
	keep        bool
}

func parseFleet(args []string) (fleetOptions, error) {
	var o fleetOptions
	fs := flag.NewFlagSet("analytics-loadgen fleet", flag.ContinueOnError)
	fs.StringVar(&o.server, "server", "analyticsd", "the analyticsd binary to run")
	fs.IntVar(&o.instances, "instances", 3, "analyticsd instances on one PostgreSQL and one Redis")
	fs.IntVar(&o.generators, "generators", 0, "load generator processes (0: one per instance)")
	fs.IntVar(&o.clients, "clients", 30_000, "EventSource clients in total")
	fs.IntVar(&o.ranges, "ranges", 10, "distinct live ranges (with --types: spans × types)")
	fs.StringVar(&o.types, "types", "", "comma-separated event types for the ranges' filters")
	fs.StringVar(&o.rangeUnit, "range-unit", "h", "unit of the range spans: s, m, h or d")
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long the generators hold their clients once connected")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "REFRESH_INTERVAL of the instances")
	fs.IntVar(&o.rate, "rate", 1500, "new connections per second per generator")
	fs.IntVar(&o.basePort, "base-port", 4100, "instance i listens on base-port + i (127.0.0.1)")
	fs.Int64Var(&o.events, "events", 300_000, "events seeded (30 days) into the scratch schema")
	fs.IntVar(&o.probes, "probe-clients", 20, "clients timing ingest → stream freshness (0: no probe)")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL; a scratch schema is made and dropped (env DATABASE_URL)")
	fs.StringVar(&o.redisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis; a scratch prefix is used and deleted (env REDIS_URL)")
	fs.BoolVar(&o.keep, "keep-logs", false, "keep the instances' and generators' logs in the temporary directory")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.generators == 0 {
		o.generators = o.instances
	}
	if o.instances < 1 || o.generators < 1 || o.clients < 1 || o.ranges < 1 || o.duration <= 3*o.interval || o.interval <= 0 {
		return o, errors.New("--instances, --generators, --clients and --ranges must be positive, --duration more than 3 intervals")
	}
	if o.generators > 200 {
		return o, errors.New("--generators: at most 200 (each takes its own 127.0.x.0/24 sources)")
	}
	if o.databaseURL == "" || o.redisURL == "" {
		return o, errors.New("--database-url and --redis-url (or DATABASE_URL and REDIS_URL) are needed; `make bench-fleet` sets them")
	}
	return o, nil
}

// instance is one analyticsd process.
type instance struct {
	base string
	cmd  *exec.Cmd
	done chan error
}

// runFleet starts instances on one PostgreSQL (a scratch schema) and one
// Redis (a scratch prefix), load generators as child processes, and
// reports the merged delivery latency, freshness, leader refreshes against
// ranges × intervals, the work per interval, and memory per connection.
func runFleet(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFleet(args)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fleet-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	dsn, drop, err := storage.ScratchSchema(ctx, o.databaseURL, "fleet_")
	if err != nil {
		return err
	}
	defer drop() //nolint:errcheck // best effort
	prefix := fmt.Sprintf("fleet:%d:", time.Now().UnixNano())
	rdb, err := redis.NewClient(o.redisURL, false)
	if err != nil {
		return err
	}
	defer rdb.Close()
	defer redis.DeletePrefix(context.WithoutCancel(ctx), rdb, prefix) //nolint:errcheck // best effort

	fmt.Fprintf(out, "seeding %d events into a scratch schema\n", o.events)
	seed := exec.CommandContext(ctx, o.server, "seed", "--events", strconv.FormatInt(o.events, 10), "--days", "30", "--users", "50000", "--seed", "1")
	seed.Env = append(os.Environ(), "DATABASE_URL="+dsn)
	if b, err := seed.CombinedOutput(); err != nil {
		return fmt.Errorf("seed: %w\n%s", err, b)
	}
	token, entry, err := auth.Generate(auth.ScopeIngest)
	if err != nil {
		return err
	}

	var insts []*instance
	defer func() { stopAll(insts) }()
	env := []string{"DATABASE_URL=" + dsn, "REDIS_URL=" + o.redisURL, "REDIS_PREFIX=" + prefix,
		"REFRESH_INTERVAL=" + o.interval.String(), "RATE_LIMIT_ADDR=0", "RATE_LIMIT_KEY=0", "API_KEYS=" + entry,
		"STREAM_MAX_CLIENTS=" + strconv.Itoa(o.clients), "STREAM_MAX_CLIENTS_PER_ADDR=" + strconv.Itoa(o.clients),
		"STREAM_MAX_RANGES=" + strconv.Itoa(max(o.ranges+1, 1000)), "STREAM_MAX_RANGES_PER_ADDR=" + strconv.Itoa(max(o.ranges+1, 1000)),
		"LOG_LEVEL=warn", "ACCESS_LOG_SAMPLE=0"}
	for i := range o.instances {
		in, err := startInstance(ctx, o.server, dir, i, o.basePort+i, env)
		if err != nil {
			return err
		}
		insts = append(insts, in)
	}
	baseRSS := map[string]float64{}
	for _, in := range insts {
		baseRSS[in.base], _ = scrape(in.base, "process_resident_memory_bytes")
	}

	// The generators, each on its own instances and source addresses.
	type genResult struct {
		res Result
		err error
	}
	results := make(chan genResult, o.generators)
	var gens sync.WaitGroup
	for g := range o.generators {
		var targets []string
		for i := g % o.instances; i < o.instances; i += o.generators {
			targets = append(targets, insts[i].base)
		}
		if len(targets) == 0 {
			targets = []string{insts[g%o.instances].base}
		}
		n := o.clients / o.generators
		if g < o.clients%o.generators {
			n++
		}
		a := []string{"--json", "--targets", strings.Join(targets, ","), "--clients", strconv.Itoa(n),
			"--ranges", strconv.Itoa(o.ranges), "--types", o.types, "--range-unit", o.rangeUnit,
			"--duration", o.duration.String(), "--interval", o.interval.String(), "--rate", strconv.Itoa(o.rate),
			"--sources", fmt.Sprintf("127.0.%d.1-127.0.%d.8", g+10, g+10)}
		if g == 0 && o.probes > 0 {
			a = append(a, "--probe-key", token, "--probe-clients", strconv.Itoa(o.probes))
		}
		gens.Add(1)
		go func() {
			defer gens.Done()
			res, err := runGenerator(ctx, self, dir, g, a)
			results <- genResult{res, err}
		}()
	}
	fmt.Fprintf(out, "%d instances, %d generators, %d clients over %d ranges, REFRESH_INTERVAL=%s\n", o.instances, o.generators, o.clients, o.ranges, o.interval)

	// Count refreshes over whole intervals while every client is held.
	window, err := measureWindow(ctx, insts, baseRSS, rdb, o)
	gens.Wait()
	close(results)
	if err != nil {
		return err
	}
	var merged Result
	merged.Latency, merged.Freshness = map[int]int64{}, nil
	for r := range results {
		if r.err != nil {
			return r.err
		}
		merged.Connected += r.res.Connected
		merged.Failed += r.res.Failed
		merged.Dropped += r.res.Dropped
		merged.Updates += r.res.Updates
		merged.SteadySeconds = max(merged.SteadySeconds, r.res.SteadySeconds)
		for ms, n := range r.res.Latency {
			merged.Latency[ms] += n
		}
		if r.res.Freshness != nil {
			merged.Freshness = maps.Clone(r.res.Freshness)
			merged.ProbesSent, merged.ProbesLost = r.res.ProbesSent, r.res.ProbesLost
		}
	}
	fmt.Fprintln(out, "\nfleet result:")
	printResult(out, merged)
	fmt.Fprint(out, window)
	return nil
}

// measureWindow waits until every client is connected, then counts the
// instances' refreshes, Redis commands and store time over whole
// intervals, and reads their memory, while the generators hold.
func measureWindow(ctx context.Context, insts []*instance, baseRSS map[string]float64, rdb redis.Client, o fleetOptions) (string, error) {
	deadline := time.Now().Add(time.Duration(o.clients/max(o.rate*o.generators, 1))*time.Second + 2*time.Minute)
	for {
		total := 0.0
		for _, in := range insts {
			n, _ := scrape(in.base, "analytics_stream_clients")
			total += n
		}
		if total >= float64(o.clients) {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("only %.0f of %d clients connected", total, o.clients)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Start at a boundary plus half an interval (refreshes of a boundary
	// land just after it) and count whole intervals within the hold.
	k := int((o.duration - 2*o.interval) / o.interval)
	next := time.Now().Truncate(o.interval).Add(o.interval + o.interval/2)
	time.Sleep(time.Until(next))
	before, cmdsBefore := snapshotAll(insts), redisCommands(ctx, rdb)
	time.Sleep(time.Duration(k) * o.interval)
	after, cmdsAfter := snapshotAll(insts), redisCommands(ctx, rdb)
	var b strings.Builder
	get := func(s map[string]float64, name string) float64 { return s[name] }
	var leader, follower, local, errs, storeSecs, clients float64
	for i, in := range insts {
		d := func(name string) float64 { return get(after[i], name) - get(before[i], name) }
		leader += d(`analytics_stream_refreshes_total{role="leader"}`)
		follower += d(`analytics_stream_refreshes_total{role="follower"}`)
		local += d(`analytics_stream_refreshes_total{role="local"}`)
		errs += d(`analytics_stream_refreshes_total{role="error"}`)
		storeSecs += d(`analytics_store_query_duration_seconds_sum{outcome="ok"}`)
		c := get(after[i], "analytics_stream_clients")
		clients += c
		rss := get(after[i], "process_resident_memory_bytes")
		fmt.Fprintf(&b, "  %s: %.0f clients, RSS %.0f MiB: %.1f KiB per connection (RSS less the idle instance's, over its clients)\n",
			in.base, c, rss/(1<<20), (rss-baseRSS[in.base])/max(c, 1)/1024)
	}
	ranges := o.ranges
	if o.probes > 0 {
		ranges++ // the probe's own range
	}
	want := float64(ranges * k)
	fmt.Fprintf(&b, "  over %d whole intervals: leader refreshes %.0f (%d ranges × %d intervals = %.0f), follower %.0f, local %.0f, errors %.0f\n",
		k, leader, ranges, k, want, follower, local, errs)
	fmt.Fprintf(&b, "  per interval: %.0f store computations taking %.0f ms of PostgreSQL time in all; %.0f Redis commands (the whole server's)\n",
		leader/float64(k), storeSecs*1000/float64(k), (cmdsAfter-cmdsBefore)/float64(k))
	return b.String(), nil
}

// redisCommands is Redis's total_commands_processed.
func redisCommands(ctx context.Context, rdb redis.Client) float64 {
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// snapshotAll reads the counters measureWindow needs from every instance.
func snapshotAll(insts []*instance) []map[string]float64 {
	out := make([]map[string]float64, len(insts))
	for i, in := range insts {
		m, _ := scrapeAll(in.base)
		out[i] = m
	}
	return out
}

func startInstance(ctx context.Context, bin, dir string, i, port int, env []string) (*instance, error) {
	logf, err := os.Create(fmt.Sprintf("%s/instance-%d.log", dir, i))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(append(os.Environ(), env...), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	in := &instance{base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan error, 1)}
	go func() { in.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(in.base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return in, nil
			}
		}
		select {
		case err := <-in.done:
			return nil, fmt.Errorf("instance %d exited: %v (log in %s)", i, err, dir)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("instance %d did not answer /health", i)
		}
	}
}

func stopAll(insts []*instance) {
	for _, in := range insts {
		_ = in.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, in := range insts {
		select {
		case <-in.done:
		case <-time.After(20 * time.Second):
			_ = in.cmd.Process.Kill()
			<-in.done
		}
	}
}

// runGenerator runs this binary as one generator and reads its JSON result.
func runGenerator(ctx context.Context, self, dir string, g int, args []string) (Result, error) {
	logf, err := os.Create(fmt.Sprintf("%s/generator-%d.log", dir, g))
	if err != nil {
		return Result{}, err
	}
	defer logf.Close()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stdout, cmd.Stderr = &stdout, logf
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("generator %d: %w (log in %s)", g, err, dir)
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Result{}, fmt.Errorf("generator %d: %w", g, err)
	}
	return r, nil
}

// scrapeAll reads every sample of a server's /metrics, by name with labels.
func scrapeAll(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}
