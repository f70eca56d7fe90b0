package summary

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liveanalytics/analyticsd/internal/httpx"
)

// Handler serves GET /api/analytics/summary.
type Handler struct {
	svc    *Service
	parser RangeParser
	log    *slog.Logger
}

// NewHandler builds the summary handler.
func NewHandler(svc *Service, parser RangeParser, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{svc: svc, parser: parser, log: log}
}

// Period is the resolved range as absolute UTC instants.
type Period struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Response is the summary endpoint's body: the seed's shape plus period.
type Response struct {
	Data   Summary `json:"data"`
	Cached bool    `json:"cached"`
	Stale  bool    `json:"stale,omitempty"`
	Period Period  `json:"period"`
}

// NewResponse builds the body for a range and a result.
func NewResponse(r Range, res Result) Response {
	return Response{Data: res.Summary, Cached: res.Cached, Stale: res.Stale,
		Period: Period{From: FormatInstant(r.From), To: FormatInstant(r.To)}}
}

// interval is the refresh step versions count in.
func (h *Handler) interval() time.Duration { return alignOf(h.parser) }

func alignOf(p RangeParser) time.Duration {
	if p.Align > 0 {
		return p.Align
	}
	return time.Second
}

// maxAge is the seconds until the next refresh for a live range, and the
// refresh interval's worth for a range that no longer changes (its answer
// may still gain late events within the cache TTL).
func maxAge(spec Spec, p RangeParser) int {
	now := time.Now()
	iv := alignOf(p)
	if !spec.Live(now) {
		return int(iv.Seconds())
	}
	next := TickTime(Tick(now, iv)+1, iv)
	return int(math.Ceil(next.Sub(now).Seconds()))
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

// ParseSpecRequest reads the from, to and event_type query parameters of
// req, writing the 400 itself when they are bad.
func ParseSpecRequest(w http.ResponseWriter, req *http.Request, p RangeParser) (Spec, bool) {
	q := req.URL.Query()
	r, err := p.ParseSpec(q.Get("from"), q.Get("to"))
	if err == nil {
		r.EventType, err = ParseEventType(q.Get("event_type"))
	}
	if err != nil {
		var pe *ParamError
		if errors.As(err, &pe) {
			httpx.WriteError(w, req, http.StatusBadRequest, pe.Code, pe.Message)
		} else {
			httpx.WriteError(w, req, http.StatusBadRequest, CodeInvalidParameter, "bad query parameters")
		}
		return Spec{}, false
	}
	return r, true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, ok := ParseSpecRequest(w, req, h.parser)
	if !ok {
		return
	}
	now := h.parser.AlignedNow()
	r := spec.Resolve(now)
	// The polling fallback of the live stream: the ETag is the snapshot
	// version the stream would send, so a client that has it gets a 304,
	// and max-age runs to the next refresh.
	etag := `"` + strconv.FormatInt(spec.Version(now, h.interval()), 10) + `"`
	maxAge := maxAge(spec, h.parser)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(maxAge))
	if match := req.Header.Get("If-None-Match"); match != "" && etagMatch(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	res, err := h.svc.Get(req.Context(), r)
	if err != nil {
		if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
			return // the client left; nobody to answer
		}
		h.log.ErrorContext(req.Context(), "summary failed", "request_id", httpx.RequestID(req.Context()), "range", r.Key(), "err", err)
		w.Header().Set("Retry-After", "5")
		httpx.WriteError(w, req, http.StatusServiceUnavailable, "unavailable", "analytics data is temporarily unavailable; retry shortly")
		return
	}
	if !res.ComputedAt.IsZero() {
		w.Header().Set("Last-Modified", res.ComputedAt.UTC().Format(http.TimeFormat))
	}
	httpx.WriteJSON(w, http.StatusOK, NewResponse(r, res))
}
