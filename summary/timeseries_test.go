package summary

import (
	"testing"
	"time"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := ParseZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// checkBuckets asserts the invariants every series has: contiguous,
// covering [from, to) exactly, each bucket starting on a wall-clock
// boundary of loc.
func checkBuckets(t *testing.T, from, to time.Time, b Bucket, loc *time.Location, pts []SeriesPoint) {
	t.Helper()
	at := from
	for i, p := range pts {
		if !p.From.Equal(at) {
			t.Fatalf("point %d starts %s, want %s", i, p.From, at)
		}
		if !p.From.Before(p.To) {
			t.Fatalf("point %d is empty: %+v", i, p)
		}
		if p.Start.After(p.From) {
			t.Fatalf("point %d: label %s after its data %s", i, p.Start, p.From)
		}
		lt := p.Start.In(loc)
		if lt.Second() != 0 || lt.Nanosecond() != 0 || (b != BucketMinute && lt.Minute() != 0) {
			t.Fatalf("point %d label %s is not on a %s boundary in %s", i, lt, b, loc)
		}
		if d := p.To.Sub(p.From); d > 25*time.Hour {
			t.Fatalf("point %d lasts %s", i, d)
		}
		at = p.To
	}
	if from.Before(to) && !at.Equal(to) {
		t.Fatalf("series ends %s, want %s", at, to)
	}
}

func TestBucketsAcrossDST(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	// The spring-forward day has 23 hours, the fall-back day 25.
	for _, c := range []struct {
		day   time.Time
		hours time.Duration
	}{
		{time.Date(2024, 3, 31, 0, 0, 0, 0, berlin), 23},
		{time.Date(2024, 10, 27, 0, 0, 0, 0, berlin), 25},
		{time.Date(2024, 6, 1, 0, 0, 0, 0, berlin), 24},
	} {
		from, to := c.day, c.day.AddDate(0, 0, 1)
		pts, err := Buckets(from, to, BucketDay, berlin, 10)
		if err != nil || len(pts) != 1 {
			t.Fatalf("%s: %d points, %v", c.day, len(pts), err)
		}
		if d := pts[0].To.Sub(pts[0].From); d != c.hours*time.Hour {
			t.Errorf("%s lasts %s, want %dh", c.day.Format("2006-01-02"), d, c.hours)
		}
		hours, err := Buckets(from, to, BucketHour, berlin, 100)
		if err != nil || len(hours) != int(c.hours) {
			t.Errorf("%s: %d hour buckets, want %d (%v)", c.day.Format("2006-01-02"), len(hours), c.hours, err)
		}
		checkBuckets(t, from, to, BucketHour, berlin, hours)
	}
}

func TestBucketsInHalfHourZone(t *testing.T) {
	kolkata := mustZone(t, "Asia/Kolkata")
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // 05:30 in Kolkata
	pts, err := Buckets(from, from.Add(3*time.Hour), BucketHour, kolkata, 10)
	if err != nil {
		t.Fatal(err)
	}
	checkBuckets(t, from, from.Add(3*time.Hour), BucketHour, kolkata, pts)
	// 05:30-06:00 is clipped, then whole local hours, then 08:00-08:30.
	if len(pts) != 4 || pts[0].To.Sub(pts[0].From) != 30*time.Minute || pts[1].From.UTC().Minute() != 30 {
		t.Fatalf("Kolkata hours: %+v", pts)
	}
	if pts[0].Start.In(kolkata).Format("15:04") != "05:00" {
		t.Fatalf("first label %s, want the aligned 05:00", pts[0].Start.In(kolkata))
	}
}

func TestBucketsLimitsAndZones(t *testing.T) {
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := Buckets(from, from.AddDate(0, 0, 30), BucketMinute, time.UTC, DefaultMaxPoints); err != ErrTooManyPoints {
		t.Fatalf("30 days of minutes: %v, want ErrTooManyPoints", err)
	}
	for _, bad := range []string{"Mars/Olympus", "Local", "../../etc/passwd", "Europe/Berlin\x00", "europe/berlin "} {
		if _, err := ParseZone(bad); err == nil {
			t.Errorf("ParseZone(%q) accepted", bad)
		}
	}
	for _, good := range []string{"", "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"} {
		if _, err := ParseZone(good); err != nil {
			t.Errorf("ParseZone(%q): %v", good, err)
		}
	}
	if _, err := ParseBucket("week"); err == nil {
		t.Error("bucket=week accepted")
	}
	for span, want := range map[time.Duration]Bucket{time.Hour: BucketMinute, 24 * time.Hour: BucketHour, 30 * 24 * time.Hour: BucketDay} {
		if got := AutoBucket(span); got != want {
			t.Errorf("AutoBucket(%s) = %s, want %s", span, got, want)
		}
	}
}

// FuzzBuckets: any range, bucket and zone gives a contiguous, exact,
// aligned series or a clean error.
func FuzzBuckets(f *testing.F) {
	f.Add(int64(0), int64(3600_000_000), "hour", "Europe/Berlin")
	f.Add(int64(1_711_846_800_000_000), int64(86_400_000_000), "day", "Europe/Berlin")
	f.Add(int64(1_700_000_000_123_456), int64(7_200_000_000), "minute", "Australia/Lord_Howe")
	f.Add(int64(-1_000_000), int64(5), "", "Asia/Kolkata")
	f.Fuzz(func(t *testing.T, fromMicros, lengthMicros int64, bucket, zone string) {
		const limit = 300 * 365 * 86_400_000_000 // ~300 years either side of 1970
		if fromMicros < -limit || fromMicros > limit || lengthMicros < 0 || lengthMicros > 60*86_400_000_000 {
			t.Skip()
		}
		b, err := ParseBucket(bucket)
		if err != nil {
			return
		}
		loc, err := ParseZone(zone)
		if err != nil {
			return
		}
		from := time.UnixMicro(fromMicros).UTC()
		to := from.Add(time.Duration(lengthMicros) * time.Microsecond)
		if b == "" {
			b = AutoBucket(to.Sub(from))
		}
		pts, err := Buckets(from, to, b, loc, DefaultMaxPoints)
		if err == ErrTooManyPoints {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkBuckets(t, from, to, b, loc, pts)
	})
}
