package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/liveanalytics/analyticsd/internal/testenv"
)

// healthcheck runs `analyticsd healthcheck` against PORT=port and returns
// what it printed and its exit code.
func healthcheck(t *testing.T, port string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"healthcheck"}, args...), func(k string) string {
		if k == "PORT" {
			return port
		}
		return ""
	}, &out, io.Discard)
	if err != nil {
		t.Logf("healthcheck: %v", err)
		return out.String(), exitCode(err)
	}
	return strings.TrimSpace(out.String()), 0
}

func portOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// TestHealthcheckCommand: exit 0 for ok and degraded (Redis down, answers
// from PostgreSQL), 1 for down (PostgreSQL unreachable), nothing listening,
// a server that never answers (within --timeout) and something that is not
// analyticsd.
func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	t.Run("ok and degraded", func(t *testing.T) {
		t.Parallel()
		redisSrv := testenv.StartRedis(t)
		s := startServer(t, map[string]string{"REDIS_URL": redisSrv.URL()})
		if out, code := healthcheck(t, portOf(t, s.base)); code != 0 || out != "ok" {
			t.Fatalf("healthy server: exit %d, %q", code, out)
		}
		redisSrv.Stop()
		if out, code := healthcheck(t, portOf(t, s.base)); code != 0 || out != "degraded" {
			t.Fatalf("Redis down: exit %d, %q", code, out)
		}
	})
	t.Run("postgres down", func(t *testing.T) {
		t.Parallel()
		u, _ := url.Parse(testenv.PostgresURL(t))
		proxy := testenv.NewProxy(t, u.Host)
		u.Host = proxy.Addr
		s := startServer(t, map[string]string{"DATABASE_URL": u.String()})
		proxy.Cut()
		if out, code := healthcheck(t, portOf(t, s.base)); code != 1 {
			t.Fatalf("PostgreSQL down: exit %d, %q", code, out)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		if out, code := healthcheck(t, freePort(t)); code != 1 {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
	t.Run("no answer within the timeout", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() { // accepts and says nothing
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		// Without the timeout this would hang until the test binary's own.
		if out, code := healthcheck(t, portOf(t, "http://"+ln.Addr().String()), "--timeout", "300ms"); code != 1 {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
	t.Run("not analyticsd", func(t *testing.T) {
		t.Parallel()
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello")) }))
		defer other.Close()
		if out, code := healthcheck(t, portOf(t, other.URL)); code != 1 {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
	t.Run("bad flag exits 1, not 2", func(t *testing.T) {
		t.Parallel()
		if out, code := healthcheck(t, "3000", "--no-such-flag"); code != 1 {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
}
