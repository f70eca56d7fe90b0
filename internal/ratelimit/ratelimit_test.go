package ratelimit

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(2, 4)
	l.now = func() time.Time { return now }
	for i := range 4 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("past the burst: %v %s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("no token after half a second at 2/s")
	}
	now = now.Add(time.Hour)
	l.Allow("c")
	if len(l.buckets) != 1 {
		t.Fatalf("idle buckets kept: %d", len(l.buckets))
	}
	var none *Limiter = New(0, 0)
	if ok, _ := none.Allow("x"); !ok {
		t.Fatal("a disabled limiter refused")
	}
	if RetryAfter(1500*time.Millisecond) != "2" || RetryAfter(time.Millisecond) != "1" {
		t.Fatal("RetryAfter rounds up to whole seconds, at least 1")
	}
}

// TestBlockedAndCharge: failures are charged, the key is blocked once
// they use the burst up, and failures that raced past the check still
// count (as debt).
func TestBlockedAndCharge(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(1.0/6, 3) // 10 per minute, bursts of 3
	l.now = func() time.Time { return now }
	if blocked, _ := l.Blocked("a"); blocked || len(l.buckets) != 0 {
		t.Fatal("a key never charged is blocked, or got a bucket")
	}
	for range 3 {
		l.Charge("a")
	}
	blocked, wait := l.Blocked("a")
	if !blocked || wait <= 5*time.Second || wait > 6*time.Second {
		t.Fatalf("after 3 failures: %v %s, want blocked for 6 s", blocked, wait)
	}
	if blocked, _ := l.Blocked("b"); blocked {
		t.Fatal("another key is blocked")
	}
	now = now.Add(6 * time.Second)
	if blocked, _ := l.Blocked("a"); blocked {
		t.Fatal("still blocked after one token's time")
	}
	l.Charge("a")
	l.Charge("a") // raced past Blocked: a debt of one
	if _, wait := l.Blocked("a"); wait <= 11*time.Second || wait > 12*time.Second {
		t.Fatalf("with a debt of one: wait %s, want 12 s", wait)
	}
	var none *Limiter = New(0, 0)
	none.Charge("x")
	if blocked, _ := none.Blocked("x"); blocked {
		t.Fatal("a disabled limiter blocked")
	}
}

func TestClientAddr(t *testing.T) {
	ps, err := ParseProxies("10.0.0.0/8, 192.168.1.5")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ peer, xff, want string }{
		{"203.0.113.9:5000", "1.2.3.4", "203.0.113.9"},                // untrusted peer: header ignored
		{"10.1.2.3:5000", "1.2.3.4", "1.2.3.4"},                       // trusted proxy
		{"10.1.2.3:5000", "6.6.6.6, 1.2.3.4, 192.168.1.5", "1.2.3.4"}, // right-most untrusted hop
		{"10.1.2.3:5000", "garbage", "10.1.2.3"},                      // broken header: the peer
		{"10.1.2.3:5000", "", "10.1.2.3"},
		{"[::ffff:10.1.2.3]:5000", "2001:db8::1", "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ps.ClientAddr(r); got != c.want {
			t.Errorf("peer %s, XFF %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	if _, err := ParseProxies("10.0.0.0/33"); err == nil {
		t.Error("bad CIDR accepted")
	}
}
