package api

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

	"github.com/liveanalytics/analyticsd/summary"
)

// seriesHandler serves GET /api/v1/analytics/timeseries, and with csv the
// export.csv endpoint.
type seriesHandler struct {
	agg     summary.Aggregator
	parser  summary.RangeParser
	timeout time.Duration // bounds one computation
	log     *slog.Logger
	// csv answers text/csv, one row per bucket and event type, instead of
	// JSON.
	csv bool
}

func (h *seriesHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, ok := parseSpec(w, req, h.parser)
	if !ok {
		return
	}
	q := query(req)
	bucket, err := summary.ParseBucket(q.Get("bucket"))
	var loc *time.Location
	if err == nil {
		loc, err = summary.ParseZone(q.Get("tz"))
	}
	if err != nil {
		badParam(w, req, err)
		return
	}
	r := spec.Resolve(h.parser.AlignedNow())
	ctx := req.Context()
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	resp, err := summary.Series(ctx, h.agg, r, bucket, loc, summary.DefaultMaxPoints)
	var pe *summary.ParamError
	switch {
	case errors.As(err, &pe):
		badParam(w, req, err)
		return
	case errors.Is(err, summary.ErrTooManyPoints):
		writeError(w, req, http.StatusBadRequest, summary.CodeRangeTooLarge,
			fmt.Sprintf("the range has more than %d %s buckets; choose a larger bucket or a shorter range", summary.DefaultMaxPoints, resp.Bucket))
		return
	case err != nil:
		if req.Context().Err() != nil {
			return // the client left
		}
		h.log.ErrorContext(ctx, "timeseries failed", "request_id", requestID(ctx), "range", r.Key(), "err", err)
		unavailable(w, req)
		return
	}
	w.Header().Set("Cache-Control", maxAge(spec, h.parser))
	if h.csv {
		writeCSV(w, resp)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// writeCSV writes one row per bucket and event type; a bucket without
// events still gets one row, with an empty type. bucket_events and
// bucket_unique_users repeat the bucket's totals on each of its rows.
func writeCSV(w http.ResponseWriter, resp summary.SeriesResponse) {
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
