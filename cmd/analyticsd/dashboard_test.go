package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestDashboardMetricsExist checks that every metric the Grafana dashboard
// queries is exported by a running server, so a renamed metric cannot
// leave a panel silently empty.
func TestDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	dash, err := os.ReadFile("../../deploy/grafana/dashboards/analyticsd.json")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(?:analytics|process|go)_[a-z_]+`).FindAllString(string(dash), -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			m = strings.TrimSuffix(m, suffix)
		}
		used[m] = true
	}
	if len(used) < 20 {
		t.Fatalf("only %d metrics found in the dashboard", len(used))
	}
	s := startServer(t, nil)
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var missing []string
	for m := range used {
		if !strings.Contains(string(body), "# TYPE "+m+" ") {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("the dashboard queries metrics the server does not export: %v", missing)
	}
}
