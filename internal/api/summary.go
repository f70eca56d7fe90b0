package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// summaryHandler serves GET /api/analytics/summary.
type summaryHandler struct {
	svc    Summaries
	parser summary.RangeParser
	log    *slog.Logger
	broker *stream.Broker // nil: no live snapshots to fall back on
}

// parseSpec reads the from, to and event_type query parameters, writing
// the 400 itself when they are bad.
func parseSpec(w http.ResponseWriter, req *http.Request, p summary.RangeParser) (summary.Spec, bool) {
	q := query(req)
	r, err := p.ParseSpec(q.Get("from"), q.Get("to"))
	if err == nil {
		r.EventType, err = summary.ParseEventType(q.Get("event_type"))
	}
	if err != nil {
		badParam(w, req, err)
		return summary.Spec{}, false
	}
	return r, true
}

// badParam writes the 400 for a summary.ParamError.
func badParam(w http.ResponseWriter, req *http.Request, err error) {
	var pe *summary.ParamError
	if errors.As(err, &pe) {
		writeError(w, req, http.StatusBadRequest, pe.Code, pe.Message)
		return
	}
	writeError(w, req, http.StatusBadRequest, summary.CodeInvalidParameter, "bad query parameters")
}

// maxAge is the Cache-Control max-age of an answer for spec.
func maxAge(spec summary.Spec, p summary.RangeParser) string {
	return "max-age=" + strconv.Itoa(summary.SecondsToRefresh(spec, time.Now(), p.Interval()))
}

func etagMatch(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == etag || part == "*" {
			return true
		}
	}
	return false
}

// unavailable is the 503 of a computation that failed; the client may
// retry.
func unavailable(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Retry-After", "5")
	writeError(w, req, http.StatusServiceUnavailable, "unavailable", "analytics data is temporarily unavailable; retry shortly")
}

// staleHeaders make a stale answer one that no cache keeps and no
// If-None-Match confirms: the ETag names the current version, which a
// stale answer is not.
func staleHeaders(w http.ResponseWriter) {
	w.Header().Del("ETag")
	w.Header().Set("Cache-Control", "no-cache")
}

// last is the live stream's last snapshot of a live spec, marked stale,
// or nil.
func (h *summaryHandler) last(ctx context.Context, spec summary.Spec) []byte {
	if h.broker == nil || !spec.Relative() {
		return nil
	}
	return h.broker.LastSummary(ctx, spec)
}

func (h *summaryHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, ok := parseSpec(w, req, h.parser)
	if !ok {
		return
	}
	now := h.parser.AlignedNow()
	r := spec.Resolve(now)
	// The polling fallback of the live stream: the ETag is the snapshot
	// version the stream would send, so a client that has it gets a 304,
	// and max-age runs to the next refresh.
	etag := `"` + strconv.FormatInt(spec.Version(now, h.parser.Interval()), 10) + `"`
	hdr := w.Header()
	hdr["Etag"] = []string{etag} // canonical keys, set directly: this is the hot path of every cached answer
	hdr["Cache-Control"] = []string{maxAge(spec, h.parser)}
	if match := req.Header.Get("If-None-Match"); match != "" && etagMatch(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	res, err := h.svc.Get(req.Context(), r)
	if err != nil {
		if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
			return // the client left; nobody to answer
		}
		h.log.ErrorContext(req.Context(), "summary failed", "request_id", requestID(req.Context()), "range", r.Key(), "err", err)
		// A live range resolves to a new key every interval, which no
		// cache holds yet: its last snapshot, marked stale, is the answer.
		if body := h.last(req.Context(), spec); body != nil {
			staleHeaders(w)
			writeBody(w, http.StatusOK, append(body, '\n'))
			return
		}
		unavailable(w, req)
		return
	}
	if res.Stale {
		staleHeaders(w)
	}
	if !res.ComputedAt.IsZero() {
		hdr["Last-Modified"] = []string{res.LastModified()}
	}
	writeBody(w, http.StatusOK, res.Body(r))
}
