package stream_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/internal/redis"
	"github.com/liveanalytics/analyticsd/internal/testenv"
	"github.com/liveanalytics/analyticsd/storage"
	"github.com/liveanalytics/analyticsd/stream"
	"github.com/liveanalytics/analyticsd/summary"
)

// event is one parsed Server-Sent Event and when it was written.
type event struct {
	id, name, data, retry string
	at                    time.Time
}

// recorder is a Sink that parses what the broker writes, as an
// EventSource would: fields up to a blank line make an event.
type recorder struct {
	mu      sync.Mutex
	partial bytes.Buffer
	events  chan event
}

func (r *recorder) Send(p []byte, _ time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial.Write(p)
	for {
		block, rest, ok := strings.Cut(r.partial.String(), "\n\n")
		if !ok {
			return nil
		}
		r.partial.Reset()
		r.partial.WriteString(rest)
		ev := event{at: time.Now()}
		for _, line := range strings.Split(block, "\n") {
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				ev.id = v
			case "event":
				ev.name = v
			case "data":
				ev.data = v
			case "retry":
				ev.retry = v
			}
		}
		if ev.data != "" {
			r.events <- ev
		}
	}
}

// serve runs c's stream into a recorder until the test ends.
func serve(t *testing.T, b *stream.Broker, c *stream.Client) *recorder {
	t.Helper()
	r := &recorder{events: make(chan event, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Serve(ctx, c, r, -1) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// next is the next event named name, skipping others (nil: any).
func (r *recorder) next(t *testing.T, within time.Duration) event {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
		return event{}
	}
}

// summaryData is what the tests read of a summary event.
type summaryData struct {
	Stale      bool   `json:"stale"`
	Cached     bool   `json:"cached"`
	ComputedAt string `json:"computedAt"`
	Data       struct {
		TotalEvents int64 `json:"totalEvents"`
	} `json:"data"`
}

// newProxiedEnv is newEnv with PostgreSQL behind a proxy the test cuts.
func newProxiedEnv(t *testing.T) (*env, *testenv.Proxy) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr
	db, err := storage.Open(ctx, storage.Options{URL: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertRandom(ctx, 50, time.Now(), 10, nil); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	return &env{db: db, rdb: rdb, prefix: prefix, parser: summary.RangeParser{Align: interval, MaxRange: 400 * 24 * time.Hour}}, proxy
}

// stepBroker is a broker over the real service and Redis with its own
// refresh interval.
func (e *env) stepBroker(t *testing.T, step time.Duration) *stream.Broker {
	t.Helper()
	cache := redis.NewCache(e.rdb, e.prefix, time.Minute, 0)
	svc := summary.NewService(e.db, cache, summary.ServiceOptions{Metrics: summary.NewMetrics(prometheus.NewRegistry())})
	b := stream.New(svc, redis.NewCoordinator(e.rdb, e.prefix), stream.Options{Interval: step, Grace: time.Second})
	t.Cleanup(b.Close)
	return b
}

// TestStatusWhileStorageFails cuts PostgreSQL under two instances sharing
// a live range through the real Redis. Each instance's clients hear a
// "status" delayed within two intervals and then every interval (the
// leader's and the follower's alike), a client that connects meanwhile
// gets the last snapshot marked stale and the status, an instance without
// the range answers its last snapshot from Redis, and on recovery every
// client gets a fresh summary and then a status "ok".
func TestStatusWhileStorageFails(t *testing.T) {
	t.Parallel()
	const step = time.Second
	e, proxy := newProxiedEnv(t)
	brokers := []*stream.Broker{e.stepBroker(t, step), e.stepBroker(t, step)}
	spec, err := e.parser.ParseSpec("now-1h", "now")
	if err != nil {
		t.Fatal(err)
	}
	var recs []*recorder
	for _, b := range brokers {
		c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, serve(t, b, c))
	}
	// Healthy: summaries with their computation time, never stale.
	last := make([]summaryData, len(recs))
	for i, r := range recs {
		for range 2 {
			ev := r.next(t, 5*step)
			if ev.name != "summary" || ev.id == "" {
				t.Fatalf("client %d, healthy: %+v", i, ev)
			}
			last[i] = testenv.Decode[summaryData](t, ev.data)
			if last[i].Stale || last[i].Data.TotalEvents == 0 {
				t.Fatalf("client %d, healthy: %s", i, ev.data)
			}
			testenv.Millis(t, last[i].ComputedAt)
		}
	}

	proxy.Cut()
	cut := time.Now()
	for i, r := range recs {
		prev := cut
		// Three statuses in a row saying the computation failed; before
		// them, what was under way at the cut on a loaded machine (a
		// summary, an overdue status for a slow refresh, its "ok").
		for statuses := 0; statuses < 3; {
			ev := r.next(t, 5*step)
			// Every interval something: never two intervals of silence
			// (the first status comes at most one and a half after the
			// last snapshot: the follower waits out the leader's lease).
			if gap := ev.at.Sub(prev); gap > 2*step {
				t.Fatalf("client %d: %v without an event before %s", i, gap, ev.name)
			}
			prev = ev.at
			if ev.name == "summary" {
				last[i] = testenv.Decode[summaryData](t, ev.data)
				statuses = 0
				continue
			}
			if ev.name != "status" || ev.id != "" {
				t.Fatalf("client %d during the outage: %+v (a status has no id)", i, ev)
			}
			st := testenv.Decode[testenv.Status](t, ev.data)
			if st.State == "ok" {
				statuses = 0
				continue
			}
			if st.State != "delayed" || st.ComputedAt == nil || *st.ComputedAt != last[i].ComputedAt ||
				st.Reason != stream.ReasonStorage && st.Reason != stream.ReasonOverdue {
				t.Fatalf("client %d: status %s, want delayed with the last summary's computedAt %s", i, ev.data, last[i].ComputedAt)
			}
			if since := testenv.Millis(t, st.Since); since.Before(testenv.Millis(t, last[i].ComputedAt)) || since.After(ev.at) {
				t.Fatalf("client %d: since %s, last computed %s, told at %s", i, st.Since, last[i].ComputedAt, ev.at)
			}
			if st.Reason == stream.ReasonStorage {
				statuses++
			}
		}
	}

	// A client that connects during the outage: the last snapshot,
	// marked stale, then the status.
	late, err := brokers[1].Subscribe(context.Background(), spec, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	lr := serve(t, brokers[1], late)
	ev := lr.next(t, step)
	if s := testenv.Decode[summaryData](t, ev.data); ev.name != "summary" || !s.Stale || s.ComputedAt != last[1].ComputedAt || s.Data != last[1].Data {
		t.Fatalf("late client's first event: %+v", ev)
	}
	if ev = lr.next(t, step); ev.name != "status" || testenv.Decode[testenv.Status](t, ev.data).State != "delayed" {
		t.Fatalf("late client's second event: %+v", ev)
	}
	// The summary endpoint's fallback: this instance's range, and an
	// instance without the range (the snapshot stored in Redis).
	for i, b := range []*stream.Broker{brokers[0], e.stepBroker(t, step)} {
		body := b.LastSummary(context.Background(), spec)
		if s := testenv.Decode[summaryData](t, string(body)); !s.Stale || s.ComputedAt != last[0].ComputedAt || s.Data != last[0].Data {
			t.Fatalf("LastSummary on instance %d: %s", i, body)
		}
	}

	proxy.Heal()
	for i, r := range append(recs, lr) {
		var ev event
		for deadline := time.Now().Add(15 * step); ; {
			ev = r.next(t, time.Until(deadline))
			if ev.name == "summary" {
				break
			}
			if st := testenv.Decode[testenv.Status](t, ev.data); ev.name != "status" || st.State != "delayed" {
				t.Fatalf("client %d before recovery: %+v", i, ev)
			}
		}
		if s := testenv.Decode[summaryData](t, ev.data); s.Stale || !testenv.Millis(t, s.ComputedAt).After(cut) {
			t.Fatalf("client %d, first summary after recovery: %s", i, ev.data)
		}
		if ev = r.next(t, step); ev.name != "status" || string(ev.data) != `{"state":"ok"}` {
			t.Fatalf("client %d after the fresh summary: %+v, want status ok", i, ev)
		}
		if ev = r.next(t, 3*step); ev.name != "summary" {
			t.Fatalf("client %d after recovery: %+v", i, ev)
		}
	}
}

// TestStatusWhenNoSnapshotArrives: a computation that hangs fails
// nothing, yet the clients hear "refresh_overdue" every interval.
func TestStatusWhenNoSnapshotArrives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var hang atomic.Bool
	var n atomic.Int64
	b := e.broker(t, &n, func(ctx context.Context) {
		if hang.Load() {
			<-ctx.Done()
		}
	})
	c := e.subscribe(t, b, "now-1h")
	r := serve(t, b, c)
	if ev := r.next(t, 5*interval); ev.name != "summary" {
		t.Fatalf("first: %+v", ev)
	}
	hang.Store(true)
	// Three delayed statuses in a row (a refresh that began before the
	// hang, slowed down by a loaded machine, may still end in a summary
	// and an "ok" first).
	for seen, deadline := 0, time.Now().Add(30*interval); seen < 3; {
		ev := r.next(t, time.Until(deadline))
		st := testenv.Status{}
		if ev.name == "status" {
			st = testenv.Decode[testenv.Status](t, ev.data)
		}
		if ev.name == "summary" || st.State == "ok" {
			seen = 0
			continue
		}
		if st.State != "delayed" || st.Reason != stream.ReasonOverdue || st.ComputedAt == nil || ev.id != "" {
			t.Fatalf("while the refresh hangs: %+v", ev)
		}
		seen++
	}
}

// TestNewRangeDuringOutage: a range first asked for while PostgreSQL is
// down has no snapshot; its client gets a status with computedAt null at
// once, not silence.
func TestNewRangeDuringOutage(t *testing.T) {
	t.Parallel()
	e, proxy := newProxiedEnv(t)
	b := e.stepBroker(t, time.Second)
	proxy.Cut()
	spec, _ := e.parser.ParseSpec("now-3h", "now")
	c, err := b.Subscribe(context.Background(), spec, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ev := serve(t, b, c).next(t, 5*time.Second)
	if st := testenv.Decode[testenv.Status](t, ev.data); ev.name != "status" || st.State != "delayed" || st.ComputedAt != nil || st.Since == "" {
		t.Fatalf("first event of a new range during the outage: %+v", ev)
	}
	if body := b.LastSummary(context.Background(), spec); body != nil {
		t.Fatalf("LastSummary without any snapshot: %s", body)
	}
}
