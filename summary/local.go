package summary

import (
	"encoding/json"
	"sync"
	"time"
)

// localTier is the in-process tier in front of the Cache: a hot range is
// answered from memory, and its response body is encoded once and shared.
//
// Freshness: an entry lives until the next refresh boundary (when a live
// range may change, and what the answer's max-age already tells clients),
// never longer than the Cache keeps it, and goes at once when a newer
// snapshot of its range reaches this instance (Invalidate). Across
// instances an answer is then never older than one refresh interval plus
// the time a snapshot takes to arrive.
type localTier struct {
	interval time.Duration
	ttl      time.Duration // the Cache's TTL
	max      int

	mu sync.RWMutex
	m  map[string]*localEntry
}

type localEntry struct {
	res     Result // Cached: true
	expires int64  // unix nanos
}

// encodedBody is a result's response body, encoded on first use, and its
// Last-Modified header value.
type encodedBody struct {
	once sync.Once
	b    []byte

	modOnce sync.Once
	mod     string
}

func newLocalTier(interval, ttl time.Duration, max int) *localTier {
	return &localTier{interval: interval, ttl: ttl, max: max, m: map[string]*localEntry{}}
}

func (t *localTier) get(key string, now time.Time) (Result, bool) {
	t.mu.RLock()
	e := t.m[key]
	t.mu.RUnlock()
	if e == nil || now.UnixNano() >= e.expires {
		return Result{}, false
	}
	return e.res, true
}

// put keeps res (a cache hit or a fresh computation) as a cached answer
// until the next refresh boundary after now, or for the Cache's TTL after
// it was computed, whichever comes first.
func (t *localTier) put(key string, res Result, now time.Time) {
	expires := TickTime(Tick(now, t.interval)+1, t.interval)
	if byTTL := res.ComputedAt.Add(t.ttl); byTTL.Before(expires) {
		expires = byTTL
	}
	if !expires.After(now) {
		return
	}
	res.Cached, res.Stale = true, false
	res.body = &encodedBody{}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		// Full: drop the expired, then as many others as needed (the map's
		// order is as good as any for keys that live one interval).
		n := now.UnixNano()
		for k, e := range t.m {
			if n >= e.expires || len(t.m) >= t.max {
				delete(t.m, k)
			}
			if len(t.m) < t.max*3/4 {
				break
			}
		}
	}
	t.m[key] = &localEntry{res: res, expires: expires.UnixNano()}
}

func (t *localTier) invalidate(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// Body is the summary endpoint's JSON body for the range r that Get
// answered with res, newline-terminated. An answer from the in-process
// tier is encoded once for every request that gets it.
func (res Result) Body(r Range) []byte {
	if res.body == nil {
		return encodeBody(r, res)
	}
	res.body.once.Do(func() { res.body.b = encodeBody(r, res) })
	return res.body.b
}

// httpDate is net/http's TimeFormat (the domain does not import net/http).
const httpDate = "Mon, 02 Jan 2006 15:04:05 GMT"

// LastModified is ComputedAt as an HTTP date, formatted once for every
// request that gets an answer from the in-process tier.
func (res Result) LastModified() string {
	if res.body == nil {
		return res.ComputedAt.UTC().Format(httpDate)
	}
	res.body.modOnce.Do(func() { res.body.mod = res.ComputedAt.UTC().Format(httpDate) })
	return res.body.mod
}

func encodeBody(r Range, res Result) []byte {
	b, err := json.Marshal(NewResponse(r, res))
	if err != nil { // a Summary always encodes; keep the answer well-formed anyway
		return []byte(`{"error":{"code":"internal","message":"could not encode the response"}}` + "\n")
	}
	return append(b, '\n')
}
