package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/ratelimit"
	"github.com/liveanalytics/analyticsd/summary"
)

// guard authenticates API requests and applies the rate limits: the
// address limit first, then the failed-authentication limit (on every
// endpoint that takes a key, streams included), then the key, then the
// key's limit.
type guard struct {
	keys     *auth.Keys
	readAuth auth.ReadAuth
	perAddr  *ratelimit.Limiter
	perKey   *ratelimit.Limiter
	// authFailures is charged for each wrong key per address; while it is
	// empty, any request with a key from that address is a 429 before the
	// key is looked at, so that a right guess cannot be told from a wrong
	// one.
	authFailures *ratelimit.Limiter
	proxies      ratelimit.Proxies
	ingest       *ingestMetrics
	rateLimited  *prometheus.CounterVec
	failedAuth   prometheus.Counter
}

func newGuard(keys *auth.Keys, o Options, im *ingestMetrics, reg prometheus.Registerer) *guard {
	if keys == nil {
		keys = &auth.Keys{}
	}
	g := &guard{
		keys:     keys,
		readAuth: o.ReadAuth,
		perAddr:  ratelimit.New(float64(o.RateLimitAddr), 2*o.RateLimitAddr),
		perKey:   ratelimit.New(float64(o.RateLimitKey), 2*o.RateLimitKey),
		// RATE_LIMIT_AUTH_FAILURES a minute, in bursts of as many.
		authFailures: ratelimit.New(float64(o.RateLimitAuthFailures)/60, o.RateLimitAuthFailures),
		proxies:      o.TrustedProxies,
		ingest:       im,
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_rate_limited_total",
			Help: "API requests refused with 429, by the limit that refused them: addr, key, or auth (failed authentications from the address).",
		}, []string{"scope"}),
		failedAuth: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_auth_failures_total",
			Help: "Requests that presented an API key that is not configured (any endpoint).",
		}),
	}
	for _, scope := range []string{"addr", "key", "auth"} {
		g.rateLimited.WithLabelValues(scope)
	}
	reg.MustRegister(g.rateLimited, g.failedAuth)
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

// access is what an endpoint asks of a request.
type access struct {
	// scope is what the endpoint needs; reads need it only with
	// READ_AUTH=required, ingest always.
	scope auth.Scope
	// tokenInQuery accepts ?access_token= (GET endpoints: EventSource
	// cannot set headers, and the request log never records query
	// strings).
	tokenInQuery bool
	// rateLimited applies the request rate limits (streams have
	// connection limits instead).
	rateLimited bool
}

// The endpoints' access rules.
var (
	readAccess   = access{scope: auth.ScopeRead, tokenInQuery: true, rateLimited: true}
	streamAccess = access{scope: auth.ScopeRead, tokenInQuery: true}
	ingestAccess = access{scope: auth.ScopeIngest, rateLimited: true}
)

// protect wraps an API handler in authentication and rate limits.
func (g *guard) protect(h http.Handler, a access) http.Handler {
	scope := a.scope
	required := scope == auth.ScopeIngest || g.readAuth == auth.ReadRequired
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reject := func(reason rejectReason) {
			if scope == auth.ScopeIngest {
				g.ingest.reject(reason)
			}
		}
		addr := g.proxies.ClientAddr(r)
		if a.rateLimited {
			if ok, wait := g.perAddr.Allow(addr); !ok {
				g.tooMany(w, r, "addr", wait)
				reject(reasonRateLimited)
				return
			}
		}
		var q url.Values
		if a.tokenInQuery {
			q = query(r)
		}
		token, present := auth.Token(r, q)
		var key *auth.Key
		if present {
			if blocked, wait := g.authFailures.Blocked(addr); blocked {
				g.tooMany(w, r, "auth", wait)
				reject(reasonRateLimited)
				return
			}
			k, ok := g.keys.Lookup(token)
			if !ok {
				g.authFailures.Charge(addr)
				g.failedAuth.Inc()
				reject(reasonUnauthorized)
				unauthorized(w, r, "the API key is not valid")
				return
			}
			key = k
		}
		if required && key == nil {
			reject(reasonUnauthorized)
			if g.keys.Len() == 0 {
				unauthorized(w, r, fmt.Sprintf("this endpoint needs an API key with the %s scope, and none is configured (API_KEYS or API_KEYS_FILE; `analyticsd keygen` makes one)", scope))
				return
			}
			unauthorized(w, r, fmt.Sprintf("this endpoint needs an API key with the %s scope: send Authorization: Bearer <key>", scope))
			return
		}
		if key != nil && required && !key.Has(scope) {
			reject(reasonForbidden)
			writeError(w, r, http.StatusForbidden, "forbidden", fmt.Sprintf("this API key lacks the %s scope", scope))
			return
		}
		if key != nil && a.rateLimited {
			if ok, wait := g.perKey.Allow(key.ID); !ok {
				g.tooMany(w, r, "key", wait)
				reject(reasonRateLimited)
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
	writeError(w, r, http.StatusUnauthorized, "unauthorized", msg)
}

func (g *guard) tooMany(w http.ResponseWriter, r *http.Request, scope string, wait time.Duration) {
	g.rateLimited.WithLabelValues(scope).Inc()
	w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
	msg := "too many requests from this address; retry after the time in Retry-After"
	switch scope {
	case "key":
		msg = "too many requests with this API key; retry after the time in Retry-After"
	case "auth":
		msg = "too many failed authentications from this address; retry after the time in Retry-After"
	}
	writeError(w, r, http.StatusTooManyRequests, "rate_limited", msg)
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
				writeError(w, r, http.StatusForbidden, "cors_origin_not_allowed", "origin "+origin+" may not call this API (CORS_ORIGINS)")
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Encoding, Content-Type, Idempotency-Key, If-None-Match, Last-Event-ID, X-Request-ID")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// strictQuery refuses a query string that is malformed or names a
// parameter more than once: url.Values.Get would silently take the first
// of two "from"s, and a client (or a proxy adding its own) that sends two
// should hear that one was ignored rather than get an answer for a range
// it may not have meant.
func strictQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, summary.CodeInvalidParameter, "the query string is malformed (a bad %-escape or a ';'); send name=value pairs separated by '&'")
			return
		}
		var names []string
		for name, vs := range q {
			if len(vs) > 1 {
				names = append(names, name)
			}
		}
		if len(names) > 0 {
			sort.Strings(names)
			name := names[0]
			if len(name) > 64 {
				name = name[:64] + "…"
			}
			writeError(w, r, http.StatusBadRequest, summary.CodeInvalidParameter,
				fmt.Sprintf("query parameter %q is given %d times; give each parameter once", name, len(q[names[0]])))
			return
		}
		if info, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
			info.query = q
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
			writeError(w, r, http.StatusRequestEntityTooLarge, "payload_too_large", "this endpoint takes no request body")
			return
		}
		if r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxReadBody)
		}
		next.ServeHTTP(w, r)
	})
}
