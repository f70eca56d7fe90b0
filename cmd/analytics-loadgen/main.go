// Command analytics-loadgen opens many EventSource clients (r3labs/sse's
// client) over a set of live ranges against one or more analyticsd
// servers, and reports connected clients, updates received, the latency
// from each refresh tick to its receipt, and the servers' RSS per
// connection. Only loopback targets are allowed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "fleet" {
		err = runFleet(ctx, os.Args[2:], os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "analytics-loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	targets   []string
	clients   int
	ranges    int
	types     []string
	rangeUnit string
	duration  time.Duration
	rate      int
	interval  time.Duration
	sources   []net.IP
	json      bool
	probe     probeOptions
}

// probeOptions measure freshness: events accepted by the ingest endpoint,
// timed until a live stream shows them.
type probeOptions struct {
	key     string        // API key with the ingest scope; empty: no probe
	clients int           // EventSource clients watching the probe's range
	every   time.Duration // one event this often
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("analytics-loadgen", flag.ContinueOnError)
	targets := fs.String("targets", "http://127.0.0.1:3000", "comma-separated analyticsd base URLs (loopback only)")
	fs.IntVar(&o.clients, "clients", 1000, "EventSource clients in total, spread over targets and ranges")
	fs.IntVar(&o.ranges, "ranges", 10, "distinct live ranges (now-1h..now, now-2h..now, …; with --types, spans × types)")
	types := fs.String("types", "", "comma-separated event types: range i filters by type i mod len(types) (empty: no filter)")
	fs.StringVar(&o.rangeUnit, "range-unit", "h", "unit of the range spans: s, m, h or d")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object (for the fleet runner)")
	fs.StringVar(&o.probe.key, "probe-key", "", "API key with the ingest scope: POST a probe event every --probe-every and time it until streams show it")
	fs.IntVar(&o.probe.clients, "probe-clients", 10, "EventSource clients watching the probe events")
	fs.DurationVar(&o.probe.every, "probe-every", time.Second, "how often a probe event is sent")
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long to hold the clients after they are connected")
	fs.IntVar(&o.rate, "rate", 2000, "new connections per second")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "the servers' REFRESH_INTERVAL (versions are interval indexes)")
	sources := fs.String("sources", "127.0.0.1", "source addresses, comma-separated or a range 127.0.0.1-127.0.0.8 (each gives ~28k ports)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, t := range strings.Split(*targets, ",") {
		u, err := url.Parse(strings.TrimSpace(t))
		if err != nil || u.Host == "" {
			return o, fmt.Errorf("--targets: %q is not a URL", t)
		}
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return o, fmt.Errorf("--targets: %q is not a loopback address; load is only sent to 127.0.0.0/8", t)
		}
		o.targets = append(o.targets, strings.TrimRight(u.String(), "/"))
	}
	var err error
	if o.sources, err = parseSources(*sources); err != nil {
		return o, err
	}
	if *types != "" {
		o.types = strings.Split(*types, ",")
	}
	switch o.rangeUnit {
	case "s", "m", "h", "d":
	default:
		return o, errors.New("--range-unit must be s, m, h or d")
	}
	if o.probe.key != "" && (o.probe.clients < 1 || o.probe.every <= 0) {
		return o, errors.New("--probe-clients and --probe-every must be positive")
	}
	if o.clients < 1 || o.ranges < 1 || o.rate < 1 || o.duration <= 0 || o.interval <= 0 {
		return o, errors.New("--clients, --ranges, --rate, --duration and --interval must be positive")
	}
	if o.duration > time.Hour {
		return o, errors.New("--duration is capped at 1h")
	}
	return o, nil
}

func parseSources(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a := net.ParseIP(lo).To4()
		b := a
		if isRange {
			b = net.ParseIP(hi).To4()
		}
		if a == nil || b == nil || !a.IsLoopback() || !b.IsLoopback() || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] > b[3] {
			return nil, fmt.Errorf("--sources: %q must be loopback addresses or a range within one /24", part)
		}
		for i := int(a[3]); i <= int(b[3]); i++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(i)))
		}
	}
	return out, nil
}

// latencies is a fixed-bucket histogram in milliseconds.
type latencies struct {
	buckets [60001]atomic.Int64 // 0..60 s by ms; the last bucket is "60 s or more"
	n       atomic.Int64
}

func (l *latencies) add(d time.Duration) {
	ms := d.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	if ms > 60000 {
		ms = 60000
	}
	l.buckets[ms].Add(1)
	l.n.Add(1)
}

func (l *latencies) reset() {
	for i := range l.buckets {
		l.buckets[i].Store(0)
	}
	l.n.Store(0)
}

// sparse is the histogram as ms → count, without the empty buckets.
func (l *latencies) sparse() map[int]int64 {
	out := map[int]int64{}
	for ms := range l.buckets {
		if n := l.buckets[ms].Load(); n > 0 {
			out[ms] = n
		}
	}
	return out
}

// quantilesOf reads quantiles from a sparse histogram.
func quantilesOf(h map[int]int64, qs ...float64) []int64 {
	var l latencies
	for ms, n := range h {
		if ms >= 0 && ms < len(l.buckets) {
			l.buckets[ms].Add(n)
			l.n.Add(n)
		}
	}
	return l.quantiles(qs...)
}

func (l *latencies) quantiles(qs ...float64) []int64 {
	total := l.n.Load()
	out := make([]int64, len(qs))
	if total == 0 {
		return out
	}
	var cum int64
	j := 0
	for ms := range l.buckets {
		cum += l.buckets[ms].Load()
		for j < len(qs) && float64(cum) >= qs[j]*float64(total) {
			out[j] = int64(ms)
			j++
		}
	}
	return out
}

type stats struct {
	connected, failed, dropped, updates atomic.Int64
	lat                                 latencies
	probe                               *prober
}

// rangeQuery is the from/to/event_type of range i.
func rangeQuery(o options, i int) string {
	span := i + 1
	q := ""
	if len(o.types) > 0 {
		span = i/len(o.types) + 1
		q = "&event_type=" + url.QueryEscape(o.types[i%len(o.types)])
	}
	return fmt.Sprintf("from=now-%d%s&to=now%s", span, o.rangeUnit, q)
}

// Result is what one run measured; the fleet runner merges them.
type Result struct {
	Connected, Failed, Dropped, Updates int64
	SteadySeconds                       float64
	Latency                             map[int]int64 // ms → count, tick to receipt
	Freshness                           map[int]int64 // ms → count, accepted to shown (probe)
	ProbesSent, ProbesLost              int64
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	raiseFileLimit()
	log := out
	if o.json {
		log = os.Stderr
	}
	baseline := map[string]float64{}
	for _, t := range o.targets {
		baseline[t], _ = scrape(t, "process_resident_memory_bytes")
	}
	transports := make([]*http.Client, len(o.sources))
	for i, ip := range o.sources {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
		transports[i] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: -1, DisableCompression: true,
			ReadBufferSize: 4 << 10, WriteBufferSize: 1 << 10}}
	}
	var st stats
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if o.probe.key != "" {
		st.probe = newProber(o)
		st.probe.start(ctx, &wg, transports[0])
	}
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	defer tick.Stop()
	start := time.Now()
	report := time.NewTicker(5 * time.Second)
	defer report.Stop()
	fmt.Fprintf(log, "connecting %d clients over %d ranges to %v from %d source address(es)\n", o.clients, o.ranges, o.targets, len(o.sources))
	for i := 0; i < o.clients; i++ {
		select {
		case <-ctx.Done():
			i = o.clients
			continue
		case <-report.C:
			progress(log, &st, start)
		case <-tick.C:
		}
		u := fmt.Sprintf("%s/api/v1/analytics/stream?%s", o.targets[i%len(o.targets)], rangeQuery(o, i%o.ranges))
		c := sse.NewClient(u)
		c.Connection = transports[i%len(transports)]
		c.ReconnectStrategy = &backoff.StopBackOff{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			connected := false
			err := c.SubscribeRawWithContext(ctx, func(ev *sse.Event) {
				if !connected {
					connected = true
					st.connected.Add(1)
				}
				if len(ev.Data) == 0 || len(ev.ID) == 0 {
					return
				}
				v, err := strconv.ParseInt(string(ev.ID), 10, 64)
				if err != nil {
					return
				}
				if first { // the snapshot on connect is not a live delivery
					first = false
					return
				}
				st.updates.Add(1)
				st.lat.add(time.Since(time.UnixMilli(v * o.interval.Milliseconds())))
			})
			switch {
			case ctx.Err() != nil:
			case connected:
				st.connected.Add(-1)
				st.dropped.Add(1)
			default:
				st.failed.Add(1)
				_ = err
			}
		}()
	}
	fmt.Fprintf(log, "all %d clients started in %s; holding for %s\n", o.clients, time.Since(start).Round(time.Millisecond), o.duration)
	hold := time.NewTimer(o.duration)
	st.lat.reset() // measure the steady state only
	st.updates.Store(0)
	if st.probe != nil {
		st.probe.resetStats()
	}
	holdStart := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hold.C:
			break loop
		case <-report.C:
			progress(log, &st, start)
		}
	}
	progress(log, &st, start)
	res := Result{Connected: st.connected.Load(), Failed: st.failed.Load(), Dropped: st.dropped.Load(), Updates: st.updates.Load(),
		SteadySeconds: time.Since(holdStart).Seconds(), Latency: st.lat.sparse()}
	if st.probe != nil {
		res.Freshness, res.ProbesSent, res.ProbesLost = st.probe.result()
	}
	if o.json {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprintf(out, "\nresult over %s of steady state:\n", time.Since(holdStart).Round(time.Second))
	printResult(out, res)
	for _, t := range o.targets {
		rss, err1 := scrape(t, "process_resident_memory_bytes")
		clients, err2 := scrape(t, "analytics_stream_clients")
		if err1 == nil && err2 == nil && clients > 0 {
			fmt.Fprintf(out, "  %s: RSS %.0f MiB with %.0f clients (baseline %.0f MiB): %.1f KiB per connection\n",
				t, rss/(1<<20), clients, baseline[t]/(1<<20), (rss-baseline[t])/clients/1024)
		}
	}
	return nil
}

// printResult prints a run's (or a fleet's merged) figures.
func printResult(out io.Writer, r Result) {
	q := quantilesOf(r.Latency, 0.5, 0.9, 0.99, 0.999, 1)
	fmt.Fprintf(out, "  clients connected %d, failed %d, dropped %d\n", r.Connected, r.Failed, r.Dropped)
	fmt.Fprintf(out, "  updates received %d (%.0f/s)\n", r.Updates, float64(r.Updates)/r.SteadySeconds)
	fmt.Fprintf(out, "  tick-to-receive latency ms: p50 %d  p90 %d  p99 %d  p99.9 %d  max %d\n", q[0], q[1], q[2], q[3], q[4])
	if r.Freshness != nil {
		f := quantilesOf(r.Freshness, 0.5, 0.9, 0.99, 1)
		fmt.Fprintf(out, "  freshness (ingest accepted → shown on a stream), %d probes, %d not shown: p50 %d ms  p90 %d ms  p99 %d ms  max %d ms\n",
			r.ProbesSent, r.ProbesLost, f[0], f[1], f[2], f[3])
	}
}

func progress(out io.Writer, st *stats, start time.Time) {
	q := st.lat.quantiles(0.5, 0.99)
	fmt.Fprintf(out, "[%4.0fs] connected %d failed %d dropped %d updates %d p50 %dms p99 %dms\n",
		time.Since(start).Seconds(), st.connected.Load(), st.failed.Load(), st.dropped.Load(), st.updates.Load(), q[0], q[1])
}

// scrape reads one unlabelled sample from a server's /metrics.
func scrape(base, name string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", base, name)
}

// raiseFileLimit lifts the soft limit on open files to the hard one.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
