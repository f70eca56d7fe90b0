package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/api"
	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// benchOptions are the flags of `analyticsd bench`.
type benchOptions struct {
	events      int64
	days        int
	users       int
	runs        int
	naiveRuns   int
	ingestRows  int
	lagDuration time.Duration
	lagRate     int
	// neverAnalyzed also measures the cold summaries on a copy of the data
	// that was never analyzed (a scratch schema, seeded the same way).
	neverAnalyzed bool
	// rawRetention, when set, then drops the partitions older than it and
	// measures the summaries again, from the rollups alone where raw
	// events are gone.
	rawRetention time.Duration
}

// runBench seeds a dedicated database when its event count differs, rolls
// it up, and prints, per range: the plain SQL time, the rollup time with
// an empty bitmap cache (cold) and with a warm one, the ratio, and whether
// both answers are equal. No Redis is involved: these are store times.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o benchOptions
	var benchURL string
	cfg, err := parseConfig("bench", args, getenv, stderr, func(fs *flag.FlagSet, c *Config) {
		c.DBStatementTimeout = 10 * time.Minute
		fs.StringVar(&benchURL, "bench-database-url", getenv("BENCH_DATABASE_URL"),
			"database to seed and measure; its name must contain \"bench\" (env BENCH_DATABASE_URL; default: DATABASE_URL's server, database analytics_bench)")
		fs.Int64Var(&o.events, "events", 10_000_000, "events in the benchmark database (reseeded when the count differs)")
		fs.IntVar(&o.days, "days", 30, "days the events span, ending now")
		fs.IntVar(&o.users, "users", 200_000, "distinct users")
		fs.IntVar(&o.runs, "runs", 21, "timed runs per rollup measurement (the median is printed)")
		fs.IntVar(&o.naiveRuns, "naive-runs", 3, "timed runs per plain SQL measurement")
		fs.IntVar(&o.ingestRows, "ingest-rows", 1_000_000, "rows per COPY in the ingest cost measurement (0 skips it)")
		fs.DurationVar(&o.lagDuration, "lag-duration", 30*time.Second, "length of the sustained insert stream that measures worker lag (0 skips it)")
		fs.IntVar(&o.lagRate, "lag-rate", 5_000, "events per second of that stream")
		fs.BoolVar(&o.neverAnalyzed, "never-analyzed", false, "also seed the same events into a scratch schema without VACUUM or ANALYZE and compare cold summaries there with the analyzed database")
	})
	if err != nil {
		return helpOK(err)
	}
	// --raw-retention (RAW_RETENTION): after the measurements, drop the
	// raw partitions older than it and measure again (the next run reseeds).
	o.rawRetention = cfg.RawRetention
	if o.runs < 1 || o.naiveRuns < 1 || o.events < 1 || o.days < 1 || o.users < 1 {
		return fmt.Errorf("%w: --events, --days, --users, --runs and --naive-runs must be positive", errUsage)
	}
	// Never DATABASE_URL itself: the benchmark truncates its database.
	if benchURL == "" {
		benchURL = storage.WithDatabase(cfg.DatabaseURL, "analytics_bench")
	}
	if name := storage.DatabaseName(benchURL); !strings.Contains(name, "bench") {
		return fmt.Errorf("%w: the benchmark database %q must have \"bench\" in its name: it truncates the events table", errUsage, name)
	}
	cfg.DatabaseURL = benchURL
	db, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	have, err := db.CountEvents(ctx)
	if err != nil {
		return err
	}
	if have != o.events {
		fmt.Fprintf(stdout, "seeding %d events over %d days, %d users (the database has %d)\n", o.events, o.days, o.users, have)
		if err := db.TruncateEvents(ctx); err != nil {
			return err
		}
		st, err := db.Seed(ctx, storage.SeedOptions{Events: o.events, Days: o.days, Users: o.users, Seed: 42, Uniform: true})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded in %s (%.0f events/s, trigger on, VACUUM ANALYZE included)\n", st.Elapsed.Round(time.Millisecond), float64(st.Events)/st.Elapsed.Seconds())
	}
	start := time.Now()
	if err := db.NewRoller(storage.RollupOptions{}).CatchUp(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rollup worker caught up in %s\n", time.Since(start).Round(time.Millisecond))
	rollupBytes, eventBytes, err := db.Sizes(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rollup tables and dictionary: %.1f MiB; events table: %.1f MiB\n\n", float64(rollupBytes)/(1<<20), float64(eventBytes)/(1<<20))

	naive, err := storage.Open(ctx, storage.Options{URL: cfg.DatabaseURL, StatementTimeout: cfg.DBStatementTimeout, Naive: true})
	if err != nil {
		return err
	}
	defer naive.Close()
	if err := benchQueries(ctx, stdout, db, naive, o); err != nil {
		return err
	}
	if o.rawRetention > 0 {
		if err := benchRetention(ctx, stdout, db, o); err != nil {
			return err
		}
	}
	if o.neverAnalyzed {
		if err := benchNeverAnalyzed(ctx, stdout, cfg, db, o); err != nil {
			return err
		}
	}
	if o.ingestRows > 0 {
		if err := benchIngest(ctx, stdout, cfg, o); err != nil {
			return err
		}
	}
	return nil
}

type benchCase struct {
	name      string
	iv        storage.Interval
	eventType string
}

func benchCases(now time.Time) []benchCase {
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	day := 24 * time.Hour
	today := now.Truncate(day)
	return []benchCase{
		{"1 h, ending now", storage.Interval{From: ago(time.Hour), To: now}, ""},
		{"1 d, ending now", storage.Interval{From: ago(day), To: now}, ""},
		{"7 d, ending now", storage.Interval{From: ago(7 * day), To: now}, ""},
		{"30 d, ending now", storage.Interval{From: ago(30 * day), To: now}, ""},
		{"29 whole days (UTC midnights)", storage.Interval{From: today.Add(-29 * day), To: today}, ""},
		{"odd edges (µs), 17 d", storage.Interval{From: ago(19*day + 3*time.Hour + 7*time.Minute + 12345678*time.Microsecond), To: ago(2*day + 5*time.Hour + 500123*time.Microsecond)}, ""},
		{"30 d, event_type=click", storage.Interval{From: ago(30 * day), To: now}, "click"},
		{"365 d, ending now", storage.Interval{From: ago(365 * day), To: now}, ""},
	}
}

func benchQueries(ctx context.Context, w io.Writer, db, naive *storage.DB, o benchOptions) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	fmt.Fprintln(w, "| range | plain SQL | rollups, cold | rollups, warm | cold speed-up | equal |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	for _, c := range benchCases(now) {
		ivs := []storage.Interval{c.iv}
		var want []summary.Summary
		naiveT, err := median(o.naiveRuns, func() error {
			var err error
			want, err = naive.Aggregate(ctx, c.eventType, ivs)
			return err
		})
		if err != nil {
			return err
		}
		var got []summary.Summary
		cold, err := median(o.runs, func() error {
			db.ResetCaches()
			var err error
			got, err = db.Aggregate(ctx, c.eventType, ivs)
			return err
		})
		if err != nil {
			return err
		}
		warm, err := median(o.runs, func() error {
			_, err := db.Aggregate(ctx, c.eventType, ivs)
			return err
		})
		if err != nil {
			return err
		}
		equal := "yes"
		if !reflect.DeepEqual(got, want) {
			equal = fmt.Sprintf("**NO**: %+v vs %+v", got, want)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f× | %s |\n", c.name, ms(naiveT), ms(cold), ms(warm), float64(naiveT)/float64(cold), equal)
	}
	fmt.Fprintf(w, "\n%d events; medians of %d plain SQL and %d rollup runs; cold = empty in-process bitmap and dictionary caches; no Redis.\n\n", mustCount(ctx, db), o.naiveRuns, o.runs)
	return nil
}

func mustCount(ctx context.Context, db *storage.DB) int64 {
	n, _ := db.CountEvents(ctx)
	return n
}

func median(runs int, f func() error) (time.Duration, error) {
	ds := make([]time.Duration, runs)
	for i := range ds {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	}
}

// benchRetention answers every case (rollups, cold), drops the raw
// partitions older than o.rawRetention as the worker does, and answers
// them again: the disk before and after, the times, and whether the
// answers stayed the same (where an edge moved to the minute, the new
// answer is for the adjusted range and says so). The next run reseeds.
func benchRetention(ctx context.Context, w io.Writer, db *storage.DB, o benchOptions) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	cases := benchCases(now)
	before := make([][]summary.Summary, len(cases))
	for i, c := range cases {
		var err error
		if before[i], err = db.Aggregate(ctx, c.eventType, []storage.Interval{c.iv}); err != nil {
			return err
		}
	}
	fb, err := db.Footprint(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := db.NewRoller(storage.RollupOptions{Partitions: storage.PartitionOptions{RawRetention: o.rawRetention}}).CatchUp(ctx); err != nil {
		return err
	}
	dropped := time.Since(start)
	fa, err := db.Footprint(ctx)
	if err != nil {
		return err
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Fprintf(w, "raw retention %s: %d -> %d partitions in %s; raw events %s -> %s, rollups %s -> %s; raw events kept from %s\n\n",
		o.rawRetention, fb.Partitions, fa.Partitions, dropped.Round(time.Millisecond), mib(fb.RawBytes), mib(fa.RawBytes),
		mib(fb.RollupBytes), mib(fa.RollupBytes), fa.Retention.RawFrom)
	fmt.Fprintln(w, "| range | rollups, cold, after the drop | rollups, warm | same answer as before the drop |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	for i, c := range cases {
		ivs := []storage.Interval{c.iv}
		var got []summary.Summary
		cold, err := median(o.runs, func() error {
			db.ResetCaches()
			var err error
			got, err = db.Aggregate(ctx, c.eventType, ivs)
			return err
		})
		if err != nil {
			return err
		}
		warm, err := median(o.runs, func() error {
			_, err := db.Aggregate(ctx, c.eventType, ivs)
			return err
		})
		if err != nil {
			return err
		}
		same := "yes"
		switch {
		case got[0].Effective != nil:
			same = fmt.Sprintf("edge moved to the minute: %d vs %d events", got[0].TotalEvents, before[i][0].TotalEvents)
		case !reflect.DeepEqual(got, before[i]):
			same = fmt.Sprintf("**NO**: %d vs %d events", got[0].TotalEvents, before[i][0].TotalEvents)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.name, ms(cold), ms(warm), same)
	}
	fmt.Fprintln(w)
	return nil
}

// benchNeverAnalyzed seeds the same events (same seed) into a scratch
// schema with no VACUUM and no ANALYZE, as a bulk load leaves a table
// before autovacuum's first visit (or forever with autovacuum off), and
// compares its cold summaries with the analyzed database's.
func benchNeverAnalyzed(ctx context.Context, w io.Writer, cfg Config, analyzed *storage.DB, o benchOptions) error {
	scratchURL, drop, err := storage.ScratchSchema(ctx, cfg.DatabaseURL, "bench_never_analyzed_")
	if err != nil {
		return err
	}
	defer drop() //nolint:errcheck // best effort
	scfg := cfg
	scfg.DatabaseURL = scratchURL
	db, err := openMigrated(ctx, scfg)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.Seed(ctx, storage.SeedOptions{Events: o.events, Days: o.days, Users: o.users, Seed: 42, NoAnalyze: true})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := db.NewRoller(storage.RollupOptions{}).CatchUp(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "never-analyzed copy: seeded %d events in %s (no VACUUM, no ANALYZE), rolled up in %s\n\n",
		st.Events, st.Elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(w, "| range | rollups, cold, analyzed | rollups, cold, never analyzed | events (analyzed / never analyzed) |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	for _, c := range benchCases(time.Now().UTC().Truncate(time.Millisecond)) {
		ivs := []storage.Interval{c.iv}
		var a, n []summary.Summary
		ta, err := median(o.runs, func() error {
			analyzed.ResetCaches()
			var err error
			a, err = analyzed.Aggregate(ctx, c.eventType, ivs)
			return err
		})
		if err != nil {
			return err
		}
		tn, err := median(o.runs, func() error {
			db.ResetCaches()
			var err error
			n, err = db.Aggregate(ctx, c.eventType, ivs)
			return err
		})
		if err != nil {
			return err
		}
		// The same generator and seed, but each data set ends when it was
		// seeded, so their windows (and totals) differ a little.
		fmt.Fprintf(w, "| %s | %s | %s | %d / %d |\n", c.name, ms(ta), ms(tn), a[0].TotalEvents, n[0].TotalEvents)
	}
	fmt.Fprintf(w, "\nmedians of %d cold runs each (empty in-process caches).\n\n", o.runs)
	return nil
}

// benchIngest measures what the dirty-marking trigger costs a bulk COPY,
// and how far the worker trails a sustained insert stream, in a scratch
// schema of the same database.
func benchIngest(ctx context.Context, w io.Writer, cfg Config, o benchOptions) error {
	scratchURL, drop, err := storage.ScratchSchema(ctx, cfg.DatabaseURL, "bench_ingest_")
	if err != nil {
		return err
	}
	defer drop() //nolint:errcheck // best effort
	scfg := cfg
	scfg.DatabaseURL = scratchURL
	db, err := openMigrated(ctx, scfg)
	if err != nil {
		return err
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([]ingest.Event, o.ingestRows)
	base := time.Now().Add(-24 * time.Hour)
	for i := range rows {
		rows[i] = ingest.Event{UserID: "u" + strconv.Itoa(rng.IntN(o.users)), EventType: "page_view", CreatedAt: base.Add(time.Duration(i) * 86 * time.Microsecond)}
	}
	copyOnce := func(trigger bool) (time.Duration, error) {
		if err := db.TruncateEvents(ctx); err != nil {
			return 0, err
		}
		if err := db.SetRollupTrigger(ctx, trigger); err != nil {
			return 0, err
		}
		return timeCopy(ctx, db, rows)
	}
	var with, without []time.Duration
	for range 3 {
		d, err := copyOnce(false)
		if err != nil {
			return err
		}
		without = append(without, d)
		if d, err = copyOnce(true); err != nil {
			return err
		}
		with = append(with, d)
	}
	slices.Sort(with)
	slices.Sort(without)
	rate := func(d time.Duration) float64 { return float64(o.ingestRows) / d.Seconds() }
	fmt.Fprintln(w, "| COPY of "+strconv.Itoa(o.ingestRows)+" rows | median time | events/s |")
	fmt.Fprintln(w, "|---|---:|---:|")
	fmt.Fprintf(w, "| without the trigger | %s | %.0f |\n", ms(without[1]), rate(without[1]))
	fmt.Fprintf(w, "| with the trigger | %s | %.0f |\n", ms(with[1]), rate(with[1]))
	fmt.Fprintf(w, "\ntrigger cost: %+.1f%% time\n\n", (float64(with[1])/float64(without[1])-1)*100)

	if err := benchEndpoint(ctx, w, db, rows); err != nil {
		return err
	}

	if o.lagDuration <= 0 {
		return nil
	}
	return benchLag(ctx, w, db, o)
}

// timeCopy times one COPY of rows into events.
func timeCopy(ctx context.Context, db *storage.DB, rows []ingest.Event) (time.Duration, error) {
	start := time.Now()
	err := db.InsertEvents(ctx, rows)
	return time.Since(start), err
}

// benchEndpoint sends the rows through POST /api/v1/events (the real
// handler, middleware and API key check, rate limits off) in batches of
// 1,000 from 4 concurrent senders, and COPYs the same rows into the same
// table, both with the trigger on, and compares the rates.
func benchEndpoint(ctx context.Context, w io.Writer, db *storage.DB, rows []ingest.Event) error {
	const senders, per = 4, 1000
	token, entry, err := auth.Generate(auth.ScopeIngest)
	if err != nil {
		return err
	}
	keys, err := auth.ParseKeys(entry)
	if err != nil {
		return err
	}
	// The whole edge, as served, with the rate limits off; streams and
	// summaries are unused.
	cfg := defaultConfig()
	cfg.RateLimitAddr, cfg.RateLimitKey = 0, 0
	broker := stream.New(nil, nil, stream.Options{})
	defer broker.Close()
	h := api.New(api.Deps{Events: db, Series: db, Broker: broker, Keys: keys, Registry: prometheus.NewRegistry()},
		cfg.apiOptions(slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler), nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // closed below
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/api/v1/events"

	bodies := make([][]byte, 0, len(rows)/per+1)
	for i := 0; i < len(rows); i += per {
		var b bytes.Buffer
		b.WriteByte('[')
		for j := i; j < min(i+per, len(rows)); j++ {
			if j > i {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"user_id":%q,"event_type":%q,"created_at":%q}`, rows[j].UserID, rows[j].EventType, rows[j].CreatedAt.UTC().Format(time.RFC3339Nano))
		}
		b.WriteByte(']')
		bodies = append(bodies, b.Bytes())
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	viaHTTP := func() (time.Duration, error) {
		if err := db.TruncateEvents(ctx); err != nil {
			return 0, err
		}
		var next atomic.Int64
		var firstErr error
		var once sync.Once
		var wg sync.WaitGroup
		start := time.Now()
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(bodies) {
						return
					}
					req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(bodies[i]))
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusAccepted {
							err = fmt.Errorf("ingest answered %d", resp.StatusCode)
						}
					}
					if err != nil {
						once.Do(func() { firstErr = err })
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start), firstErr
	}
	viaCopy := func() (time.Duration, error) {
		if err := db.TruncateEvents(ctx); err != nil {
			return 0, err
		}
		return timeCopy(ctx, db, rows)
	}
	var httpT, copyT []time.Duration
	for range 3 {
		d, err := viaHTTP()
		if err != nil {
			return err
		}
		httpT = append(httpT, d)
		if d, err = viaCopy(); err != nil {
			return err
		}
		copyT = append(copyT, d)
	}
	slices.Sort(httpT)
	slices.Sort(copyT)
	rate := func(d time.Duration) float64 { return float64(len(rows)) / d.Seconds() }
	fmt.Fprintf(w, "| %d events, trigger on | median of 3 | events/s |\n|---|---:|---:|\n", len(rows))
	fmt.Fprintf(w, "| one raw COPY | %s | %.0f |\n", ms(copyT[1]), rate(copyT[1]))
	fmt.Fprintf(w, "| POST /api/v1/events, batches of %d, %d senders | %s | %.0f |\n", per, senders, ms(httpT[1]), rate(httpT[1]))
	fmt.Fprintf(w, "\nendpoint / raw COPY: %.2f×\n\n", rate(httpT[1])/rate(copyT[1]))
	return nil
}

// benchLag runs the worker (1 s interval) while a writer inserts lagRate
// events per second in 10 batches a second — 90% live, 10% late by up to a
// day — and samples the worker's backlog.
func benchLag(ctx context.Context, w io.Writer, db *storage.DB, o benchOptions) error {
	if err := db.TruncateEvents(ctx); err != nil {
		return err
	}
	roller := db.NewRoller(storage.RollupOptions{})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		roller.Run(wctx)
	}()
	var inserted atomic.Int64
	var werr error
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		batch := max(o.lagRate/10, 1)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now()
			rows := make([]ingest.Event, batch)
			for i := range rows {
				at := now
				if rng.IntN(10) == 0 {
					at = now.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
				}
				rows[i] = ingest.Event{UserID: "u" + strconv.Itoa(rng.IntN(o.users)), EventType: "page_view", CreatedAt: at}
			}
			if err := db.InsertEvents(wctx, rows); err != nil {
				if wctx.Err() == nil {
					werr = err
				}
				return
			}
			inserted.Add(int64(batch))
		}
	}()
	var lags []time.Duration
	var maxMarks int64
	end := time.Now().Add(o.lagDuration)
	for time.Now().Before(end) {
		time.Sleep(250 * time.Millisecond)
		n, lag, err := db.RollupBacklog(ctx)
		if err != nil {
			return err
		}
		lags = append(lags, lag)
		maxMarks = max(maxMarks, n)
	}
	stop()
	wg.Wait()
	if werr != nil {
		return werr
	}
	slices.Sort(lags)
	fmt.Fprintf(w, "worker lag under %d events/s for %s (%d inserted; 10%% late by up to a day): oldest dirty mark p50 %s, p99 %s, max %s; at most %d marks waiting\n",
		o.lagRate, o.lagDuration, inserted.Load(), lags[len(lags)/2].Round(time.Millisecond), lags[len(lags)*99/100].Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond), maxMarks)
	return nil
}
