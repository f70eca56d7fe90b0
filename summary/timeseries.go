package summary

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liveanalytics/analyticsd/internal/httpx"
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

// AutoBucket picks a bucket that gives a readable chart: minutes up to 2
// hours, hours up to 4 days, days beyond.
func AutoBucket(span time.Duration) Bucket {
	switch {
	case span <= 2*time.Hour:
		return BucketMinute
	case span <= 4*24*time.Hour:
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

// SeriesHandler serves GET /api/v1/analytics/timeseries.
type SeriesHandler struct {
	agg       Aggregator
	parser    RangeParser
	log       *slog.Logger
	timeout   time.Duration
	MaxPoints int
	// CSV answers text/csv, one row per bucket and event type (the
	// export.csv endpoint), instead of JSON.
	CSV bool
}

// NewSeriesHandler builds the timeseries handler; timeout bounds one
// computation.
func NewSeriesHandler(agg Aggregator, parser RangeParser, timeout time.Duration, log *slog.Logger) *SeriesHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SeriesHandler{agg: agg, parser: parser, log: log, timeout: timeout, MaxPoints: DefaultMaxPoints}
}

func (h *SeriesHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, ok := ParseSpecRequest(w, req, h.parser)
	if !ok {
		return
	}
	q := req.URL.Query()
	bucket, err := ParseBucket(q.Get("bucket"))
	var loc *time.Location
	if err == nil {
		loc, err = ParseZone(q.Get("tz"))
	}
	if err != nil {
		var pe *ParamError
		errors.As(err, &pe)
		httpx.WriteError(w, req, http.StatusBadRequest, pe.Code, pe.Message)
		return
	}
	r := spec.Resolve(h.parser.AlignedNow())
	end := r.To.Add(time.Microsecond) // the range is inclusive
	if bucket == "" {
		bucket = AutoBucket(end.Sub(r.From))
	}
	points, err := Buckets(r.From, end, bucket, loc, h.MaxPoints)
	if err != nil {
		httpx.WriteError(w, req, http.StatusBadRequest, CodeRangeTooLarge,
			fmt.Sprintf("the range has more than %d %s buckets; choose a larger bucket or a shorter range", h.MaxPoints, bucket))
		return
	}
	ivs := make([]Interval, len(points))
	for i, p := range points {
		ivs[i] = p.Interval
	}
	ctx := req.Context()
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	sums, err := h.agg.Aggregate(ctx, r.EventType, ivs)
	if err != nil {
		if req.Context().Err() != nil {
			return // the client left
		}
		h.log.ErrorContext(ctx, "timeseries failed", "request_id", httpx.RequestID(ctx), "range", r.Key(), "err", err)
		w.Header().Set("Retry-After", "5")
		httpx.WriteError(w, req, http.StatusServiceUnavailable, "unavailable", "analytics data is temporarily unavailable; retry shortly")
		return
	}
	resp := SeriesResponse{Data: make([]SeriesEntry, len(points)), Bucket: bucket, TZ: loc.String(),
		EventType: r.EventType, Period: Period{From: FormatInstant(r.From), To: FormatInstant(r.To)}}
	for i, p := range points {
		s := sums[i]
		if s.EventsByType == nil {
			s.EventsByType = TypeCounts{}
		}
		resp.Data[i] = SeriesEntry{T: p.Start.In(loc).Format(time.RFC3339), Events: s.TotalEvents, UniqueUsers: s.UniqueUsers, ByType: s.EventsByType}
	}
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(maxAge(spec, h.parser)))
	if h.CSV {
		writeCSV(w, resp)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// writeCSV writes one row per bucket and event type; a bucket without
// events still gets one row, with an empty type. bucket_events and
// bucket_unique_users repeat the bucket's totals on each of its rows.
func writeCSV(w http.ResponseWriter, resp SeriesResponse) {
	name := "analytics_" + strings.NewReplacer(":", "", "-", "").Replace(resp.Period.From[:16]) + "_" + string(resp.Bucket) + ".csv"
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"bucket_start", "event_type", "events", "bucket_events", "bucket_unique_users"})
	for _, p := range resp.Data {
		total, users := strconv.FormatInt(p.Events, 10), strconv.FormatInt(p.UniqueUsers, 10)
		if len(p.ByType) == 0 {
			_ = cw.Write([]string{p.T, "", "0", total, users})
			continue
		}
		for _, tc := range p.ByType {
			_ = cw.Write([]string{p.T, csvSafe(tc.Type), strconv.FormatInt(tc.Count, 10), total, users})
		}
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading an event type as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
