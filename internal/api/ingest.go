package api

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/ingest"
)

// rejectReason is why an ingest request was refused: the label of
// analytics_ingest_rejected_total.
type rejectReason string

// The reasons.
const (
	reasonInvalid      rejectReason = "invalid"
	reasonTooLarge     rejectReason = "too_large"
	reasonMediaType    rejectReason = "unsupported_media_type"
	reasonUnauthorized rejectReason = "unauthorized"
	reasonForbidden    rejectReason = "forbidden"
	reasonRateLimited  rejectReason = "rate_limited"
	reasonKeyReused    rejectReason = "idempotency_key_reused"
	reasonRetention    rejectReason = "before_raw_retention"
	reasonUnavailable  rejectReason = "unavailable"
)

// ingestMetrics count what the endpoint rejected; what it accepted is
// counted by the Writer it is given (ingest.Metrics.Counted).
type ingestMetrics struct {
	rejected *prometheus.CounterVec
}

func newIngestMetrics(reg prometheus.Registerer) *ingestMetrics {
	m := &ingestMetrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_ingest_rejected_total",
			Help: "Ingest requests rejected, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range []rejectReason{reasonInvalid, reasonTooLarge, reasonMediaType, reasonUnauthorized, reasonForbidden, reasonRateLimited, reasonKeyReused, reasonRetention, reasonUnavailable} {
		m.rejected.WithLabelValues(string(r))
	}
	reg.MustRegister(m.rejected)
	return m
}

func (m *ingestMetrics) reject(r rejectReason) { m.rejected.WithLabelValues(string(r)).Inc() }

// ingestHandler serves POST /api/v1/events: it reads the body within its
// limit and answers; package ingest decodes and validates, the Writer
// stores. Authentication and rate limits are applied in front of it.
type ingestHandler struct {
	w       ingest.Writer
	log     *slog.Logger
	metrics *ingestMetrics
	now     func() time.Time
}

// invalidBody is the 400 with the reason for each bad event.
type invalidBody struct {
	Error  errorDetail        `json:"error"`
	Errors []ingest.ItemError `json:"errors"`
}

func (h *ingestHandler) fail(w http.ResponseWriter, r *http.Request, status int, reason rejectReason, code, msg string) {
	h.metrics.reject(reason)
	writeError(w, r, status, code, msg)
}

func (h *ingestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format, err := ingest.ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		h.fail(w, r, http.StatusUnsupportedMediaType, reasonMediaType, "unsupported_media_type", err.Error())
		return
	}
	enc, err := ingest.ParseContentEncoding(r.Header.Values("Content-Encoding"))
	if err != nil {
		w.Header().Set("Accept-Encoding", "gzip")
		h.fail(w, r, http.StatusUnsupportedMediaType, reasonMediaType, "unsupported_content_encoding", err.Error())
		return
	}
	idem := r.Header.Get("Idempotency-Key")
	if !ingest.ValidIdempotencyKey(idem) {
		h.fail(w, r, http.StatusBadRequest, reasonInvalid, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
		return
	}
	limit := int64(ingest.MaxBodyBytes)
	if enc == ingest.Gzip {
		limit = ingest.MaxCompressedBytes
	}
	body, err := ingest.ReadBody(enc, http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			msg := fmt.Sprintf("the body is larger than %d MB", ingest.MaxBodyBytes>>20)
			if enc == ingest.Gzip {
				msg = fmt.Sprintf("the compressed body is larger than %d bytes", ingest.MaxCompressedBytes)
			}
			h.fail(w, r, http.StatusRequestEntityTooLarge, reasonTooLarge, "payload_too_large", msg)
		case errors.Is(err, ingest.ErrBodyTooLarge):
			h.fail(w, r, http.StatusRequestEntityTooLarge, reasonTooLarge, "payload_too_large", err.Error()+" once decompressed")
		case errors.Is(err, ingest.ErrBadGzip):
			h.fail(w, r, http.StatusBadRequest, reasonInvalid, "invalid_body", err.Error())
		default:
			h.fail(w, r, http.StatusBadRequest, reasonInvalid, "invalid_body", "the body could not be read")
		}
		return
	}
	events, bad, err := ingest.Decode(format, bytes.NewReader(body), h.now())
	var se *ingest.SyntaxError
	switch {
	case errors.Is(err, ingest.ErrTooManyEvents):
		h.fail(w, r, http.StatusRequestEntityTooLarge, reasonTooLarge, "payload_too_large", fmt.Sprintf("a batch holds at most %d events; split it", ingest.MaxEvents))
		return
	case errors.As(err, &se):
		h.fail(w, r, http.StatusBadRequest, reasonInvalid, "invalid_body", se.Msg)
		return
	case err != nil:
		h.fail(w, r, http.StatusBadRequest, reasonInvalid, "invalid_body", "the body could not be decoded")
		return
	case len(bad) > 0:
		h.metrics.reject(reasonInvalid)
		writeJSON(w, http.StatusBadRequest, invalidBody{
			Error: errorDetail{Code: "invalid_events", RequestID: requestID(r.Context()),
				Message: "some events are invalid (see errors); nothing was written"},
			Errors: bad,
		})
		return
	case len(events) == 0:
		h.fail(w, r, http.StatusBadRequest, reasonInvalid, "invalid_body", "the batch holds no events")
		return
	}
	hash := ingest.BodyHash(r.Header.Get("Content-Type"), body)
	accepted, replayed, err := h.w.WriteEvents(r.Context(), requestKeyID(r), idem, hash, events)
	switch {
	case errors.Is(err, ingest.ErrKeyReused):
		h.fail(w, r, http.StatusUnprocessableEntity, reasonKeyReused, "idempotency_key_reused", "this Idempotency-Key was used for a different batch")
		return
	case errors.Is(err, ingest.ErrBeforeRetention):
		h.fail(w, r, http.StatusUnprocessableEntity, reasonRetention, "before_raw_retention", err.Error()+"; nothing was written")
		return
	case err != nil:
		if r.Context().Err() != nil {
			return // the client left; the transaction rolled back
		}
		h.log.ErrorContext(r.Context(), "ingest failed", "request_id", requestID(r.Context()), "events", len(events), "err", err)
		w.Header().Set("Retry-After", "5")
		h.fail(w, r, http.StatusServiceUnavailable, reasonUnavailable, "unavailable", "the events could not be stored; nothing was written, retry shortly")
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": accepted})
}
