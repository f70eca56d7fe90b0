package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/httpx"
	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/internal/ratelimit"
)

// loadKeys reads API_KEYS and API_KEYS_FILE.
func loadKeys(cfg Config) (*auth.Keys, error) {
	text := cfg.APIKeys
	if cfg.APIKeysFile != "" {
		b, err := os.ReadFile(cfg.APIKeysFile)
		if err != nil {
			return nil, fmt.Errorf("%w: API_KEYS_FILE: %v", errUsage, err)
		}
		text += "\n" + string(b)
	}
	keys, err := auth.ParseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("%w: API keys: %v", errUsage, err)
	}
	return keys, nil
}

// guard authenticates API requests and applies the rate limits, in that
// order: the address limit first, so that guessing keys is throttled too.
type guard struct {
	keys        *auth.Keys
	readAuth    bool
	perAddr     *ratelimit.Limiter
	perKey      *ratelimit.Limiter
	proxies     ratelimit.Proxies
	ingest      *ingest.Metrics
	rateLimited *prometheus.CounterVec
}

func newGuard(cfg Config, keys *auth.Keys, im *ingest.Metrics, reg prometheus.Registerer) *guard {
	proxies, _ := ratelimit.ParseProxies(cfg.TrustedProxies) // validated with the config
	g := &guard{
		keys:     keys,
		readAuth: cfg.ReadAuth == "required",
		perAddr:  ratelimit.New(float64(cfg.RateLimitAddr), 2*cfg.RateLimitAddr),
		perKey:   ratelimit.New(float64(cfg.RateLimitKey), 2*cfg.RateLimitKey),
		proxies:  proxies,
		ingest:   im,
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_rate_limited_total",
			Help: "API requests refused with 429, by the limit that refused them (addr or key).",
		}, []string{"scope"}),
	}
	g.rateLimited.WithLabelValues("addr")
	g.rateLimited.WithLabelValues("key")
	reg.MustRegister(g.rateLimited)
	return g
}

type keyCtx struct{}

// requestKey is the API key a request authenticated with, or nil.
func requestKey(r *http.Request) *auth.Key {
	k, _ := r.Context().Value(keyCtx{}).(*auth.Key)
	return k
}

func requestKeyID(r *http.Request) string {
	if k := requestKey(r); k != nil {
		return k.ID
	}
	return ""
}

// protect wraps an API handler. scope is what the handler needs; reads
// need it only with READ_AUTH=required, ingest always. limit applies the
// request rate limits (streams have connection limits instead).
// allowQuery accepts ?access_token= (GET endpoints: EventSource cannot set
// headers, and the request log never records query strings).
func (g *guard) protect(h http.Handler, scope auth.Scope, allowQuery, limit bool) http.Handler {
	required := scope == auth.ScopeIngest || g.readAuth
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reject := func(reason string) {
			if scope == auth.ScopeIngest {
				g.ingest.Reject(reason)
			}
		}
		if limit {
			if ok, wait := g.perAddr.Allow(g.proxies.ClientAddr(r)); !ok {
				g.tooMany(w, r, "addr", wait)
				reject(ingest.ReasonRateLimited)
				return
			}
		}
		token, present := auth.Token(r, allowQuery)
		var key *auth.Key
		if present {
			k, ok := g.keys.Lookup(token)
			if !ok {
				reject(ingest.ReasonUnauthorized)
				unauthorized(w, r, "the API key is not valid")
				return
			}
			key = k
		}
		if required && key == nil {
			reject(ingest.ReasonUnauthorized)
			if g.keys.Len() == 0 {
				unauthorized(w, r, fmt.Sprintf("this endpoint needs an API key with the %s scope, and none is configured (API_KEYS or API_KEYS_FILE; `analyticsd keygen` makes one)", scope))
				return
			}
			unauthorized(w, r, fmt.Sprintf("this endpoint needs an API key with the %s scope: send Authorization: Bearer <key>", scope))
			return
		}
		if key != nil && required && !key.Has(scope) {
			reject(ingest.ReasonForbidden)
			httpx.WriteError(w, r, http.StatusForbidden, "forbidden", fmt.Sprintf("this API key lacks the %s scope", scope))
			return
		}
		if key != nil && limit {
			if ok, wait := g.perKey.Allow(key.ID); !ok {
				g.tooMany(w, r, "key", wait)
				reject(ingest.ReasonRateLimited)
				return
			}
		}
		if key != nil {
			r = r.WithContext(context.WithValue(r.Context(), keyCtx{}, key))
		}
		h.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="analyticsd"`)
	httpx.WriteError(w, r, http.StatusUnauthorized, "unauthorized", msg)
}

func (g *guard) tooMany(w http.ResponseWriter, r *http.Request, scope string, wait time.Duration) {
	g.rateLimited.WithLabelValues(scope).Inc()
	w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
	what := "this address"
	if scope == "key" {
		what = "this API key"
	}
	httpx.WriteError(w, r, http.StatusTooManyRequests, "rate_limited", "too many requests from "+what+"; retry after the time in Retry-After")
}

// cors answers browsers on other origins for the API, for the origins in
// CORS_ORIGINS only; preflights from other origins get a 403.
func cors(origins string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	any := false
	for _, o := range strings.Split(origins, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		switch o {
		case "":
		case "*":
			any = true
		default:
			allowed[strings.ToLower(o)] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		ok := any || allowed[strings.ToLower(origin)]
		w.Header().Add("Vary", "Origin")
		if ok {
			if any {
				w.Header().Set("Access-Control-Allow-Origin", "*")
			} else {
				w.Header().Set("Access-Control-Allow-Origin", origin)
			}
			w.Header().Set("Access-Control-Expose-Headers", "ETag, Retry-After, X-Request-ID, Idempotent-Replayed")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !ok {
				httpx.WriteError(w, r, http.StatusForbidden, "cors_origin_not_allowed", "origin "+origin+" may not call this API (CORS_ORIGINS)")
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, If-None-Match, Last-Event-ID, X-Request-ID")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maxReadBody bounds request bodies of GET endpoints (none reads one;
// ingest sets its own, larger limit).
const maxReadBody = 64 << 10

// noBody refuses a large body up front and caps any other.
func noBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxReadBody {
			httpx.WriteError(w, r, http.StatusRequestEntityTooLarge, "payload_too_large", "this endpoint takes no request body")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxReadBody)
		next.ServeHTTP(w, r)
	})
}
