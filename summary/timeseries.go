package summary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bucket is the step of a time series.
type Bucket string

// The buckets a time series may use.
const (
	BucketMinute Bucket = "minute"
	BucketHour   Bucket = "hour"
	BucketDay    Bucket = "day"
)

// DefaultMaxPoints caps a time series: a day of minutes, or 60 days of hours.
const DefaultMaxPoints = 1440

// ParseBucket reads the bucket parameter; "" means choose automatically.
func ParseBucket(s string) (Bucket, error) {
	switch b := Bucket(s); b {
	case "", BucketMinute, BucketHour, BucketDay:
		return b, nil
	}
	return "", invalid("bucket", "must be minute, hour or day")
}

// ParseZone reads the tz parameter: an IANA time zone name such as
// Europe/Berlin; "" means UTC.
func ParseZone(s string) (*time.Location, error) {
	if s == "" || s == "UTC" {
		return time.UTC, nil
	}
	// "Local" would be the server's zone, which a client cannot know.
	if len(s) > maxParamLen || s == "Local" || strings.ContainsAny(s, `\`) {
		return nil, invalid("tz", "is not an IANA time zone name such as Europe/Berlin")
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, invalid("tz", "is not an IANA time zone name such as Europe/Berlin")
	}
	return loc, nil
}

// The cut-offs of AutoBucket.
const (
	AutoMinuteUpTo = 2 * time.Hour
	AutoHourUpTo   = 4 * 24 * time.Hour
)

// AutoBucket picks a bucket that gives a readable chart: minutes up to 2
// hours, hours up to 4 days, days beyond.
func AutoBucket(span time.Duration) Bucket {
	switch {
	case span <= AutoMinuteUpTo:
		return BucketMinute
	case span <= AutoHourUpTo:
		return BucketHour
	default:
		return BucketDay
	}
}

// bucketStart is the start of the bucket holding t, on loc's wall clock.
func bucketStart(t time.Time, b Bucket, loc *time.Location) time.Time {
	lt := t.In(loc)
	switch b {
	case BucketMinute:
		return t.Add(-time.Duration(lt.Second())*time.Second - time.Duration(lt.Nanosecond()))
	case BucketHour:
		return t.Add(-time.Duration(lt.Minute())*time.Minute - time.Duration(lt.Second())*time.Second - time.Duration(lt.Nanosecond()))
	default:
		y, m, d := lt.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
}

// bucketNext is the start of the bucket after the one starting at s.
func bucketNext(s time.Time, b Bucket, loc *time.Location) time.Time {
	var step time.Duration
	switch b {
	case BucketMinute:
		step = time.Minute
	case BucketHour:
		step = time.Hour
	default:
		y, m, d := s.In(loc).Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	}
	// Re-align after the step: an offset change of 30 minutes (Lord Howe)
	// makes a shorter bucket rather than misaligned ones after it.
	if n := bucketStart(s.Add(step), b, loc); n.After(s) {
		return n
	}
	return s.Add(step)
}

// SeriesPoint is one bucket: its aligned start on loc's wall clock and the
// part of [from, to) it covers.
type SeriesPoint struct {
	Start time.Time
	Interval
}

// ErrTooManyPoints is returned by Buckets beyond maxPoints.
var ErrTooManyPoints = errors.New("summary: too many points")

// Buckets splits the half-open [from, to) into buckets aligned on loc's
// wall clock, the first and last clipped to the range.
func Buckets(from, to time.Time, b Bucket, loc *time.Location, maxPoints int) ([]SeriesPoint, error) {
	var out []SeriesPoint
	if !from.Before(to) {
		return out, nil
	}
	for s := bucketStart(from, b, loc); s.Before(to); {
		if len(out) >= maxPoints {
			return nil, ErrTooManyPoints
		}
		next := bucketNext(s, b, loc)
		iv := Interval{From: s, To: next}
		if iv.From.Before(from) {
			iv.From = from
		}
		if iv.To.After(to) {
			iv.To = to
		}
		out = append(out, SeriesPoint{Start: s, Interval: iv})
		s = next
	}
	return out, nil
}

// labelsInCalendar refuses a series whose labels fall outside the years
// 0001 to 9999 on loc's wall clock, which RFC 3339 cannot write: a range
// ending 9999-12-31T23:59:59Z is already 10000-01-01 in a zone east of
// UTC, and one starting 0001-01-01T00:00:00Z is still year 0 west of it.
// The range itself is valid (in UTC), so the error names the zone.
func labelsInCalendar(points []SeriesPoint, loc *time.Location) error {
	if len(points) == 0 {
		return nil
	}
	first, last := points[0].Start.In(loc), points[len(points)-1].Start.In(loc)
	if first.Year() >= 1 && last.Year() <= 9999 {
		return nil
	}
	at := first
	if last.Year() > 9999 {
		at = last
	}
	return &ParamError{Param: "tz", Code: CodeInvalidRange, Message: fmt.Sprintf(
		"on the wall clock of %s a bucket of this range starts in the year %d, outside the years 0001 to 9999 that its label can be written in; move the range away from the calendar's end or use a zone nearer UTC",
		loc, at.Year())}
}

// SeriesEntry is one point of the timeseries response.
type SeriesEntry struct {
	T           string     `json:"t"`
	Events      int64      `json:"events"`
	UniqueUsers int64      `json:"uniqueUsers"`
	ByType      TypeCounts `json:"byType"`
}

// SeriesResponse is the timeseries endpoint's body.
type SeriesResponse struct {
	Data      []SeriesEntry `json:"data"`
	Bucket    Bucket        `json:"bucket"`
	TZ        string        `json:"tz"`
	EventType string        `json:"eventType,omitempty"`
	Period    Period        `json:"period"`
}

// Series answers the range r in buckets of b (chosen by AutoBucket when
// empty) on loc's wall clock, every point from one snapshot of agg. It
// returns ErrTooManyPoints beyond maxPoints (DefaultMaxPoints when zero).
func Series(ctx context.Context, agg Aggregator, r Range, b Bucket, loc *time.Location, maxPoints int) (SeriesResponse, error) {
	if maxPoints <= 0 {
		maxPoints = DefaultMaxPoints
	}
	end := r.To.Add(time.Microsecond) // the range is inclusive
	if b == "" {
		b = AutoBucket(end.Sub(r.From))
	}
	points, err := Buckets(r.From, end, b, loc, maxPoints)
	if err != nil {
		return SeriesResponse{Bucket: b}, err
	}
	if err := labelsInCalendar(points, loc); err != nil {
		return SeriesResponse{Bucket: b}, err
	}
	ivs := make([]Interval, len(points))
	for i, p := range points {
		ivs[i] = p.Interval
	}
	sums, err := agg.Aggregate(ctx, r.EventType, ivs)
	if err != nil {
		return SeriesResponse{Bucket: b}, err
	}
	resp := SeriesResponse{Data: make([]SeriesEntry, len(points)), Bucket: b, TZ: loc.String(),
		EventType: r.EventType, Period: Period{From: FormatInstant(r.From), To: FormatInstant(r.To)}}
	if n := len(sums); n > 0 && (sums[0].Effective != nil || sums[n-1].Effective != nil) {
		// An edge bucket was answered for a range moved to the minute.
		resp.Period.Adjusted = true
		if e := sums[0].Effective; e != nil {
			resp.Period.From = FormatInstant(e.From)
		}
		if e := sums[n-1].Effective; e != nil {
			resp.Period.To = FormatInstant(e.To.Add(-time.Microsecond))
		}
	}
	for i, p := range points {
		s := sums[i]
		if s.EventsByType == nil {
			s.EventsByType = TypeCounts{}
		}
		resp.Data[i] = SeriesEntry{T: p.Start.In(loc).Format(time.RFC3339), Events: s.TotalEvents, UniqueUsers: s.UniqueUsers, ByType: s.EventsByType}
	}
	return resp, nil
}
