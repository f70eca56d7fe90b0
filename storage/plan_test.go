package storage

import (
	"sort"
	"testing"
	"time"
)

// checkPartition asserts that p covers [lo, hi) exactly once.
func checkPartition(t *testing.T, lo, hi time.Time, p plan, f *freshness) {
	t.Helper()
	type piece struct {
		from, to time.Time
		what     string
	}
	var pieces []piece
	for _, k := range p.Buckets {
		b := k.time()
		end := k.Grain.Next(b)
		if !f.usable(k.Grain, b, end) {
			t.Fatalf("plan uses %s bucket %s, which is not current", k.Grain, b)
		}
		if !k.Grain.Trunc(b).Equal(b) {
			t.Fatalf("%s bucket %s is not aligned", k.Grain, b)
		}
		pieces = append(pieces, piece{b, end, k.Grain.String()})
	}
	for _, r := range p.Raw {
		if !r.From.Before(r.To) {
			t.Fatalf("empty raw interval %v", r)
		}
		pieces = append(pieces, piece{r.From, r.To, "raw"})
	}
	sort.Slice(pieces, func(i, j int) bool { return pieces[i].from.Before(pieces[j].from) })
	at := lo
	for _, pc := range pieces {
		if !pc.from.Equal(at) {
			t.Fatalf("gap or overlap at %s: next piece (%s) starts %s", at, pc.what, pc.from)
		}
		at = pc.to
	}
	if lo.Before(hi) && !at.Equal(hi) {
		t.Fatalf("plan ends at %s, want %s", at, hi)
	}
	if !lo.Before(hi) && len(pieces) > 0 {
		t.Fatalf("empty interval has %d pieces", len(pieces))
	}
}

func TestDecompose(t *testing.T) {
	day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	clean := &freshness{pending: map[bucketKey]bool{}}
	cases := []struct {
		name       string
		lo, hi     time.Time
		f          *freshness
		maxBuckets int
		wantRaw    int
	}{
		{"30 days with ragged edges", day.Add(90*time.Second + 250*time.Millisecond), day.AddDate(0, 0, 30).Add(7*time.Hour + 3*time.Minute + time.Microsecond), clean, 29 + 23 + 7 + 3 + 3 + 13 + 3, 2},
		{"one whole month", day, day.AddDate(0, 1, 0), clean, 1, 0},
		{"sub-minute", day.Add(time.Second), day.Add(2 * time.Second), clean, 0, 1},
		{"empty", day, day, clean, 0, 0},
		{"a year", day.Add(-time.Hour), day.AddDate(1, 0, 0), clean, 11 + 30 + 1, 0},
		{"dirty minute inside a day", day, day.AddDate(0, 0, 1), &freshness{
			dirty: []int64{day.Add(5*time.Hour + 7*time.Minute).UnixMicro()}, pending: map[bucketKey]bool{}}, 23 + 3 + 14, 1},
		{"pending hour", day, day.Add(2 * time.Hour), &freshness{
			pending: map[bucketKey]bool{{Hour, day.Add(time.Hour).UnixMicro()}: true}}, 1 + 4, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := decompose(Interval{From: c.lo, To: c.hi}, c.f)
			checkPartition(t, c.lo, c.hi, p, c.f)
			if len(p.Buckets) > c.maxBuckets {
				t.Errorf("%d buckets, want at most %d", len(p.Buckets), c.maxBuckets)
			}
			if len(p.Raw) != c.wantRaw {
				t.Errorf("%d raw intervals, want %d: %v", len(p.Raw), c.wantRaw, p.Raw)
			}
		})
	}
}

func TestGrainsAreCalendarBuckets(t *testing.T) {
	t0 := time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC)
	for g, want := range map[Grain][2]time.Time{
		Minute:  {time.Date(2024, 2, 29, 23, 59, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		Quarter: {time.Date(2024, 2, 29, 23, 45, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		Hour:    {time.Date(2024, 2, 29, 23, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		Day:     {time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		Month:   {time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if b := g.Trunc(t0); !b.Equal(want[0]) || !g.Next(b).Equal(want[1]) {
			t.Errorf("%s: bucket [%s, %s), want [%s, %s)", g, b, g.Next(b), want[0], want[1])
		}
	}
}

// FuzzDecompose: whatever the interval and whatever is dirty or pending,
// the plan partitions the interval into current buckets and raw pieces.
func FuzzDecompose(f *testing.F) {
	f.Add(int64(0), int64(86_400_000_000), int64(3_600_000_000), uint8(1))
	f.Add(int64(1_234_567), int64(40*86_400_000_000), int64(59_999_999), uint8(2))
	f.Add(int64(-86_400_000_000), int64(1), int64(0), uint8(0))
	base := time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, from, length, dirtyAt int64, pend uint8) {
		const limit = 400 * 86_400_000_000 // 400 days in µs
		if from < -limit || from > limit || length < 0 || length > limit {
			t.Skip()
		}
		lo := base.Add(time.Duration(from) * time.Microsecond)
		hi := lo.Add(time.Duration(length) * time.Microsecond)
		fr := &freshness{pending: map[bucketKey]bool{}}
		if dirtyAt >= 0 && dirtyAt < length {
			fr.dirty = []int64{Minute.Trunc(lo.Add(time.Duration(dirtyAt) * time.Microsecond)).UnixMicro()}
		}
		if g := Grain(pend % 5); g > Minute {
			fr.pending[bucketKey{g, g.Trunc(lo.Add(time.Duration(length/2) * time.Microsecond)).UnixMicro()}] = true
		}
		checkPartition(t, lo, hi, decompose(Interval{From: lo, To: hi}, fr), fr)
	})
}

// TestDecomposeOffsetHours: an hour of a zone offset by :30 or :45 is one
// bucket of its grain when that bucket is current, 4 quarters when it is
// pending or a minute in it is dirty, and any other hour-long interval is
// left to the hierarchy.
func TestDecomposeOffsetHours(t *testing.T) {
	h := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	clean := &freshness{pending: map[bucketKey]bool{}}
	for _, c := range []struct {
		name  string
		from  time.Time
		f     *freshness
		grain Grain
		n     int
	}{
		{"Kolkata hour", h.Add(30 * time.Minute), clean, HourAt30, 1},
		{"Kathmandu hour (+05:45: local hours start at :15 UTC)", h.Add(15 * time.Minute), clean, HourAt15, 1},
		{"UTC hour", h, clean, Hour, 1},
		{"Kolkata hour, pending", h.Add(30 * time.Minute), &freshness{pending: map[bucketKey]bool{{HourAt30, h.Add(30 * time.Minute).UnixMicro()}: true}}, Quarter, 4},
		{"Kathmandu hour, a dirty minute", h.Add(15 * time.Minute), &freshness{pending: map[bucketKey]bool{}, dirty: []int64{h.Add(20 * time.Minute).UnixMicro()}}, Quarter, 3},
		{"an hour at :45", h.Add(45 * time.Minute), clean, Quarter, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			to := c.from.Add(time.Hour)
			p := decompose(Interval{From: c.from, To: to}, c.f)
			checkPartition(t, c.from, to, p, c.f)
			n := 0
			for _, k := range p.Buckets {
				if k.Grain == c.grain {
					n++
				}
			}
			if n != c.n {
				t.Fatalf("plan %+v: %d %s buckets, want %d", p, n, c.grain, c.n)
			}
			if c.n == 1 && !p.countOnly() {
				t.Fatalf("plan %+v: one bucket should need no bitmap", p)
			}
		})
	}
	for _, g := range []Grain{HourAt30, HourAt15} {
		at := h.Add(g.offset() + 20*time.Minute)
		if b := g.Trunc(at); !b.Equal(h.Add(g.offset())) || !g.Next(b).Equal(b.Add(time.Hour)) {
			t.Fatalf("%s: Trunc(%s) = %s", g, at, b)
		}
		if b := g.Trunc(h.Add(10 * time.Minute)); !b.Equal(h.Add(g.offset() - time.Hour)) {
			t.Fatalf("%s: Trunc(10:10) = %s", g, b)
		}
	}
}
