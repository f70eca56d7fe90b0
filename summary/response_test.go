package summary

import (
	"encoding/json"
	"testing"
	"time"
)

// An answer whose edge moved to the minute (raw events dropped) says so in
// its period, as the range actually answered (inclusive), and keeps saying
// so when it comes back from the cache.
func TestPeriodShowsTheEffectiveRange(t *testing.T) {
	from := time.Date(2024, 1, 5, 10, 0, 30, 0, time.UTC)
	to := time.Date(2024, 1, 5, 12, 0, 10, 500_000_000, time.UTC)
	r := Range{From: from, To: to}
	plain := NewResponse(r, Result{Summary: Summary{TotalEvents: 3}})
	if plain.Period.Adjusted || plain.Period.From != "2024-01-05T10:00:30.000Z" {
		t.Fatalf("unadjusted: %+v", plain.Period)
	}
	eff := &Interval{From: from.Truncate(time.Minute), To: time.Date(2024, 1, 5, 12, 1, 0, 0, time.UTC)}
	got := NewResponse(r, Result{Summary: Summary{TotalEvents: 3, Effective: eff}})
	want := Period{From: "2024-01-05T10:00:00.000Z", To: "2024-01-05T12:00:59.999999Z", Adjusted: true}
	if got.Period != want {
		t.Fatalf("adjusted: %+v, want %+v", got.Period, want)
	}
	body, _ := json.Marshal(got)
	var back struct {
		Data   map[string]any `json:"data"`
		Period map[string]any `json:"period"`
	}
	if err := json.Unmarshal(body, &back); err != nil || back.Period["adjusted"] != true || back.Data["effective"] != nil {
		t.Fatalf("JSON %s", body)
	}
	// Through a cache entry.
	raw, _ := json.Marshal(Entry{Summary: got.Data, Effective: got.Data.Effective})
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil || e.Effective == nil || !e.Effective.From.Equal(eff.From) || !e.Effective.To.Equal(eff.To) {
		t.Fatalf("cache entry %s: %+v, %v", raw, e, err)
	}
}
