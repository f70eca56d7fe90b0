package api

import (
	"bufio"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveanalytics/analyticsd/stream"
)

// documentedRoutes reads "METHOD /path" pairs from docs/openapi.yaml: the
// keys under paths: (two spaces) and their operations (four spaces).
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	inPaths, path := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && line[0] != ' ' && line[0] != '#':
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && path != "" && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") && strings.HasSuffix(line, ":"):
			switch m := strings.TrimSuffix(strings.TrimSpace(line), ":"); m {
			case "get", "post", "put", "patch", "delete":
				out = append(out, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// servedRoutes walks the router: every route with methods, except the
// dashboard's catch-all; HEAD rides along with GET.
func servedRoutes(t *testing.T, r *mux.Router) []string {
	t.Helper()
	var out []string
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil // the dashboard's PathPrefix("/") matcher
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil // the JSON 405 for other methods
		}
		for _, m := range methods {
			if m != "HEAD" {
				out = append(out, m+" "+tpl)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMatchesRoutes keeps docs/openapi.yaml and the router in step.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b := stream.New(nil, nil, stream.Options{})
	defer b.Close()
	a := New(Deps{Broker: b, Registry: prometheus.NewRegistry()}, Options{Logger: slog.New(slog.DiscardHandler)})
	served := servedRoutes(t, a.router)
	var withoutUI []string
	for _, s := range served {
		if s != "GET /" {
			withoutUI = append(withoutUI, s)
		}
	}
	documented := documentedRoutes(t)
	if strings.Join(withoutUI, "\n") != strings.Join(documented, "\n") {
		t.Fatalf("docs/openapi.yaml and the router differ\nserved:\n  %s\ndocumented:\n  %s",
			strings.Join(withoutUI, "\n  "), strings.Join(documented, "\n  "))
	}
	if len(documented) < 9 {
		t.Fatalf("only %d documented routes", len(documented))
	}
}
