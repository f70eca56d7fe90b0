package storage

import (
	"sort"
	"time"

	"github.com/liveanalytics/analyticsd/summary"
)

// Grain is the size of a rollup bucket. Buckets are aligned in UTC, the
// offset hours at :30 and :15 past the UTC hour.
type Grain int16

// The grains of the hierarchy, finest first, then the offset hours; the
// values are stored in the rollup tables.
const (
	Minute  Grain = iota
	Quarter       // 15 minutes: whole hours in zones offset by :30 or :45
	Hour
	Day
	Month
	// The hours of zones offset by :30 (India +05:30, Iran, Myanmar,
	// Newfoundland −03:30, central Australia): [hh:30, hh+1:30) UTC; and
	// of zones offset by :45 (Nepal +05:45, Chatham +12:45, Eucla +08:45),
	// whose local hours start at :15 past the UTC hour: [hh:15, hh+1:15).
	// Each is computed from its 4 quarters. They sit beside the hierarchy
	// (no parent): an hourly series in those zones reads one bucket per
	// hour, as it does in whole-hour zones.
	HourAt30
	HourAt15
)

// Grains lists every grain, the hierarchy first.
var Grains = []Grain{Minute, Quarter, Hour, Day, Month, HourAt30, HourAt15}

// rollOrder is the order the worker recomputes pending buckets in: every
// grain after its children.
var rollOrder = []Grain{Quarter, HourAt30, HourAt15, Hour, Day, Month}

var grainNames = [...]string{"minute", "quarter", "hour", "day", "month", "hour:30", "hour:15"}

func (g Grain) String() string {
	if g < Minute || int(g) >= len(grainNames) {
		return "grain(?)"
	}
	return grainNames[g]
}

// child is the grain a bucket of g is computed from.
func (g Grain) child() Grain {
	switch g {
	case Quarter:
		return Minute
	case Hour, HourAt30, HourAt15:
		return Quarter
	default: // Day, Month
		return g - 1
	}
}

// parents are the grains whose buckets are computed from buckets of g
// (child read the other way).
func (g Grain) parents() []Grain {
	var ps []Grain
	for _, p := range rollOrder {
		if p.child() == g {
			ps = append(ps, p)
		}
	}
	return ps
}

// offset is where the hours of an offset grain start past the UTC hour.
func (g Grain) offset() time.Duration {
	switch g {
	case HourAt30:
		return 30 * time.Minute
	case HourAt15:
		return 15 * time.Minute
	default:
		return 0
	}
}

// Trunc is the start of the bucket that holds t.
func (g Grain) Trunc(t time.Time) time.Time {
	t = t.UTC()
	switch g {
	case Minute:
		return t.Truncate(time.Minute)
	case Quarter:
		return t.Truncate(15 * time.Minute)
	case Hour:
		return t.Truncate(time.Hour)
	case HourAt30, HourAt15:
		off := g.offset()
		return t.Add(-off).Truncate(time.Hour).Add(off)
	case Day:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
}

// Next is the start of the bucket after the one starting at b.
func (g Grain) Next(b time.Time) time.Time {
	switch g {
	case Minute:
		return b.Add(time.Minute)
	case Quarter:
		return b.Add(15 * time.Minute)
	case Hour, HourAt30, HourAt15:
		return b.Add(time.Hour)
	case Day:
		return b.AddDate(0, 0, 1)
	default:
		return b.AddDate(0, 1, 0)
	}
}

// ceil is the first bucket start at or after t.
func (g Grain) ceil(t time.Time) time.Time {
	b := g.Trunc(t)
	if b.Before(t) {
		return g.Next(b)
	}
	return b
}

// bucketKey names one rollup bucket.
type bucketKey struct {
	Grain Grain
	Start int64 // unix microseconds
}

func (k bucketKey) time() time.Time { return time.UnixMicro(k.Start).UTC() }

// Interval is a half-open span of time [From, To).
type Interval = summary.Interval

// plan is how one interval is answered: whole buckets plus raw intervals
// that are read from events (edges shorter than a minute, and minutes
// whose rollup is not current).
type plan struct {
	Buckets []bucketKey
	Raw     []Interval
}

// countOnly reports whether the plan is one bucket and nothing else: its
// row's user count is the interval's, no bitmap needed.
func (p plan) countOnly() bool { return len(p.Buckets) == 1 && len(p.Raw) == 0 }

// freshness says which buckets may be read: not a dirty minute, and no
// pending recomputation of the bucket itself.
type freshness struct {
	dirty   []int64 // sorted unix micros of dirty minutes
	pending map[bucketKey]bool
	rawFrom *time.Time // raw events before it are dropped (nil: none)
}

// usable reports whether bucket [b, end) of grain g is current.
func (f *freshness) usable(g Grain, b, end time.Time) bool {
	if f.pending[bucketKey{g, b.UnixMicro()}] {
		return false
	}
	lo, hi := b.UnixMicro(), end.UnixMicro()
	i := sort.Search(len(f.dirty), func(i int) bool { return f.dirty[i] >= lo })
	return i == len(f.dirty) || f.dirty[i] >= hi
}

// decompose covers [iv.From, iv.To) with the largest current buckets, then
// finer ones, and raw intervals for whatever no bucket covers.
func decompose(iv Interval, f *freshness) plan {
	var p plan
	// An hour of a zone offset by :30 or :45 is one bucket when it is
	// current (the hierarchy would take 4 quarters).
	for _, g := range []Grain{HourAt30, HourAt15} {
		if b := iv.From.UTC(); g.Trunc(b).Equal(b) && g.Next(b).Equal(iv.To.UTC()) && f.usable(g, b, iv.To.UTC()) {
			p.Buckets = []bucketKey{{g, b.UnixMicro()}}
			return p
		}
	}
	cover(&p, iv.From.UTC(), iv.To.UTC(), Month, f)
	return p
}

func cover(p *plan, lo, hi time.Time, g Grain, f *freshness) {
	if !lo.Before(hi) {
		return
	}
	if g < Minute {
		if n := len(p.Raw); n > 0 && p.Raw[n-1].To.Equal(lo) {
			p.Raw[n-1].To = hi
		} else {
			p.Raw = append(p.Raw, Interval{From: lo, To: hi})
		}
		return
	}
	b := g.ceil(lo)
	if !b.Before(hi) {
		cover(p, lo, hi, g-1, f)
		return
	}
	cover(p, lo, b, g-1, f)
	for {
		end := g.Next(b)
		if end.After(hi) {
			break
		}
		if f.usable(g, b, end) {
			p.Buckets = append(p.Buckets, bucketKey{g, b.UnixMicro()})
		} else {
			cover(p, b, end, g-1, f)
		}
		b = end
	}
	cover(p, b, hi, g-1, f)
}
