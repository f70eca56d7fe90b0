package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/httpx"
)

// Writer stores a validated batch, once per idempotency key.
type Writer interface {
	WriteEvents(ctx context.Context, keyID, idemKey string, bodyHash []byte, events []Event) (accepted int, replayed bool, err error)
}

// ErrKeyReused is returned by a Writer when an idempotency key comes back
// with a different batch.
var ErrKeyReused = errors.New("ingest: idempotency key reused with a different batch")

// Metrics count what the endpoint accepted and rejected.
type Metrics struct {
	events   prometheus.Counter
	rejected *prometheus.CounterVec
}

// Rejection reasons, the label values of analytics_ingest_rejected_total.
const (
	ReasonInvalid      = "invalid"
	ReasonTooLarge     = "too_large"
	ReasonMediaType    = "unsupported_media_type"
	ReasonUnauthorized = "unauthorized"
	ReasonForbidden    = "forbidden"
	ReasonRateLimited  = "rate_limited"
	ReasonKeyReused    = "idempotency_key_reused"
	ReasonUnavailable  = "unavailable"
)

// NewMetrics registers the ingest collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_ingest_events_total",
			Help: "Events accepted by POST /api/v1/events (idempotent replays not counted again).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_ingest_rejected_total",
			Help: "Ingest requests rejected, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []string{ReasonInvalid, ReasonTooLarge, ReasonMediaType, ReasonUnauthorized, ReasonForbidden, ReasonRateLimited, ReasonKeyReused, ReasonUnavailable} {
		m.rejected.WithLabelValues(r)
	}
	reg.MustRegister(m.events, m.rejected)
	return m
}

// Reject counts one rejected request.
func (m *Metrics) Reject(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// Handler serves POST /api/v1/events. Authentication and rate limits are
// applied in front of it; KeyID names the caller's API key.
type Handler struct {
	w       Writer
	log     *slog.Logger
	metrics *Metrics
	keyID   func(*http.Request) string
	now     func() time.Time
}

// NewHandler builds the endpoint.
func NewHandler(w Writer, keyID func(*http.Request) string, m *Metrics, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	return &Handler{w: w, log: log, metrics: m, keyID: keyID, now: time.Now}
}

// invalidBody is the 400 with the reason for each bad event.
type invalidBody struct {
	Error  httpx.ErrorDetail `json:"error"`
	Errors []ItemError       `json:"errors"`
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, reason, code, msg string) {
	h.metrics.Reject(reason)
	httpx.WriteError(w, r, status, code, msg)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format, err := ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		h.fail(w, r, http.StatusUnsupportedMediaType, ReasonMediaType, "unsupported_media_type", err.Error())
		return
	}
	idem := r.Header.Get("Idempotency-Key")
	if !validIdemKey(idem) {
		h.fail(w, r, http.StatusBadRequest, ReasonInvalid, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, http.StatusRequestEntityTooLarge, ReasonTooLarge, "payload_too_large", fmt.Sprintf("the body is larger than %d MB", MaxBodyBytes>>20))
			return
		}
		h.fail(w, r, http.StatusBadRequest, ReasonInvalid, "invalid_body", "the body could not be read")
		return
	}
	events, bad, err := Decode(format, bytes.NewReader(body), h.now())
	var se *SyntaxError
	switch {
	case errors.Is(err, ErrTooManyEvents):
		h.fail(w, r, http.StatusRequestEntityTooLarge, ReasonTooLarge, "payload_too_large", fmt.Sprintf("a batch holds at most %d events; split it", MaxEvents))
		return
	case errors.As(err, &se):
		h.fail(w, r, http.StatusBadRequest, ReasonInvalid, "invalid_body", se.Msg)
		return
	case err != nil:
		h.fail(w, r, http.StatusBadRequest, ReasonInvalid, "invalid_body", "the body could not be decoded")
		return
	case len(bad) > 0:
		h.metrics.Reject(ReasonInvalid)
		httpx.WriteJSON(w, http.StatusBadRequest, invalidBody{
			Error: httpx.ErrorDetail{Code: "invalid_events", RequestID: httpx.RequestID(r.Context()),
				Message: "some events are invalid (see errors); nothing was written"},
			Errors: bad,
		})
		return
	case len(events) == 0:
		h.fail(w, r, http.StatusBadRequest, ReasonInvalid, "invalid_body", "the batch holds no events")
		return
	}
	sum := sha256.Sum256(append([]byte(r.Header.Get("Content-Type")+"\n"), body...))
	accepted, replayed, err := h.w.WriteEvents(r.Context(), h.keyID(r), idem, sum[:], events)
	switch {
	case errors.Is(err, ErrKeyReused):
		h.fail(w, r, http.StatusUnprocessableEntity, ReasonKeyReused, "idempotency_key_reused", "this Idempotency-Key was used for a different batch")
		return
	case err != nil:
		if r.Context().Err() != nil {
			return // the client left; the transaction rolled back
		}
		h.log.ErrorContext(r.Context(), "ingest failed", "request_id", httpx.RequestID(r.Context()), "events", len(events), "err", err)
		w.Header().Set("Retry-After", "5")
		h.fail(w, r, http.StatusServiceUnavailable, ReasonUnavailable, "unavailable", "the events could not be stored; nothing was written, retry shortly")
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		h.metrics.events.Add(float64(accepted))
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]int{"accepted": accepted})
}

func validIdemKey(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
