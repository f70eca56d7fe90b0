package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/internal/auth"
	"github.com/liveanalytics/analyticsd/internal/testenv"
)

// panelTarget is one query of the Grafana dashboard; panel is its
// panel's type and title ("stat Cache hit rate"), which are unique.
type panelTarget struct {
	panel, ref, expr string
}

// dashboardTargets reads every panel's expr from the provisioned dashboard.
func dashboardTargets(t *testing.T) []panelTarget {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/grafana/dashboards/analyticsd.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Type    string  `json:"type"`
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	}
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var out []panelTarget
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				out = append(out, panelTarget{p.Type + " " + p.Title, tg.RefID, tg.Expr})
			}
		}
	}
	walk(dash.Panels)
	if len(out) < 30 {
		t.Fatalf("only %d queries in the dashboard", len(out))
	}
	return out
}

// grafanaRegex is a multi-value variable's value as Grafana's Prometheus
// data source writes it into a regex matcher: each value's regex
// characters escaped (for the regex, then for the PromQL string), the
// values joined as an alternation.
func grafanaRegex(values ...string) string {
	esc := make([]string, len(values))
	for i, v := range values {
		esc[i] = regexp.MustCompile(`[$^*{}\[\]'+?.()|\\]`).ReplaceAllString(v, `\\$0`)
	}
	if len(esc) == 1 {
		return esc[0]
	}
	return "(" + strings.Join(esc, "|") + ")"
}

// interpolate substitutes the dashboard's variables as Grafana does with
// a 1 s scrape interval: $instance by its selection, $datasource by the
// data source's uid, the interval variables by what Grafana computes.
func interpolate(t *testing.T, expr, instance string) string {
	t.Helper()
	out := strings.NewReplacer(
		"${instance}", instance, "$instance", instance,
		"${datasource}", "prometheus", "$datasource", "prometheus",
		"${__rate_interval}", "4s", "$__rate_interval", "4s", // max(interval + scrape, 4 × scrape)
		"${__interval}", "1s", "$__interval", "1s",
		"${__range}", "5m", "$__range", "5m",
	).Replace(expr)
	if strings.Contains(out, "$") {
		t.Fatalf("a variable the test does not know in %q", expr)
	}
	return out
}

// promServer is a real Prometheus (Debian's package) scraping the test's
// servers every second.
type promServer struct {
	base string
	out  *syncBuffer
}

// startPrometheus runs prometheus on a free port with a temporary storage
// directory until the test ends. Without the binary the test skips, or
// fails under CI (.ci/run installs the package).
func startPrometheus(t *testing.T, targets []string) *promServer {
	t.Helper()
	bin := testenv.Binary(t, "prometheus", "apt-get install prometheus; .ci/run does")
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: analyticsd
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePort(t)
	p := &promServer{base: "http://" + addr, out: &syncBuffer{}}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	p.waitFor(t, "ready", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start:\n%s", p.out)
		default:
		}
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return p
}

func (p *promServer) waitFor(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		done, last := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s: not within 60 s (last: %s)\n%s", what, last, p.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sample is one element of an instant query's result.
type sample struct {
	labels map[string]string
	value  float64
}

// query evaluates expr at time at (an instant query, as a stat panel or
// one step of a graph).
func (p *promServer) query(t *testing.T, expr string, at time.Time) []sample {
	t.Helper()
	q := url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	resp, err := http.Get(p.base + "/api/v1/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %s %s", expr, resp.Status, body)
	}
	value := func(pair [2]any) float64 {
		s, _ := pair[1].(string)
		v, err := strconv.ParseFloat(s, 64) // "NaN", "+Inf" included
		if err != nil {
			t.Fatalf("query %s: value %v", expr, pair[1])
		}
		return v
	}
	switch r.Data.ResultType {
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(r.Data.Result, &pair); err != nil {
			t.Fatal(err)
		}
		return []sample{{value: value(pair)}}
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			t.Fatal(err)
		}
		out := make([]sample, len(vec))
		for i, v := range vec {
			out[i] = sample{labels: v.Metric, value: value(v.Value)}
		}
		return out
	}
	t.Fatalf("query %s: result type %s", expr, r.Data.ResultType)
	return nil
}

// scalar is the value of a query that must answer exactly one number.
func (p *promServer) scalar(t *testing.T, expr string, at time.Time) float64 {
	t.Helper()
	s := p.query(t, expr, at)
	if len(s) != 1 {
		t.Fatalf("%s: %d samples, want 1: %v", expr, len(s), s)
	}
	return s[0].value
}

// waitScrapes waits until every target answered at least n scrapes.
func (p *promServer) waitScrapes(t *testing.T, targets, n int) {
	t.Helper()
	p.waitFor(t, fmt.Sprintf("%d scrapes of %d targets", n, targets), func() (bool, string) {
		s := p.query(t, `count_over_time(up{job="analyticsd"}[5m]) and up == 1`, time.Now())
		if len(s) < targets {
			return false, fmt.Sprintf("%d targets up", len(s))
		}
		for _, x := range s {
			if x.value < float64(n) {
				return false, fmt.Sprintf("%s scraped %v times", x.labels["instance"], x.value)
			}
		}
		return true, ""
	})
}

// TestGrafanaPanelsShowNumbers evaluates every query of the Grafana
// dashboard in a real Prometheus scraping real servers, as Grafana would,
// for each selection of the Instance variable: every panel shows numbers,
// never "No data", NaN or Inf; at rest the rates and ratios are 0; and the
// values are right with two instances: a 503 shows in the 5xx ratio and the
// error panel, the demo's inserts in "Accepted events/s", and a range held
// by both instances counts once in "Refreshes per range".
func TestGrafanaPanelsShowNumbers(t *testing.T) {
	t.Parallel()
	targets := dashboardTargets(t)

	// Two instances at rest: nothing but health checks and scrapes.
	restEnv := map[string]string{"DATABASE_URL": testenv.PostgresURL(t), "REDIS_PREFIX": testenv.KeyPrefix(t)}
	rest := []*server{startServer(t, restEnv), startServer(t, restEnv)}

	// Two busy instances: two live ranges on the first, one of them on the
	// second too (one refresh a second, at most two ranges each), the demo
	// trickle on the first, an ingest key.
	key := newKey(t, auth.ScopeIngest)
	busyEnv := map[string]string{
		"DATABASE_URL":      testenv.PostgresURL(t),
		"REDIS_PREFIX":      testenv.KeyPrefix(t),
		"REFRESH_INTERVAL":  "1s",
		"STREAM_MAX_RANGES": "2",
		"API_KEYS":          key.entry,
	}
	// The demo's live events come at its history's rate: a day of 100k
	// events is at least one every few seconds at any hour.
	busy := []*server{startServer(t, busyEnv, "--demo", "--demo-events", "100000", "--demo-days", "1"), startServer(t, busyEnv)}
	for _, stream := range []struct {
		s    *server
		from string
	}{{busy[0], "now-1h"}, {busy[0], "now-2h"}, {busy[1], "now-1h"}} {
		c := openStream(t, stream.s.base+"/api/analytics/stream?from="+stream.from+"&to=now", "")
		if _, ok := c.next(t, 20*time.Second); !ok {
			t.Fatalf("%s: no first snapshot", stream.s.base)
		}
		drain(c.events)
	}

	host := func(ss ...*server) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = strings.TrimPrefix(s.base, "http://")
		}
		return out
	}
	all := append(host(rest...), host(busy...)...)
	prom := startPrometheus(t, all)
	prom.waitScrapes(t, len(all), 3) // every series seen at 0 first

	// While Prometheus watches: a 503 (a third range over the limit), a
	// batch through the ingest endpoint, the demo's inserts.
	if code, _ := getJSON(t, busy[0].base+"/api/analytics/stream?from=now-3h&to=now", nil); code != 503 {
		t.Fatalf("a third live range with STREAM_MAX_RANGES=2: %d, want 503", code)
	}
	if r := do(t, "POST", busy[1].base+"/api/v1/events", key.token, "application/json", batch(5, time.Now())); r.code != 202 {
		t.Fatalf("ingest: %d %s", r.code, r.raw)
	}
	demoInserts := `analytics_ingest_events_total{source="demo"}`
	for start, deadline := metric(t, busy[0].base, demoInserts), time.Now().Add(60*time.Second); metric(t, busy[0].base, demoInserts) == start; {
		if time.Now().After(deadline) {
			t.Fatal("the demo inserted nothing in a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	prom.waitScrapes(t, len(all), 8)
	// The demo trickles at its history's rate for this hour (slowest near
	// 04:00 UTC): wait until Prometheus itself has seen an insert inside
	// the panels' one-minute window, not only this test's read of /metrics.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		got := prom.query(t, `sum(increase(analytics_ingest_events_total{source="demo"}[1m]))`, time.Now())
		if len(got) == 1 && got[0].value > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus saw no demo insert within a minute: %v", got)
		}
	}

	at := time.Now()
	selections := []struct{ name, instance string }{
		{"All", grafanaRegex(all...)},
		{"All as .*", ".*"},
		{"the instances at rest", grafanaRegex(host(rest...)...)},
		{"the busy instances", grafanaRegex(host(busy...)...)},
		{"one busy instance", grafanaRegex(host(busy[1])...)},
	}
	values := map[string][]sample{} // selection + panel + ref → result
	for _, sel := range selections {
		for _, tg := range targets {
			expr := interpolate(t, tg.expr, sel.instance)
			got := prom.query(t, expr, at)
			if len(got) == 0 {
				t.Errorf("%s, panel %q (%s) shows No data: %s", sel.name, tg.panel, tg.ref, expr)
			}
			for _, s := range got {
				if math.IsNaN(s.value) || math.IsInf(s.value, 0) {
					t.Errorf("%s, panel %q (%s) shows %v for %v: %s", sel.name, tg.panel, tg.ref, s.value, s.labels, expr)
				}
			}
			values[sel.name+"|"+tg.panel+"|"+tg.ref] = got
		}
	}
	one := func(sel, panel, ref string) float64 {
		t.Helper()
		got, ok := values[sel+"|"+panel+"|"+ref]
		if !ok {
			t.Fatalf("no panel %q (%s) in the dashboard", panel, ref)
		}
		if len(got) != 1 {
			t.Errorf("%s, panel %q (%s): %d series, want one: %v", sel, panel, ref, len(got), got)
			return math.NaN()
		}
		return got[0].value
	}

	const restSel, busySel = "the instances at rest", "the busy instances"
	for _, p := range []struct{ panel, ref string }{
		{"stat HTTP 5xx ratio", "A"},
		{"timeseries Error responses (4xx/5xx) by route and code", "A"},
		{"stat Cache hit rate", "A"},
		{"timeseries Cache hit rate over time", "A"},
		{"stat Accepted events/s", "A"},
		{"timeseries Accepted events/s", "B"},
		{"timeseries Refreshes per range", "B"},
		{"stat Stream clients", "A"},
	} {
		if v := one(restSel, p.panel, p.ref); v != 0 {
			t.Errorf("at rest, panel %q (%s) = %v, want 0", p.panel, p.ref, v)
		}
	}

	if v := one(busySel, "stat HTTP 5xx ratio", "A"); !(v > 0) {
		t.Errorf("HTTP 5xx ratio after a 503 = %v, want > 0", v)
	}
	var seen503 bool
	errorsPanel := busySel + "|timeseries Error responses (4xx/5xx) by route and code|A"
	for _, s := range values[errorsPanel] {
		seen503 = seen503 || (s.labels["code"] == "503" && s.labels["route"] == "/api/analytics/stream" && s.value > 0)
	}
	if !seen503 {
		t.Errorf("Error responses after a 503 on the stream: %v", values[errorsPanel])
	}
	if v := one(busySel, "stat Accepted events/s", "A"); !(v > 0) {
		t.Errorf("Accepted events/s while the demo inserts = %v, want > 0", v)
	}
	bySource := map[string]float64{}
	for _, s := range values[busySel+"|timeseries Accepted events/s|A"] {
		bySource[s.labels["source"]] = s.value
	}
	if !(bySource["demo"] > 0 && bySource["api"] > 0) {
		t.Errorf("Accepted events/s by source = %v, want demo and api above 0", bySource)
	}
	// Two distinct live ranges, one held by both busy instances: the
	// computed refreshes per range are the computed refreshes over 2 (not
	// over 3, the ranges summed over the instances).
	computed := prom.scalar(t, fmt.Sprintf(`sum(rate(analytics_stream_refreshes_total{role=~"leader|local",instance=~"%s"}[5m]))`, grafanaRegex(host(busy...)...)), at)
	if perRange := one(busySel, "timeseries Refreshes per range", "B"); !(computed > 0) || math.Abs(perRange-computed/2) > 1e-9*computed {
		t.Errorf("Refreshes per range with two ranges, one on both instances = %v, want %v (%v computed refreshes/s over 2 ranges)", perRange, computed/2, computed)
	}
	if v := one(busySel, "stat Stream clients", "A"); v != 3 {
		t.Errorf("Stream clients = %v, want 3", v)
	}
}
