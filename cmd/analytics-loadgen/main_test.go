package main

import "testing"

func TestParseRejectsNonLoopbackTargets(t *testing.T) {
	for _, args := range [][]string{
		{"--targets", "http://10.0.0.1:3000"},
		{"--targets", "http://example.com"},
		{"--sources", "192.168.1.1"},
		{"--sources", "127.0.0.9-127.0.0.2"},
		{"--clients", "0"},
		{"--duration", "2h"},
	} {
		if _, err := parse(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	o, err := parse([]string{"--targets", "http://127.0.0.1:3000,http://localhost:3001", "--sources", "127.0.0.1-127.0.0.4,127.0.1.1"})
	if err != nil || len(o.targets) != 2 || len(o.sources) != 5 {
		t.Fatalf("%+v %v", o, err)
	}
}

func FuzzParseSources(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "127.0.0.1-127.0.0.8", "127.0.0.1,127.0.1.2", "10.0.0.1", "127.0.0.5-127.0.0.1", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ips, err := parseSources(s)
		if err != nil {
			return
		}
		for _, ip := range ips {
			if !ip.IsLoopback() {
				t.Fatalf("%q gave non-loopback %v", s, ip)
			}
		}
	})
}

func TestRangeQueries(t *testing.T) {
	o, err := parse([]string{"--ranges", "6", "--types", "a,b b", "--range-unit", "m"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range 6 {
		seen[rangeQuery(o, i)] = true
	}
	if len(seen) != 6 || !seen["from=now-1m&to=now&event_type=a"] || !seen["from=now-3m&to=now&event_type=b+b"] {
		t.Fatalf("ranges: %v", seen)
	}
	if _, err := parse([]string{"--range-unit", "y"}); err == nil {
		t.Fatal("unit y accepted")
	}
	if _, err := parseFleet([]string{"--duration", "5s", "--interval", "5s", "--database-url", "x", "--redis-url", "y"}); err == nil {
		t.Fatal("a hold shorter than three intervals accepted")
	}
}

func TestQuantilesOfSparseHistogram(t *testing.T) {
	h := map[int]int64{10: 50, 20: 49, 900: 1}
	if q := quantilesOf(h, 0.5, 0.99, 1); q[0] != 10 || q[1] != 20 || q[2] != 900 {
		t.Fatalf("%v", q)
	}
}
