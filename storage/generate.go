package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/liveanalytics/analyticsd/internal/ingest"
)

// WeightedType is an event type and its relative frequency.
type WeightedType struct {
	Name   string
	Weight float64
}

// DefaultTypes is a plausible product mix.
var DefaultTypes = []WeightedType{
	{"page_view", 55}, {"click", 22}, {"scroll", 8}, {"search", 5}, {"signup", 3},
	{"add_to_cart", 3}, {"checkout", 2}, {"purchase", 1.5}, {"logout", 0.5},
}

var typeName = regexp.MustCompile(`^[a-z0-9_.-]{1,100}$`)

// ParseTypes reads "page_view:60,click:30,purchase" (weight 1 when absent).
func ParseTypes(s string) ([]WeightedType, error) {
	var out []WeightedType
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, w, hasW := strings.Cut(strings.TrimSpace(part), ":")
		if !typeName.MatchString(name) {
			return nil, fmt.Errorf("storage: event type %q: use 1-100 of a-z 0-9 _ . -", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("storage: event type %q is listed twice", name)
		}
		seen[name] = true
		weight := 1.0
		if hasW {
			v, err := strconv.ParseFloat(w, 64)
			if err != nil || !(v > 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("storage: event type %q: weight %q must be a positive number", name, w)
			}
			weight = v
		}
		out = append(out, WeightedType{name, weight})
	}
	return out, nil
}

// SeedOptions describe a synthetic data set.
type SeedOptions struct {
	Events   int64
	Days     int
	Users    int
	Types    []WeightedType // nil: DefaultTypes
	End      time.Time      // zero: now
	Seed     uint64         // 0: random; the same seed gives the same rows
	Workers  int            // parallel COPY streams; 0: 2
	Progress io.Writer      // nil: silent
	// NoAnalyze leaves the table as a bulk load does before any VACUUM or
	// ANALYZE has run: no statistics, no visibility map (benchmarks of a
	// planner without statistics).
	NoAnalyze bool
	// Partitions is the grain of the partitions of events the history
	// needs, created before loading it [Month].
	Partitions Grain
}

// SeedStats report a load.
type SeedStats struct {
	Events  int64
	Elapsed time.Duration
}

// hourWeight is the day/night rhythm: a trough of 15% of the peak at 04:00
// UTC, the peak at 16:00.
func hourWeight(h int) float64 {
	return 0.15 + 0.85*(1-math.Cos(2*math.Pi*float64(h-4)/24))/2
}

// picker draws users and types.
type picker struct {
	rng   *rand.Rand
	zipf  *rand.Zipf
	perm  uint64 // users are numbered through a multiplicative shuffle, so heavy users are not u0000001..
	users uint64
	names []string
	cum   []float64
}

func newPicker(seed uint64, users int, types []WeightedType) *picker {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &picker{rng: rng, users: uint64(users), perm: 2654435761}
	if users > 1 {
		p.zipf = rand.NewZipf(rng, 1.07, 8, uint64(users-1))
	}
	total := 0.0
	for _, t := range types {
		total += t.Weight
		p.names = append(p.names, t.Name)
		p.cum = append(p.cum, total)
	}
	for i := range p.cum {
		p.cum[i] /= total
	}
	return p
}

func (p *picker) user() string {
	var n uint64
	if p.zipf != nil {
		n = (p.zipf.Uint64()*p.perm + 12345) % p.users
	}
	return "u" + strconv.FormatUint(n, 10)
}

func (p *picker) eventType() string {
	x := p.rng.Float64()
	i, _ := slices.BinarySearch(p.cum, x)
	if i >= len(p.names) {
		i = len(p.names) - 1
	}
	return p.names[i]
}

// Seed loads o.Events synthetic events with COPY, spread over the last
// o.Days days. Each worker owns a contiguous slice of hours and writes it in
// time order, which keeps the created_at index appends cheap.
func (db *DB) Seed(ctx context.Context, o SeedOptions) (SeedStats, error) {
	if o.Types == nil {
		o.Types = DefaultTypes
	}
	if o.End.IsZero() {
		o.End = time.Now()
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	switch {
	case o.Events < 0:
		return SeedStats{}, errors.New("storage: seed: events must not be negative")
	case o.Days < 1:
		return SeedStats{}, errors.New("storage: seed: days must be at least 1")
	case o.Users < 1:
		return SeedStats{}, errors.New("storage: seed: users must be at least 1")
	case o.Workers < 1:
		return SeedStats{}, errors.New("storage: seed: workers must be at least 1")
	case len(o.Types) == 0:
		return SeedStats{}, errors.New("storage: seed: no event types")
	}
	start := time.Now()
	hours := o.Days * 24
	first := o.End.Truncate(time.Millisecond).Add(-time.Duration(hours) * time.Hour)

	// Events per hour: the rhythm's share of the total, by cumulative
	// rounding so that the counts add up to exactly o.Events.
	weights := make([]float64, hours)
	total := 0.0
	for i := range weights {
		weights[i] = hourWeight(first.Add(time.Duration(i) * time.Hour).UTC().Hour())
		total += weights[i]
	}
	perHour := make([]int64, hours)
	cum, prev := 0.0, int64(0)
	for i, w := range weights {
		cum += w
		next := int64(math.Round(cum / total * float64(o.Events)))
		perHour[i], prev = next-prev, next
	}

	// The history's partitions first: rows no partition covers would all
	// land in the default partition, to be moved out again later.
	if _, err := db.EnsurePartitions(ctx, o.Partitions, first, o.End.Add(time.Minute)); err != nil {
		return SeedStats{}, fmt.Errorf("storage: seed: %w", err)
	}
	var done atomic.Int64
	stopProgress := db.progress(o.Progress, &done, o.Events, start)
	g, gctx := errgroup.WithContext(ctx)
	for w := range o.Workers {
		lo, hi := w*hours/o.Workers, (w+1)*hours/o.Workers
		g.Go(func() error {
			p := newPicker(o.Seed+uint64(w)*1_000_003, o.Users, o.Types)
			return db.copyHours(gctx, p, first, perHour, lo, hi, &done)
		})
	}
	err := g.Wait()
	stopProgress()
	if err != nil {
		return SeedStats{Events: done.Load()}, fmt.Errorf("storage: seed: %w", err)
	}
	if o.NoAnalyze {
		return SeedStats{Events: done.Load(), Elapsed: time.Since(start)}, nil
	}
	// Fresh statistics and a visibility map, so the planner picks
	// index-only scans at once. VACUUM cannot run in a transaction.
	if _, err := db.pool.Exec(ctx, "VACUUM (ANALYZE) events"); err != nil {
		return SeedStats{Events: done.Load()}, fmt.Errorf("storage: seed: vacuum: %w", err)
	}
	return SeedStats{Events: done.Load(), Elapsed: time.Since(start)}, nil
}

// copyHours streams hours [lo, hi) to one COPY.
func (db *DB) copyHours(ctx context.Context, p *picker, first time.Time, perHour []int64, lo, hi int, done *atomic.Int64) error {
	hour, left := lo, int64(0)
	var offsets []int64
	if lo < hi {
		left = perHour[lo]
	}
	src := pgx.CopyFromFunc(func() ([]any, error) {
		for left == 0 || len(offsets) == 0 {
			if len(offsets) == 0 && left > 0 {
				offsets = make([]int64, left)
				for i := range offsets {
					offsets[i] = p.rng.Int64N(int64(time.Hour / time.Millisecond))
				}
				slices.Sort(offsets)
				continue
			}
			hour++
			if hour >= hi {
				return nil, nil
			}
			left, offsets = perHour[hour], nil
		}
		if done.Add(1)%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ts := first.Add(time.Duration(hour)*time.Hour + time.Duration(offsets[0])*time.Millisecond)
		offsets = offsets[1:]
		left--
		return []any{p.user(), p.eventType(), ts}, nil
	})
	_, err := copyEvents(ctx, db.pool, src)
	return err
}

// progress prints a line about once a second until the returned func runs.
func (db *DB) progress(w io.Writer, done *atomic.Int64, total int64, start time.Time) func() {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				fmt.Fprintf(w, "seeded %s/%s events (%s events/s)\n", si(float64(n)), si(float64(total)), si(float64(n)/time.Since(start).Seconds()))
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func si(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// InsertRandom writes n events at about `at` (within the second before
// it) from the same skewed population, as a live producer would.
func (db *DB) InsertRandom(ctx context.Context, n int, at time.Time, users int, types []WeightedType) error {
	if _, err := copyEvents(ctx, db.pool, eventRows(RandomEvents(n, at, users, types))); err != nil {
		return fmt.Errorf("storage: insert: %w", err)
	}
	return nil
}

// RandomEvents makes n events in the second before at, drawn like Seed's
// (skewed users, weighted types; nil types: DefaultTypes).
func RandomEvents(n int, at time.Time, users int, types []WeightedType) []ingest.Event {
	if types == nil {
		types = DefaultTypes
	}
	p := newPicker(uint64(at.UnixNano()), users, types)
	events := make([]ingest.Event, n)
	for i := range events {
		ts := at.Add(-time.Duration(p.rng.Int64N(int64(time.Second/time.Millisecond))) * time.Millisecond).Truncate(time.Millisecond)
		events[i] = ingest.Event{UserID: p.user(), EventType: p.eventType(), CreatedAt: ts}
	}
	return events
}

// HasEvents reports whether the events table has any row.
func (db *DB) HasEvents(ctx context.Context) (bool, error) {
	var has bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events)`).Scan(&has); err != nil {
		return false, fmt.Errorf("storage: has events: %w", err)
	}
	return has, nil
}
