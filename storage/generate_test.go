package storage

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// history draws the events of a model's history as Seed writes them (one
// picker, hour by hour), without a database: their hours and users.
func history(m Model, seed uint64) (hours []int, users []string) {
	p := newPicker(seed, m.Users, DefaultTypes)
	var done int64
	for h, n := range m.PerHour() {
		for range n {
			done++
			hours = append(hours, h)
			users = append(users, m.user(p, done))
		}
	}
	return hours, users
}

func distinct(users []string) int {
	seen := map[string]struct{}{}
	for _, u := range users {
		seen[u] = struct{}{}
	}
	return len(seen)
}

// A Wednesday midnight UTC: the 28 days before it are four whole weeks.
var modelEnd = time.Date(2024, 6, 12, 0, 0, 0, 0, time.UTC)

func TestModelRhythm(t *testing.T) {
	m := NewModel(modelEnd, 28, 2_000_000, 50_000, false)
	per := m.PerHour()
	var sum int64
	byHour := make([]float64, 24)
	byDay := map[time.Weekday]float64{}
	weeks := make([]float64, 4)
	for i, n := range per {
		sum += n
		at := m.Start.Add(time.Duration(i) * time.Hour)
		byHour[at.Hour()] += float64(n)
		byDay[at.Weekday()] += float64(n)
		weeks[i/(7*24)] += float64(n)
	}
	if sum != m.Events {
		t.Fatalf("the hours add up to %d, want %d", sum, m.Events)
	}
	// Day: the 16:00 peak is about 1/0.15 of the 04:00 trough.
	if r := byHour[16] / byHour[4]; r < 4 || r > 8 {
		t.Errorf("peak/trough hour = %.2f, want 4..8 (%v)", r, byHour)
	}
	// Week: a weekday is about 1.75 times a weekend day.
	weekday := (byDay[time.Monday] + byDay[time.Tuesday] + byDay[time.Wednesday] + byDay[time.Thursday]) / 4
	weekend := (byDay[time.Saturday] + byDay[time.Sunday]) / 2
	if r := weekday / weekend; r < 1.5 || r > 2.1 {
		t.Errorf("weekday/weekend = %.2f, want 1.5..2.1", r)
	}
	// Growth: mild, about 15% a month, so the last week is ~10% above the first.
	if r := weeks[3] / weeks[0]; r < 1.05 || r > 1.2 {
		t.Errorf("last week/first week = %.3f, want 1.05..1.2", r)
	}
	// The uniform shape has the day rhythm only.
	u := NewModel(modelEnd, 28, 2_000_000, 50_000, true)
	sum = 0
	byDay = map[time.Weekday]float64{}
	for i, n := range u.PerHour() {
		sum += n
		byDay[u.Start.Add(time.Duration(i)*time.Hour).Weekday()] += float64(n)
	}
	if sum != u.Events || math.Abs(byDay[time.Sunday]/byDay[time.Wednesday]-1) > 0.001 {
		t.Errorf("uniform: %d events, Sunday/Wednesday %.3f", sum, byDay[time.Sunday]/byDay[time.Wednesday])
	}
}

func TestModelUsersGrowWithVolume(t *testing.T) {
	m := NewModel(modelEnd, 28, 600_000, 20_000, false)
	hours, users := history(m, 7)
	nh := len(m.PerHour())
	last := func(h int) []string { // the users of the last h hours
		i, _ := slices.BinarySearch(hours, nh-h)
		return users[i:]
	}
	d1, d7, d28 := distinct(last(24)), distinct(last(7*24)), distinct(users)
	t.Logf("distinct users of %d events: last 24h %d, 7d %d, 28d %d (pool %d)", len(users), d1, d7, d28, m.Users)
	// Not a flat cap: distinct users grow with the range as a product's
	// do (daily over weekly actives, "stickiness", of 15% to 60%; weekly
	// over monthly below 70%), and the pool at the end is about Users.
	if r1, r7 := float64(d1)/float64(d7), float64(d7)/float64(d28); r1 < 0.15 || r1 > 0.6 || r7 > 0.7 {
		t.Errorf("distinct users: 24h %d, 7d %d, 28d %d; want them to grow with the range", d1, d7, d28)
	}
	if d28 < m.Users/2 || d28 > m.Users {
		t.Errorf("distinct users over the history %d, pool %d", d28, m.Users)
	}
	// Busy hours have more users than quiet ones.
	byHour := map[int][]string{}
	for i, h := range hours {
		if h >= nh-24*7 {
			byHour[h%24] = append(byHour[h%24], users[i])
		}
	}
	if q, b := distinct(byHour[4]), distinct(byHour[16]); float64(b) < 2*float64(q) {
		t.Errorf("distinct users at 16:00 %d, at 04:00 %d", b, q)
	}
	// Skewed: the busiest tenth of the users make far more than a tenth.
	count := map[string]int{}
	for _, u := range users {
		count[u]++
	}
	ns := make([]int, 0, len(count))
	for _, n := range count {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	slices.Reverse(ns)
	top := 0
	for _, n := range ns[:len(ns)/10] {
		top += n
	}
	share := float64(top) / float64(len(users))
	t.Logf("the busiest tenth of users make %.2f of the events", share)
	if share < 0.3 {
		t.Errorf("the top tenth of users make %.2f of the events", share)
	}
	// Deterministic: the same seed draws the same users.
	if _, again := history(m, 7); !slices.Equal(users, again) {
		t.Error("the same seed drew other users")
	}
}

// TestLiveContinuesHistory: the live events of the hour after the
// history come at the rate the history had at that hour the day before
// (and close to its last hour's), from users that keep joining.
func TestLiveContinuesHistory(t *testing.T) {
	m := NewModel(modelEnd.Add(16*time.Hour+20*time.Minute), 28, 3_000_000, 50_000, false)
	per := m.PerHour()
	sameHourYesterday := float64(per[len(per)-24])
	lastHour := float64(per[len(per)-1])
	live := m.Live(3, nil)
	var n int
	var users []string
	for s := range 3600 {
		at := m.End.Add(time.Duration(s+1) * time.Second)
		for _, e := range live.Second(at) {
			if e.CreatedAt.After(at) || !e.CreatedAt.After(at.Add(-time.Second)) {
				t.Fatalf("event at %s outside the second before %s", e.CreatedAt, at)
			}
			users = append(users, e.UserID)
			n++
		}
	}
	t.Logf("live events in the hour after the history %d, the same hour the day before %v, the history's last hour %v", n, sameHourYesterday, lastHour)
	if r := float64(n) / sameHourYesterday; r < 0.9 || r > 1.1 {
		t.Errorf("live events in the hour after the history: %d; the same hour the day before %v (ratio %.3f)", n, sameHourYesterday, r)
	}
	if r := float64(n) / lastHour; r < 0.85 || r > 1.15 {
		t.Errorf("live events in the hour after the history: %d; its last hour %v (ratio %.3f)", n, lastHour, r)
	}
	// Returning users from the history's pool, and new ones beyond it.
	var returning, joined bool
	for _, u := range users {
		id, _ := strconv.Atoi(strings.TrimPrefix(u, "u"))
		returning = returning || id < m.Users*9/10
		joined = joined || id >= m.Users
	}
	if !returning || !joined {
		t.Errorf("live users: returning %v, new %v", returning, joined)
	}
	again := m.Live(3, nil)
	if a, b := again.Second(m.End.Add(time.Second)), m.Live(3, nil).Second(m.End.Add(time.Second)); !slices.Equal(a, b) {
		t.Error("the same seed gave other live events")
	}
}

func TestPoisson(t *testing.T) {
	p := newPicker(1, 10, DefaultTypes)
	for _, lambda := range []float64{0.05, 2, 50} {
		sum := 0
		const draws = 20_000
		for range draws {
			sum += poisson(p.rng, lambda)
		}
		if mean := float64(sum) / draws; math.Abs(mean-lambda) > 0.05*lambda+0.01 {
			t.Errorf("poisson(%v): mean %.3f", lambda, mean)
		}
	}
}
