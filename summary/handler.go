package summary

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

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

// ParseRequest resolves the from/to query parameters of req, writing the
// 400 itself when they are bad.
func ParseRequest(w http.ResponseWriter, req *http.Request, p RangeParser) (Range, bool) {
	q := req.URL.Query()
	r, err := p.Parse(q.Get("from"), q.Get("to"))
	if err != nil {
		var pe *ParamError
		if errors.As(err, &pe) {
			httpx.WriteError(w, req, http.StatusBadRequest, pe.Code, pe.Message)
		} else {
			httpx.WriteError(w, req, http.StatusBadRequest, CodeInvalidParameter, "bad query parameters")
		}
		return Range{}, false
	}
	return r, true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r, ok := ParseRequest(w, req, h.parser)
	if !ok {
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
	w.Header().Set("Cache-Control", "no-cache")
	if !res.ComputedAt.IsZero() {
		w.Header().Set("Last-Modified", res.ComputedAt.UTC().Format(http.TimeFormat))
	}
	httpx.WriteJSON(w, http.StatusOK, NewResponse(r, res))
}
