package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHealthAndMetricsReportStorage: a served instance reports its
// partitions (the default one, and the current month and two ahead that
// its rollup worker creates), and the bytes and oldest data of the raw
// events and the rollups, in /health and /metrics.
func TestHealthAndMetricsReportStorage(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	var h struct {
		Storage *struct {
			Partitions      int        `json:"partitions"`
			RawBytes        int64      `json:"rawBytes"`
			RollupBytes     int64      `json:"rollupBytes"`
			OldestRaw       *time.Time `json:"oldestRaw"`
			RawRetainedFrom *time.Time `json:"rawRetainedFrom"`
		} `json:"storage"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := getJSON(t, s.base+"/health", &h); code == 200 && h.Storage != nil && h.Storage.Partitions >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never reported the worker's partitions: %+v", h.Storage)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h.Storage.RawBytes <= 0 || h.Storage.RollupBytes <= 0 || h.Storage.RawRetainedFrom != nil {
		t.Fatalf("health storage: %+v", *h.Storage)
	}
	// Measured in the background (at start, then every 30 s).
	var body []byte
	for wait := time.Now().Add(20 * time.Second); !strings.Contains(string(body), "\nanalytics_footprint_up 1"); {
		if time.Now().After(wait) {
			t.Fatalf("the footprint was never measured:\n%s", body)
		}
		resp, err := http.Get(s.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range []string{"analytics_events_partitions 4", "analytics_events_bytes ", "analytics_rollup_bytes ",
		"analytics_events_oldest_timestamp_seconds ", "analytics_rollup_oldest_timestamp_seconds ",
		"analytics_raw_retained_from_timestamp_seconds 0", "analytics_footprint_up 1"} {
		if !strings.Contains(string(body), "\n"+m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
}
