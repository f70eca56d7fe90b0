package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestAcceptsEventStream(t *testing.T) {
	for _, c := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"text/event-stream"}, true},      // every EventSource
		{[]string{"Text/Event-Stream; q=1"}, true}, // case and parameters
		{[]string{"application/json, text/event-stream;q=0.5"}, true},
		{[]string{"application/json", "text/event-stream"}, true},
		{[]string{"*/*"}, false}, // curl: the JSON error, with its status
		{[]string{"text/event-streams"}, false},
		{[]string{"application/json"}, false},
	} {
		req, _ := http.NewRequest("GET", "/", nil)
		for _, v := range c.accept {
			req.Header.Add("Accept", v)
		}
		if got := acceptsEventStream(req); got != c.want {
			t.Errorf("Accept %q: %v, want %v", c.accept, got, c.want)
		}
	}
}

func FuzzAcceptsEventStream(f *testing.F) {
	for _, s := range []string{"text/event-stream", "a, text/event-stream;q=0", ",,;", "TEXT/EVENT-STREAM"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		req, _ := http.NewRequest("GET", "/", nil)
		req.Header.Set("Accept", accept)
		if acceptsEventStream(req) && !strings.Contains(strings.ToLower(accept), "text/event-stream") {
			t.Fatalf("%q accepted without naming text/event-stream", accept)
		}
	})
}
