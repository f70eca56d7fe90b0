package api

import (
	"net/http"

	"github.com/liveanalytics/analyticsd/summary"
)

// clientConfig is GET /api/v1/config: the settings a client needs so that
// it never copies them (the dashboard's refresh interval).
type clientConfig struct {
	RefreshIntervalMs int64 `json:"refreshIntervalMs"`
	MaxRangeMs        int64 `json:"maxRangeMs"`
	MaxPoints         int   `json:"maxPoints"`
	// AutoBucket is the time series' automatic bucket: minutes up to
	// MinuteUpToMs, hours up to HourUpToMs, days beyond.
	AutoBucket struct {
		MinuteUpToMs int64 `json:"minuteUpToMs"`
		HourUpToMs   int64 `json:"hourUpToMs"`
	} `json:"autoBucket"`
}

func configHandler(o Options) http.Handler {
	var c clientConfig
	c.RefreshIntervalMs = summary.RangeParser{Align: o.RefreshInterval}.Interval().Milliseconds()
	c.MaxRangeMs = o.MaxRange.Milliseconds()
	c.MaxPoints = summary.DefaultMaxPoints
	c.AutoBucket.MinuteUpToMs = summary.AutoMinuteUpTo.Milliseconds()
	c.AutoBucket.HourUpToMs = summary.AutoHourUpTo.Milliseconds()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		writeJSON(w, http.StatusOK, c)
	})
}
