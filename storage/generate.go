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
	Events int64
	Days   int
	// Users is the user pool at the end: it grows with the events, from
	// a fifth of it at the start (see Model).
	Users int
	// Uniform is the plain shape of earlier versions: the day rhythm only
	// (by whole UTC hour, no weekly rhythm, no growth) and every user from
	// the start. The benchmarks use it, so that their figures stay
	// comparable across versions.
	Uniform  bool
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
func hourWeight(h int) float64 { return dayRhythm(float64(h)) }

// dayRhythm is hourWeight at a fractional hour of the day.
func dayRhythm(h float64) float64 {
	return 0.15 + 0.85*(1-math.Cos(2*math.Pi*(h-4)/24))/2
}

// weekRhythm is the weekly dip: a quieter Friday, a weekend at about 60%.
func weekRhythm(d time.Weekday) float64 {
	switch d {
	case time.Saturday:
		return 0.6
	case time.Sunday:
		return 0.55
	case time.Friday:
		return 0.9
	}
	return 1
}

// growthPerDay is the traffic's mild growth: about 15% a month.
var growthPerDay = math.Log(1.15) / 30

// Model is the shape of synthetic traffic, for the seed and for the demo's
// live events alike: the rate follows the time of day (a trough at 04:00
// UTC, a peak at 16:00), the day of the week (a weekend dip) and grows
// mildly; the user pool grows with the events, so that unique users scale
// with the volume of a range instead of hitting a flat cap. Live events
// after End continue the history's rate and pool, so that a dashboard's
// last hour does not jump where the history ends.
type Model struct {
	Start, End time.Time // the history
	Events     int64     // over the history
	Users      int       // the pool at End
	Uniform    bool      // SeedOptions.Uniform
	norm       float64   // events per unit of weight-hour
}

// NewModel describes events spread over the days before end, ending with
// a pool of users.
func NewModel(end time.Time, days int, events int64, users int, uniform bool) Model {
	end = end.Truncate(time.Millisecond)
	m := Model{Start: end.Add(-time.Duration(days) * 24 * time.Hour), End: end, Events: events, Users: users, Uniform: uniform}
	total := 0.0
	for i := range days * 24 {
		total += m.hourShare(i)
	}
	if total > 0 {
		m.norm = float64(events) / total
	}
	return m
}

// weight is the relative rate at t.
func (m Model) weight(t time.Time) float64 {
	t = t.UTC()
	w := dayRhythm(float64(t.Hour()) + float64(t.Minute())/60 + float64(t.Second())/3600)
	w *= weekRhythm(t.Weekday())
	return w * math.Exp(growthPerDay*t.Sub(m.Start).Hours()/24)
}

// hourShare is the weight of hour i of the history: the rate at its
// middle (Uniform: the rhythm of its UTC hour).
func (m Model) hourShare(i int) float64 {
	at := m.Start.Add(time.Duration(i) * time.Hour)
	if m.Uniform {
		return hourWeight(at.UTC().Hour())
	}
	return m.weight(at.Add(30 * time.Minute))
}

// Rate is the events per second at t, the history's and after it.
func (m Model) Rate(t time.Time) float64 {
	if m.Uniform {
		return m.norm * hourWeight(t.UTC().Hour()) / 3600
	}
	return m.norm * m.weight(t) / 3600
}

// PerHour is the events of each hour of the history, adding up to
// exactly Events (by cumulative rounding).
func (m Model) PerHour() []int64 {
	hours := int(m.End.Sub(m.Start) / time.Hour)
	perHour := make([]int64, hours)
	cum, prev := 0.0, int64(0)
	for i := range perHour {
		cum += m.hourShare(i) * m.norm
		next := min(int64(math.Round(cum)), m.Events)
		if i == hours-1 {
			next = m.Events
		}
		perHour[i], prev = next-prev, next
	}
	return perHour
}

// Pool is the number of users who have joined once done events were
// made: a fifth of Users before the first event, all of them at the end
// of the history, and more as live events continue (Uniform: Users).
func (m Model) Pool(done int64) int {
	if m.Uniform || m.Events <= 0 {
		return max(m.Users, 1)
	}
	base := float64(m.Events) / 4
	return max(1, int(float64(m.Users)*(base+float64(done))/(base+float64(m.Events))))
}

// user draws the user of the event made after done others.
func (m Model) user(p *picker, done int64) string { return p.userOf(m.Pool(done), m.Uniform) }

// Live makes the events that continue the history after End, at its
// rate, from its growing pool, deterministically for a seed.
type Live struct {
	m    Model
	p    *picker
	done int64 // events made so far, history included
}

// Live starts the live events of m.
func (m Model) Live(seed uint64, types []WeightedType) *Live {
	if types == nil {
		types = DefaultTypes
	}
	return &Live{m: m, p: newPicker(seed, m.Users, types), done: m.Events}
}

// Second is the events of the second before at: as many as the rate at
// at gives on average (a Poisson draw), spread over the second.
func (l *Live) Second(at time.Time) []ingest.Event {
	n := poisson(l.p.rng, l.m.Rate(at))
	events := make([]ingest.Event, n)
	for i := range events {
		ts := at.Add(-time.Duration(l.p.rng.Int64N(int64(time.Second/time.Millisecond))) * time.Millisecond).Truncate(time.Millisecond)
		l.done++
		events[i] = ingest.Event{UserID: l.m.user(l.p, l.done), EventType: l.p.eventType(), CreatedAt: ts}
	}
	slices.SortFunc(events, func(a, b ingest.Event) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return events
}

// poisson draws from a Poisson distribution of mean lambda (Knuth's
// method below 30, a rounded normal above).
func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda >= 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	limit, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= limit {
			return k
		}
		k++
	}
}

// picker draws users and types.
type picker struct {
	rng   *rand.Rand
	zipf  *rand.Zipf
	core  *rand.Zipf // Model's loyal users
	perm  uint64     // users are numbered through a multiplicative shuffle, so heavy users are not u0000001..
	users uint64
	names []string
	cum   []float64
}

func newPicker(seed uint64, users int, types []WeightedType) *picker {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &picker{rng: rng, users: uint64(users), perm: 2654435761}
	if users > 1 {
		p.zipf = rand.NewZipf(rng, 1.07, 8, uint64(users-1))
		p.core = rand.NewZipf(rng, 1.6, 10, uint64(users-1))
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

// userOf draws a user from the pool of the first n users: half of the
// events come from a core of early, loyal users (user 0 the busiest, a
// Zipf law), the others from recent joiners (an exponential law over how
// recently they joined, a mean of a twentieth of the pool), so that a
// range's distinct users grow with its events and span. Uniform: user().
func (p *picker) userOf(n int, uniform bool) string {
	if uniform || p.core == nil {
		return p.user()
	}
	var i uint64
	if p.rng.IntN(2) == 0 {
		i = p.core.Uint64() % uint64(n)
	} else {
		back := uint64(p.rng.ExpFloat64() * float64(n) / 20)
		i = uint64(n-1) - back%uint64(n)
	}
	return "u" + strconv.FormatUint(i, 10)
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
	m := NewModel(o.End, o.Days, o.Events, o.Users, o.Uniform)
	hours := o.Days * 24
	first := m.Start
	perHour := m.PerHour()
	// The pool before each hour: the events of the hours before it.
	before := make([]int64, hours+1)
	for i, n := range perHour {
		before[i+1] = before[i] + n
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
			return db.copyHours(gctx, p, m, first, perHour, before, lo, hi, &done)
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
func (db *DB) copyHours(ctx context.Context, p *picker, m Model, first time.Time, perHour, before []int64, lo, hi int, done *atomic.Int64) error {
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
		return []any{m.user(p, before[hour]+perHour[hour]-left), p.eventType(), ts}, nil
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
