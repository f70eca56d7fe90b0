package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/liveanalytics/analyticsd/internal/testenv"
)

// TestSeparateProcessesShareRefreshes runs three analyticsd processes on
// one PostgreSQL schema and one Redis prefix, with clients of two live
// ranges on each: the database sees one refresh per range per interval in
// total, and every client receives every version.
func TestSeparateProcessesShareRefreshes(t *testing.T) {
	// Not parallel: it counts refreshes against the wall clock.
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "analyticsd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	env := []string{
		"DATABASE_URL=" + testenv.PostgresURL(t),
		"REDIS_URL=" + testenv.RedisURL(t),
		"REDIS_PREFIX=" + testenv.KeyPrefix(t),
		"REFRESH_INTERVAL=400ms",
		"LOG_LEVEL=warn",
	}
	const N = 3
	var bases []string
	for i := range N {
		port := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "serve")
		cmd.Env = append(append(os.Environ(), env...), "PORT="+port)
		cmd.Stderr = os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); _ = cmd.Wait() })
		base := "http://127.0.0.1:" + port
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get(base + "/health")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %d did not start: %v", i, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		bases = append(bases, base)
	}
	ranges := []string{"now-1h", "now-6h"}
	// Consume the streams as a program would, with r3labs/sse's client.
	type seen struct {
		mu  sync.Mutex
		ids []int64
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var clients []*seen
	for _, base := range bases {
		for _, from := range ranges {
			c := sse.NewClient(base + "/api/analytics/stream?from=" + from + "&to=now")
			c.ReconnectStrategy = &backoff.StopBackOff{}
			rec := &seen{}
			clients = append(clients, rec)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.SubscribeRawWithContext(ctx, func(ev *sse.Event) {
					if v, err := strconv.ParseInt(string(ev.ID), 10, 64); err == nil && len(ev.Data) > 0 {
						rec.mu.Lock()
						rec.ids = append(rec.ids, v)
						rec.mu.Unlock()
					}
				})
			}()
		}
	}
	computed := func() float64 {
		total := 0.0
		for _, base := range bases {
			for _, role := range []string{"leader", "local"} {
				total += metric(t, base, fmt.Sprintf(`analytics_stream_refreshes_total{role="%s"}`, role))
			}
		}
		return total
	}
	const T = 10
	iv := int64(400)
	time.Sleep(time.Until(time.UnixMilli((time.Now().UnixMilli()/iv+1)*iv)).Abs() + 50*time.Millisecond)
	before := computed()
	time.Sleep(T * 400 * time.Millisecond)
	got := computed() - before
	R := float64(len(ranges))
	if got < R*(T-1) || got > R*(T+1) {
		t.Fatalf("%d instances, %v ranges, %d intervals: %v computations in total, want about %v (not %v)", N, R, T, got, R*T, N*R*T)
	}
	for i, c := range clients {
		c.mu.Lock()
		ids := append([]int64(nil), c.ids...)
		c.mu.Unlock()
		if len(ids) < T {
			t.Fatalf("client %d received %d versions: %v", i, len(ids), ids)
		}
		for j := 1; j < len(ids); j++ {
			if ids[j] != ids[j-1]+1 {
				t.Fatalf("client %d missed a version: %v", i, ids)
			}
		}
	}
}
