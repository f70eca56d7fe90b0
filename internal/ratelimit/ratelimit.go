// Package ratelimit is a token bucket per key (an API key id or a client
// address), with idle buckets forgotten.
package ratelimit

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter holds one token bucket per key.
type Limiter struct {
	perSecond rate.Limit
	burst     int
	idle      time.Duration
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New allows perSecond requests per key with bursts of burst. A
// perSecond of zero or less returns nil, which allows everything.
func New(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = int(math.Max(1, math.Ceil(perSecond)))
	}
	return &Limiter{perSecond: rate.Limit(perSecond), burst: burst, idle: 10 * time.Minute,
		now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes one token for key. When there is none it returns false and
// how long until there will be.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	b := l.bucket(key, now)
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// bucket returns key's bucket, made when missing.
func (l *Limiter) bucket(key string, now time.Time) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > l.idle {
		// Forget buckets idle long enough to be full again: no goroutine,
		// and memory bounded by the keys seen in one idle period.
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.idle {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.perSecond, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b
}

// Blocked reports, without taking a token, whether key has none left,
// and how long until it has one. A key never charged is not blocked (and
// gets no bucket). With Charge it limits what fails rather than what is
// tried: failed authentications per address.
func (l *Limiter) Blocked(key string) (bool, time.Duration) {
	if l == nil {
		return false, 0
	}
	now := l.now()
	l.mu.Lock()
	b := l.buckets[key]
	l.mu.Unlock()
	if b == nil {
		return false, 0
	}
	if tokens := b.lim.TokensAt(now); tokens < 1 {
		return true, time.Duration((1 - tokens) / float64(l.perSecond) * float64(time.Second))
	}
	return false, 0
}

// Charge takes a token from key even when there is none: the debt
// delays the next one, so that failures that raced past Blocked together
// still count.
func (l *Limiter) Charge(key string) {
	if l == nil {
		return
	}
	now := l.now()
	l.bucket(key, now).lim.ReserveN(now, 1)
}

// RetryAfter is the Retry-After header value for a wait: whole seconds,
// at least 1.
func RetryAfter(d time.Duration) string {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// Proxies is the set of trusted reverse proxies, whose X-Forwarded-For is
// believed.
type Proxies []netip.Prefix

// ParseProxies reads a comma-separated list of CIDRs or addresses.
func ParseProxies(s string) (Proxies, error) {
	var out Proxies
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (ps Proxies) trusted(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ClientAddr is the address a request comes from: the TCP peer, or, when
// the peer is a trusted proxy, the right-most X-Forwarded-For entry that
// is not itself a trusted proxy.
func (ps Proxies) ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(ps) == 0 || !ps.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a forged or broken header: trust the peer only
		}
		if !ps.trusted(a) {
			return a.Unmap().String()
		}
	}
	return host
}
