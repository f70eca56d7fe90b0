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
