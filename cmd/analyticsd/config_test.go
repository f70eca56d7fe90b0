package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnvAndFlags(t *testing.T) {
	env := map[string]string{"PORT": "8080", "CACHE_TTL": "90s", "MAX_RANGE": "30d", "LOG_FORMAT": "text", "REFRESH_INTERVAL": "2s"}
	cfg, err := parseConfig("serve", []string{"--port", "9090"}, func(k string) string { return env[k] }, &bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 9090 {
		t.Errorf("flag must override env: port %d", cfg.Port)
	}
	if cfg.CacheTTL != 90*time.Second || cfg.MaxRange != 30*24*time.Hour || cfg.LogFormat != "text" || cfg.RefreshInterval != 2*time.Second {
		t.Errorf("env not applied: %+v", cfg)
	}
	def, err := parseConfig("serve", nil, func(string) string { return "" }, &bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.Port != 3000 || def.CacheTTL != time.Minute || def.RefreshInterval != 5*time.Second ||
		def.DatabaseURL != "postgres://localhost:5432/analytics?sslmode=disable" || def.RedisURL != "redis://localhost:6379/0" {
		t.Errorf("defaults: %+v", def)
	}
}

// Zero switches off what the README says it switches off.
func TestZeroDisables(t *testing.T) {
	env := map[string]string{"RATE_LIMIT_ADDR": "0", "RATE_LIMIT_KEY": "0", "ROLLUP_CACHE_MB": "0", "CACHE_STALE_TTL": "0"}
	cfg, err := parseConfig("serve", nil, func(k string) string { return env[k] }, &bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimitAddr != 0 || cfg.RateLimitKey != 0 || cfg.RollupCacheMB != 0 || bitmapCacheBytes(cfg.RollupCacheMB) >= 0 {
		t.Fatalf("zeros not applied: %+v", cfg)
	}
}

func TestBadConfigNamesTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"PORT": "http"}, nil, "PORT"},
		{map[string]string{"PARTITION_INTERVAL": "week"}, nil, "PARTITION_INTERVAL"},
		{map[string]string{"RAW_RETENTION": "1h"}, nil, "RAW_RETENTION"},
		{map[string]string{"ROLLUP_RETENTION": "30d"}, nil, "ROLLUP_RETENTION"},
		{map[string]string{"RAW_RETENTION": "90d", "ROLLUP_RETENTION": "30d"}, nil, "ROLLUP_RETENTION"},
		{map[string]string{"PORT": "70000"}, nil, "PORT"},
		{map[string]string{"CACHE_TTL": "soon"}, nil, "CACHE_TTL"},
		{map[string]string{"CACHE_TTL": "0s"}, nil, "CACHE_TTL"},
		{map[string]string{"REFRESH_INTERVAL": "1ms"}, nil, "REFRESH_INTERVAL"},
		{map[string]string{"MAX_RANGE": "-3d"}, nil, "MAX_RANGE"},
		{map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{map[string]string{"LOG_FORMAT": "xml"}, nil, "LOG_FORMAT"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, nil, "DATABASE_URL"},
		{map[string]string{"REDIS_URL": "http://x"}, nil, "REDIS_URL"},
		{map[string]string{"DB_MAX_CONNS": "2"}, nil, "DB_MAX_CONNS"},
		{map[string]string{"STREAM_DETACH": "maybe"}, nil, "STREAM_DETACH"},
		{map[string]string{"RATE_LIMIT_ADDR": "-1"}, nil, "RATE_LIMIT_ADDR"},
		{map[string]string{"ROLLUP_CACHE_MB": "lots"}, nil, "ROLLUP_CACHE_MB"},
		{map[string]string{"READ_AUTH": "sometimes"}, nil, "READ_AUTH"},
		{map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, nil, "TRUSTED_PROXIES"},
		{map[string]string{"DATABASE_READ_URL": "mysql://x"}, nil, "DATABASE_READ_URL"},
		{nil, []string{"--cache-ttl", "x"}, "cache-ttl"},
		{nil, []string{"--bogus"}, "bogus"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		_, err := parseConfig("serve", tt.args, func(k string) string { return tt.env[k] }, &stderr, nil)
		if err == nil {
			t.Errorf("%v %v: accepted", tt.env, tt.args)
			continue
		}
		if !strings.Contains(err.Error()+stderr.String(), tt.want) {
			t.Errorf("%v %v: error %q does not name %s", tt.env, tt.args, err, tt.want)
		}
	}
}

func TestPasswordsAreNotEchoed(t *testing.T) {
	_, err := parseConfig("serve", nil, func(k string) string {
		if k == "REDIS_URL" {
			return "ftp://user:s3cret@host"
		}
		return ""
	}, &bytes.Buffer{}, nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, &out, &out)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("err %v", err)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"60", "90s", "400d", "1h30m", "-1s", "d", "99999999999d", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("%q parsed to negative %v", s, d)
		}
	})
}
