package summary

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTickFloorsBeforeTheEpoch: an interval holds the instants from its
// start to its end on both sides of 1970 (integer division alone puts
// -0.5 s and +0.5 s into one interval).
func TestTickFloorsBeforeTheEpoch(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want int64
	}{
		{0, 0}, {999, 0}, {1000, 1}, {-1, -1}, {-999, -1}, {-1000, -1}, {-1001, -2},
	} {
		if got := Tick(time.UnixMilli(tc.ms), time.Second); got != tc.want {
			t.Errorf("Tick(%d ms) = %d, want %d", tc.ms, got, tc.want)
		}
		if k := Tick(time.UnixMilli(tc.ms), time.Second); TickTime(k, time.Second).After(time.UnixMilli(tc.ms)) || !TickTime(k+1, time.Second).After(time.UnixMilli(tc.ms)) {
			t.Errorf("%d ms is not within interval %d", tc.ms, k)
		}
	}
}

// TestVersionIsNeverNegativeAndNeverGoesBack: for any valid range, the
// version a client sees (the stream's id, the ETag) is a non-negative
// counter that never decreases as time passes, including ranges in year 1
// and ranges ending at the end of year 9999.
func TestVersionIsNeverNegativeAndNeverGoesBack(t *testing.T) {
	p := RangeParser{Align: 5 * time.Second}
	var specs []Spec
	for _, r := range [][2]string{
		{"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"},
		{"0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"},
		{"1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.999Z"},
		{"1969-12-31T23:59:59Z", "1970-01-01T00:00:00.5Z"},
		{"2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"},
		{"9999-12-30T00:00:00Z", "9999-12-31T23:59:59.999999Z"},
		{"now-24h", "now"},
		{"now-7d", "now-1d"},
	} {
		s, err := RangeParser{}.ParseSpec(r[0], r[1])
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		specs = append(specs, s)
	}
	start := time.Date(2024, 1, 1, 23, 0, 0, 0, time.UTC)
	for _, s := range specs {
		last := int64(-1)
		for i := range 200 {
			now := start.Add(time.Duration(i) * 3 * time.Minute)
			v := s.Version(now, p.Interval())
			if v < 0 || v < last {
				t.Fatalf("%s at %s: version %d after %d", s.Key(), now, v, last)
			}
			last = v
		}
	}
	year1, _ := RangeParser{}.ParseSpec("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z")
	if v := year1.Version(start, time.Second); v != 0 {
		t.Fatalf("a year-1 range has version %d, want 0", v)
	}
}

type zeroAggregator struct{}

func (zeroAggregator) Aggregate(_ context.Context, _ string, ivs []Interval) ([]Summary, error) {
	return make([]Summary, len(ivs)), nil
}

// TestSeriesLabelsStayWithinTheCalendar: a label is the bucket's start
// on the zone's wall clock in RFC 3339, which has four-digit years. A
// range whose buckets start before 0001 or after 9999 there is a 400
// naming the zone; the same range in UTC, or the years just inside, work.
func TestSeriesLabelsStayWithinTheCalendar(t *testing.T) {
	p := RangeParser{}
	// Kiritimati is UTC+14 from 1995 on; before its zone existed it keeps
	// its local mean time, west of UTC, as Los Angeles does. Tokyo's is
	// east of UTC.
	kiritimati, berlin, la, tokyo := mustZone(t, "Pacific/Kiritimati"), mustZone(t, "Europe/Berlin"), mustZone(t, "America/Los_Angeles"), mustZone(t, "Asia/Tokyo")
	for _, tc := range []struct {
		from, to string
		bucket   Bucket
		loc      *time.Location
		ok       bool
	}{
		{"9999-12-28T00:00:00Z", "9999-12-31T23:59:59.999999Z", BucketDay, kiritimati, false},
		{"9999-12-31T20:00:00Z", "9999-12-31T23:59:59.999999Z", BucketHour, berlin, false},
		{"0001-01-01T00:00:00Z", "0001-01-03T00:00:00Z", BucketDay, la, false},
		{"0001-01-01T00:00:00Z", "0001-01-01T01:00:00Z", BucketMinute, la, false},
		{"9999-12-28T00:00:00Z", "9999-12-31T23:59:59.999999Z", BucketDay, time.UTC, true},
		{"9999-12-28T00:00:00Z", "9999-12-31T09:59:59.999999Z", BucketDay, kiritimati, true},
		{"9999-12-30T00:00:00Z", "9999-12-31T23:59:59.999999Z", BucketHour, la, true},
		{"0001-01-01T00:00:00Z", "0001-01-03T00:00:00Z", BucketDay, tokyo, true},
		{"0001-01-01T08:00:00Z", "0001-01-03T00:00:00Z", BucketDay, la, true},
	} {
		r, err := p.Parse(tc.from, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := Series(context.Background(), zeroAggregator{}, r, tc.bucket, tc.loc, DefaultMaxPoints)
		var pe *ParamError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s..%s by %s in %s: %v", tc.from, tc.to, tc.bucket, tc.loc, err)
		case !tc.ok && (!errors.As(err, &pe) || pe.Code != CodeInvalidRange || !strings.Contains(pe.Message, tc.loc.String())):
			t.Errorf("%s..%s by %s in %s: %v, want a 400 invalid_range naming the zone", tc.from, tc.to, tc.bucket, tc.loc, err)
		}
		for _, e := range resp.Data {
			if _, err := time.Parse(time.RFC3339, e.T); err != nil || len(e.T) < 20 || e.T[4] != '-' || strings.HasPrefix(e.T, "0000") {
				t.Errorf("%s..%s in %s: label %q is not RFC 3339 within 0001-9999", tc.from, tc.to, tc.loc, e.T)
				break
			}
		}
	}
}
