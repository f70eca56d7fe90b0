package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// limitedBroker is a broker over the real service with small range limits
// and a grace period long enough that only eviction frees a range.
func (e *env) limitedBroker(t *testing.T, maxRanges, perAddr int) (*stream.Broker, *prometheus.Registry) {
	t.Helper()
	svc := summary.NewService(e.db, redis.NewCache(e.rdb, e.prefix, time.Minute, 0), summary.ServiceOptions{Metrics: summary.NewMetrics(prometheus.NewRegistry())})
	reg := prometheus.NewRegistry()
	b := stream.New(svc, redis.NewCoordinator(e.rdb, e.prefix), stream.Options{
		Interval: interval, Grace: time.Hour, MaxRanges: maxRanges, MaxRangesPerAddr: perAddr, Metrics: stream.NewMetrics(reg)})
	t.Cleanup(b.Close)
	return b, reg
}

// counter reads one unlabelled counter, or the sample with label value.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s %s", name, label)
	return 0
}

func (e *env) subscribeFrom(t *testing.T, b *stream.Broker, from, addr string) (*stream.Client, error) {
	t.Helper()
	spec, err := e.parser.ParseSpec(from, "now")
	if err != nil {
		t.Fatal(err)
	}
	return b.Subscribe(context.Background(), spec, addr)
}

// TestRangesPerAddress: an address may be on MaxRangesPerAddr distinct
// ranges (its own or shared), as many clients on them as it likes, and
// a new one once it leaves one; other addresses are not affected.
func TestRangesPerAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, reg := e.limitedBroker(t, 100, 3)
	shared, err := e.subscribeFrom(t, b, "now-1h", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	var mine []*stream.Client
	for _, from := range []string{"now-1h", "now-2h", "now-3h"} { // the first is b's
		c, err := e.subscribeFrom(t, b, from, "a")
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		mine = append(mine, c)
	}
	if _, err := e.subscribeFrom(t, b, "now-4h", "a"); !errors.Is(err, stream.ErrTooManyRangesForAddr) {
		t.Fatalf("a 4th range: %v, want ErrTooManyRangesForAddr", err)
	}
	if n := counter(t, reg, "analytics_stream_rejected_total", "ranges_per_addr"); n != 1 {
		t.Fatalf("rejected ranges_per_addr = %v", n)
	}
	again, err := e.subscribeFrom(t, b, "now-2h", "a")
	if err != nil {
		t.Fatalf("another client on a range the address is on: %v", err)
	}
	if _, err := e.subscribeFrom(t, b, "now-4h", "b"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	mine[1].Close()
	if _, err := e.subscribeFrom(t, b, "now-5h", "a"); !errors.Is(err, stream.ErrTooManyRangesForAddr) {
		t.Fatalf("still on now-2h through its second client: %v", err)
	}
	again.Close()
	if _, err := e.subscribeFrom(t, b, "now-5h", "a"); err != nil {
		t.Fatalf("after leaving now-2h: %v", err)
	}
}

// TestIdleRangesMakeRoom: at MaxRanges a new range evicts the one idle
// longest (no clients, in its grace period), never one with clients; with
// every range in use it is refused.
func TestIdleRangesMakeRoom(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, reg := e.limitedBroker(t, 3, 3)
	var cs []*stream.Client
	for i := range 3 {
		c, err := e.subscribeFrom(t, b, fmt.Sprintf("now-%dh", i+1), "a")
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if _, err := e.subscribeFrom(t, b, "now-9h", "b"); !errors.Is(err, stream.ErrTooManyRanges) {
		t.Fatalf("full, every range in use: %v, want ErrTooManyRanges", err)
	}
	cs[2].Close()
	time.Sleep(time.Millisecond) // a later idleSince
	cs[0].Close()                // now-1h is idle, now-3h idle longer
	if st := b.Stats(); st.Ranges != 3 {
		t.Fatalf("idle ranges are kept for their grace: %+v", st)
	}
	nine, err := e.subscribeFrom(t, b, "now-9h", "b")
	if err != nil {
		t.Fatalf("a new range with idle ones to evict: %v", err)
	}
	if nine.Latest() == nil {
		t.Fatal("the new range has no snapshot")
	}
	// now-3h went; now-1h (idle for less time) is still there, so joining
	// it evicts nothing.
	if st := b.Stats(); st.Ranges != 3 || counter(t, reg, "analytics_stream_ranges_evicted_total", "") != 1 {
		t.Fatalf("after one eviction: %+v", st)
	}
	if _, err := e.subscribeFrom(t, b, "now-1h", "c"); err != nil {
		t.Fatalf("joining the range idle for less time: %v", err)
	}
	if n := counter(t, reg, "analytics_stream_ranges_evicted_total", ""); n != 1 {
		t.Fatalf("joining now-1h evicted a range (%v evictions): the wrong one went first", n)
	}
	if _, err := e.subscribeFrom(t, b, "now-10h", "c"); !errors.Is(err, stream.ErrTooManyRanges) {
		t.Fatalf("every range in use again: %v, want ErrTooManyRanges", err)
	}
}
