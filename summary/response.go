package summary

import (
	"context"
	"math"
	"time"
)

// Period is the resolved range as absolute UTC instants.
type Period struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Adjusted says that From and To are the effective range, not the one
	// asked: an edge inside dropped raw events, moved to the minute.
	Adjusted bool `json:"adjusted,omitempty"`
}

// period is r's period, or the effective range of a result that has one.
func period(r Range, eff *Interval) Period {
	if eff == nil {
		return Period{From: FormatInstant(r.From), To: FormatInstant(r.To)}
	}
	return Period{From: FormatInstant(eff.From), To: FormatInstant(eff.To.Add(-time.Microsecond)), Adjusted: true}
}

// Response is the body of a summary answer: the seed's shape plus period.
// The summary endpoint writes it, and a live stream's snapshot carries it.
type Response struct {
	Data   Summary `json:"data"`
	Cached bool    `json:"cached"`
	Stale  bool    `json:"stale,omitempty"`
	Period Period  `json:"period"`
	// ComputedAt is when the numbers were computed (RFC 3339 UTC with
	// milliseconds): a screen showing a stale answer can say how old it is.
	ComputedAt string `json:"computedAt,omitempty"`
}

// NewResponse builds the body for a range and a result.
func NewResponse(r Range, res Result) Response {
	return Response{Data: res.Summary, Cached: res.Cached, Stale: res.Stale,
		Period: period(r, res.Summary.Effective), ComputedAt: FormatComputedAt(res.ComputedAt)}
}

// FormatComputedAt renders a computation time as RFC 3339 UTC with
// milliseconds, or "" when unknown.
func FormatComputedAt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

// Entry is what a Cache holds for one range.
type Entry struct {
	Summary    Summary   `json:"summary"`
	ComputedAt time.Time `json:"computedAt"`
	Effective  *Interval `json:"effective,omitempty"` // Summary.Effective
}

// Cache stores computed summaries by canonical range key. Fresh entries
// expire after the cache TTL; a stale copy lives longer so that a
// PostgreSQL outage can still be answered.
type Cache interface {
	Get(ctx context.Context, key string) (Entry, bool, error)
	GetStale(ctx context.Context, key string) (Entry, bool, error)
	Set(ctx context.Context, key string, e Entry) error
}

// SecondsToRefresh is how long an answer for spec stays current at now: the
// seconds until the next refresh for a live range, and one interval's worth
// for a range that no longer changes (its answer may still gain late events
// within the cache TTL). HTTP answers send it as max-age.
func SecondsToRefresh(spec Spec, now time.Time, interval time.Duration) int {
	if !spec.Live(now) {
		return int(interval.Seconds())
	}
	next := TickTime(Tick(now, interval)+1, interval)
	return int(math.Ceil(next.Sub(now).Seconds()))
}
