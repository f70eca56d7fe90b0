package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

// reqInfo is what the middleware keeps in a request's context: one value,
// so one copy of the request.
type reqInfo struct {
	id    string
	route string     // the matched route template, set by tagRoute
	query url.Values // the query string as strictQuery parsed it (nil: not parsed)
}

// query is the request's query string, parsed once: strictQuery keeps what
// it parsed for the handler.
func query(r *http.Request) url.Values {
	if info, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok && info.query != nil {
		return info.query
	}
	return r.URL.Query()
}

type ctxKey struct{}

// RequestID returns the request's id, or "".
func requestID(ctx context.Context) string {
	if info, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return info.id
	}
	return ""
}

// validID accepts ids a client may reasonably send; anything else is
// replaced so that logs cannot be forged or bloated through the header.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// httpMetrics are the HTTP collectors.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	panics   prometheus.Counter

	// The children already used, by labels: a request finds its counter
	// and histogram with one map look-up instead of hashing its label
	// values into both vectors.
	mu  sync.RWMutex
	hot map[metricLabels]*routeMetrics
}

type metricLabels struct {
	route, method string
	code          int
}

type routeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts one request and its time to first byte.
func (m *httpMetrics) observe(route, method string, code int, ttfb time.Duration) {
	k := metricLabels{route, method, code}
	m.mu.RLock()
	rm := m.hot[k]
	m.mu.RUnlock()
	if rm == nil {
		rm = &routeMetrics{m.requests.WithLabelValues(route, method, strconv.Itoa(code)), m.duration.WithLabelValues(route, method)}
		m.mu.Lock()
		if m.hot == nil {
			m.hot = map[metricLabels]*routeMetrics{}
		}
		if len(m.hot) < 4096 { // route templates and methods are bounded; this only guards the map
			m.hot[k] = rm
		}
		m.mu.Unlock()
	}
	rm.requests.Inc()
	rm.duration.Observe(ttfb.Seconds())
}

// newHTTPMetrics registers the HTTP collectors on reg.
func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "analytics_http_request_duration_seconds",
			Help:    "HTTP request durations by route template and method (streams: until the first byte is flushed).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_http_panics_total",
			Help: "Handler panics recovered into a 500.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.panics)
	return m
}

// declare creates the request counter of every route at 0 for each status
// it can answer (success, the edge's client errors on /api/ routes, server
// faults). A counter born at its first increment hides that increment from
// rate(), so without this the first error on a route would never reach a
// dashboard. HEAD (the GET handlers, rarely used) and the latency
// histograms (a percentile needs many observations anyway) are left to be
// born when used: they would triple the size of /metrics.
func (m *httpMetrics) declare(r *mux.Router) {
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil // the 405 fallbacks: any method
		}
		for _, method := range methods {
			if method == http.MethodHead {
				continue
			}
			for _, code := range routeCodes(tpl, method) {
				m.requests.WithLabelValues(tpl, method, code)
			}
		}
		return nil
	})
	m.requests.WithLabelValues("unmatched", http.MethodGet, "404")
}

// routeCodes are the statuses declared for a route and method.
func routeCodes(tpl, method string) []string {
	codes := []string{"200", "500", "503"}
	if method == http.MethodPost {
		codes = []string{"202", "413", "415", "422", "500", "503"}
	}
	if strings.HasPrefix(tpl, "/api/") {
		codes = append(codes, "400", "401", "403", "429")
	}
	return codes
}

// statusWriter records the status and whether anything was written; it
// passes Flush and Unwrap through for streaming handlers.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written bool
	ttfb    time.Duration
	start   time.Time
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.status = code
		w.written = true
		w.ttfb = time.Since(w.start)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog writes one line per request to its logger: every error
// (status ≥ 400), and one in sample of the others (1: every request; 0:
// none).
type accessLog struct {
	log    *slog.Logger
	sample uint64
	n      atomic.Uint64
	out    io.Writer // the writer under log's handler: lines are formatted by hand (accessline.go)
	json   bool      // log's handler is a JSONHandler (else a TextHandler)
}

func (a *accessLog) wants(status int) bool {
	switch {
	case status >= 400 || a.sample == 1:
		return true
	case a.sample == 0:
		return false
	}
	return a.n.Add(1)%a.sample == 0
}

// instrument wraps every request: it sets the request id, recovers panics
// into a 500 JSON with the stack logged to log, counts the request by
// route template, and writes the access log line.
func instrument(log *slog.Logger, access *accessLog, m *httpMetrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-ID")
			if !validID(id) {
				id = newID()
			}
			h := w.Header()
			h["X-Request-Id"] = []string{id}
			h["X-Content-Type-Options"] = nosniff
			info := &reqInfo{id: id, route: "unmatched"}
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, info))
			sw := &statusWriter{ResponseWriter: w, start: start}
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					m.panics.Inc()
					log.Error("panic", "request_id", id, "panic", p, "stack", string(debug.Stack()))
					if !sw.written {
						writeError(sw, r, http.StatusInternalServerError, "internal", "internal server error")
					}
				}
				status := sw.status
				if !sw.written {
					status = http.StatusOK
				}
				elapsed := time.Since(start)
				ttfb := sw.ttfb
				if ttfb == 0 {
					ttfb = elapsed
				}
				m.observe(info.route, r.Method, status, ttfb)
				if !access.wants(status) {
					return
				}
				level := slog.LevelInfo
				if status >= 500 {
					level = slog.LevelError
				}
				if access.write(r.Context(), time.Now(), level, id, r.Method, info.route, r.URL.Path, status, elapsed, r.RemoteAddr) {
					return
				}
				access.log.LogAttrs(r.Context(), level, "request",
					slog.String("request_id", id),
					slog.String("method", r.Method),
					slog.String("route", info.route),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Duration("duration", elapsed),
					slog.String("remote", r.RemoteAddr))
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// tagRoute is a mux middleware (router.Use) that tells instrument which
// route template matched, so that metric labels are templates, never raw
// paths, and stay bounded. Requests no route matches stay "unmatched".
func tagRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
			if route := mux.CurrentRoute(r); route != nil {
				if t, err := route.GetPathTemplate(); err == nil {
					info.route = t
				} else if t, err := route.GetPathRegexp(); err == nil {
					info.route = t
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
