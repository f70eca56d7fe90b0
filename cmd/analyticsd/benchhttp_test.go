package main

import "testing"

const wrkSample = `Running 10s test @ http://127.0.0.1:39595/api/v1/analytics/summary?from=now-24h&to=now
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms    1.20ms  31.30ms   90.17%
    Req/Sec    34.21k     2.13k   40.01k    71.50%
  Latency Distribution
     50%  686.00us
     75%    1.16ms
     90%    2.13ms
     99%    5.96ms
  680731 requests in 10.00s, 361.54MB read
Requests/sec:  68047.55
Transfer/sec:     36.14MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk([]byte(wrkSample))
	if err != nil || r.rps != 68047.55 || r.p50 != "686.00us" || r.p99 != "5.96ms" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := parseWrk([]byte(wrkSample + "  Non-2xx or 3xx responses: 12\n")); err == nil {
		t.Fatal("a run with failed requests must not count")
	}
	if _, err := parseWrk([]byte("unable to connect")); err == nil {
		t.Fatal("no figures, no result")
	}
}

func FuzzParseWrk(f *testing.F) {
	f.Add([]byte(wrkSample))
	f.Add([]byte("Requests/sec: 1\n 50% x\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := parseWrk(out)
		if err == nil && r.rps < 0 {
			t.Fatalf("negative rate from %q", out)
		}
	})
}
