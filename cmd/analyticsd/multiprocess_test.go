package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/testenv"
)

// TestSeparateProcessesShareRefreshes runs three analyticsd processes on
// one PostgreSQL schema and one Redis prefix, with clients of two live
// ranges on each: the database sees one refresh per range per interval in
// total, and every client receives every version.
func TestSeparateProcessesShareRefreshes(t *testing.T) {
	t.Parallel()
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
		"REDIS_PREFIX=" + testenv.RandomName("test:") + ":",
		"REFRESH_INTERVAL=200ms",
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
	var conns []*sseConn
	for _, base := range bases {
		for _, from := range ranges {
			c := openStream(t, base+"/api/analytics/stream?from="+from+"&to=now", "")
			if _, ok := c.next(t, 5*time.Second); !ok {
				t.Fatal("no initial snapshot")
			}
			conns = append(conns, c)
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
	iv := int64(200)
	time.Sleep(time.Until(time.UnixMilli((time.Now().UnixMilli()/iv+1)*iv)).Abs() + 50*time.Millisecond)
	before := computed()
	// Read every client for T intervals and check versions are consecutive.
	stop := time.Now().Add(T * 200 * time.Millisecond)
	last := make([]int64, len(conns))
	for time.Now().Before(stop) {
		for i, c := range conns {
			select {
			case ev := <-c.events:
				if ev.id == "" {
					continue
				}
				v, _ := strconv.ParseInt(ev.id, 10, 64)
				if last[i] != 0 && v != last[i]+1 {
					t.Fatalf("client %d jumped from version %d to %d", i, last[i], v)
				}
				last[i] = v
			default:
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := computed() - before
	R := float64(len(ranges))
	if got < R*(T-1) || got > R*(T+1) {
		t.Fatalf("%d instances, %v ranges, %d intervals: %v computations in total, want about %v (not %v)", N, R, T, got, R*T, N*R*T)
	}
}
