package api

import "net/http"

// Bare is the benchmark baseline of `analyticsd bench-http`: a plain
// net/http handler that writes body with contentType and nothing else
// (no middleware, no routing, no cache). The server is measured against
// it, serving the same bytes.
func Bare(contentType string, body []byte) http.Handler {
	ct := []string{contentType}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = ct
		_, _ = w.Write(body)
	})
}
