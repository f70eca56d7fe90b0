package summary

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Range is a resolved, normalized time range: absolute UTC instants with at
// most microsecond precision (PostgreSQL's), inclusive of both ends, and an
// optional event type filter ("" for every type).
type Range struct {
	From, To  time.Time
	EventType string
}

// Key is the canonical form of the range, shared by every spelling of the
// same two instants ("…T02:00:00+02:00" and "…T00:00:00Z" give one key).
func (r Range) Key() string {
	return FormatInstant(r.From) + ":" + FormatInstant(r.To) + typeKey(r.EventType)
}

// typeKey is the filter's part of a key; escaped, so that no type can
// spell another range's key.
func typeKey(eventType string) string {
	if eventType == "" {
		return ""
	}
	return ":type=" + url.QueryEscape(eventType)
}

// Span is the length of the range.
func (r Range) Span() time.Duration { return r.To.Sub(r.From) }

// FormatInstant renders t as RFC 3339 in UTC with milliseconds, or
// microseconds when t has sub-millisecond digits, so that one instant has
// exactly one spelling.
func FormatInstant(t time.Time) string {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return formatInstantSlow(t)
	}
	// By hand: every cached answer formats its range's key, and this is
	// several times cheaper than time.Format's layout interpreter.
	h, mi, sec := t.Clock()
	ns := t.Nanosecond()
	var b [27]byte
	put := func(at, v, n int) {
		for k := n - 1; k >= 0; k-- {
			b[at+k] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, int(mo), 2)
	b[7] = '-'
	put(8, d, 2)
	b[10] = 'T'
	put(11, h, 2)
	b[13] = ':'
	put(14, mi, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = '.'
	if ns%int(time.Millisecond) == 0 {
		put(20, ns/int(time.Millisecond), 3)
		b[23] = 'Z'
		return string(b[:24])
	}
	put(20, ns/int(time.Microsecond), 6)
	b[26] = 'Z'
	return string(b[:27])
}

// formatInstantSlow is FormatInstant by time.Format, for any year.
func formatInstantSlow(t time.Time) string {
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return t.Format("2006-01-02T15:04:05.000Z")
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}

// ParamError is a client error about one query parameter. Handlers turn it
// into a 400 {"error":{"code","message"}}.
type ParamError struct {
	Param   string
	Code    string
	Message string
}

func (e *ParamError) Error() string { return e.Message }

// Error codes of ParamError.
const (
	CodeMissingParameter = "missing_parameter"
	CodeInvalidParameter = "invalid_parameter"
	CodeInvalidRange     = "invalid_range"
	CodeRangeTooLarge    = "range_too_large"
)

// maxParamLen bounds what the parser looks at; no valid value is longer.
const maxParamLen = 64

// maxRelative bounds a relative offset so that arithmetic cannot overflow.
const maxRelative = 100 * 366 * 24 * time.Hour

// RangeParser resolves from/to query parameters into a Range.
type RangeParser struct {
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// Align is the step "now" is truncated to, so that every client within
	// one refresh interval resolves "now" to the same instant and shares
	// one cache key. Zero or negative disables alignment (then "now" is
	// still truncated to the millisecond).
	Align time.Duration
	// MaxRange is the longest allowed span; zero means unlimited.
	MaxRange time.Duration
}

// Interval is the refresh step: Align, or a second when unset. Snapshot
// versions count in it.
func (p RangeParser) Interval() time.Duration {
	if p.Align > 0 {
		return p.Align
	}
	return time.Second
}

// AlignedNow is the instant "now" resolves to.
func (p RangeParser) AlignedNow() time.Time {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	ms := now().UnixMilli()
	if step := p.Align.Milliseconds(); step > 0 {
		ms -= ms % step
	}
	return time.UnixMilli(ms).UTC()
}

// Parse validates and resolves the two parameters at the aligned now.
func (p RangeParser) Parse(from, to string) (Range, error) {
	spec, err := p.ParseSpec(from, to)
	if err != nil {
		return Range{}, err
	}
	return spec.Resolve(p.AlignedNow()), nil
}

// ParseSpec validates the two parameters and keeps relative ends relative,
// so that a live stream of now-24h..now can slide with time.
func (p RangeParser) ParseSpec(from, to string) (Spec, error) {
	now := p.AlignedNow()
	f, err := parsePoint("from", from)
	if err != nil {
		return Spec{}, err
	}
	t, err := parsePoint("to", to)
	if err != nil {
		return Spec{}, err
	}
	spec := Spec{From: f, To: t}
	r := spec.Resolve(now)
	if r.From.After(r.To) {
		return Spec{}, &ParamError{Param: "from", Code: CodeInvalidRange,
			Message: fmt.Sprintf("from (%s) is after to (%s)", FormatInstant(r.From), FormatInstant(r.To))}
	}
	if p.MaxRange > 0 && r.Span() > p.MaxRange {
		return Spec{}, &ParamError{Param: "to", Code: CodeRangeTooLarge,
			Message: fmt.Sprintf("range from..to spans %s, more than the maximum of %s", humanDuration(r.Span()), humanDuration(p.MaxRange))}
	}
	return spec, nil
}

// Point is one end of a range: an absolute instant, or an offset from now.
type Point struct {
	Relative bool
	Offset   time.Duration // when Relative
	At       time.Time     // when absolute (UTC)
}

func (pt Point) resolve(now time.Time) time.Time {
	if pt.Relative {
		return now.Add(pt.Offset)
	}
	return pt.At
}

func (pt Point) key() string {
	if pt.Relative {
		return "now" + strconv.FormatInt(pt.Offset.Microseconds(), 10) + "us"
	}
	return FormatInstant(pt.At)
}

// Spec is a range as asked for: relative ends stay relative.
type Spec struct {
	From, To  Point
	EventType string // "" for every type
}

// Resolve fixes the range at now (which callers align to the refresh
// interval).
func (s Spec) Resolve(now time.Time) Range {
	return Range{From: s.From.resolve(now), To: s.To.resolve(now), EventType: s.EventType}
}

// Key is canonical for the spec: "now-86400000000us:now0us" for
// now-24h..now, the Range key for absolute ranges.
func (s Spec) Key() string { return s.From.key() + ":" + s.To.key() + typeKey(s.EventType) }

// Relative reports whether either end moves with time.
func (s Spec) Relative() bool { return s.From.Relative || s.To.Relative }

// Live reports whether the range can still change at now: a relative range
// always can; an absolute one until its end has passed.
func (s Spec) Live(now time.Time) bool { return s.Relative() || !s.To.At.Before(now) }

// Tick is the index of the refresh interval that contains t, counted
// from the Unix epoch; negative before it (floored, so that an interval
// holds every instant from its start to its end, either side of 1970).
func Tick(t time.Time, interval time.Duration) int64 {
	ms, step := t.UnixMilli(), interval.Milliseconds()
	k := ms / step
	if ms%step < 0 {
		k--
	}
	return k
}

// TickTime is the instant interval k starts.
func TickTime(k int64, interval time.Duration) time.Time {
	return time.UnixMilli(k * interval.Milliseconds()).UTC()
}

// Version is the snapshot version of the spec at now, the same on every
// instance: the current interval's index for a live range, and a constant
// (one past the interval of its end) for a range that can no longer change.
// It never decreases as now advances, and it is never negative: a range
// that ended before 1970 has version 0 (it was never live, so no version
// came before it), so the stream's id and the ETag stay plain counters.
func (s Spec) Version(now time.Time, interval time.Duration) int64 {
	if s.Live(now) {
		return max(Tick(now, interval), 0)
	}
	return max(Tick(s.To.At, interval)+1, 0)
}

// parsePoint reads one parameter value: RFC 3339 with any offset and
// optional fractional seconds, or a relative time such as now, now-15m,
// now-24h, now-7d, now-1w+2h.
func parsePoint(param, s string) (Point, error) {
	if s == "" {
		return Point{}, &ParamError{Param: param, Code: CodeMissingParameter,
			Message: fmt.Sprintf("query parameter %q is required (RFC 3339 such as 2024-01-31T23:59:59Z, or relative such as now-24h)", param)}
	}
	if len(s) > maxParamLen {
		return Point{}, invalid(param, "is too long")
	}
	if strings.HasPrefix(s, "now") {
		off, err := parseOffset(s[len("now"):])
		if err != nil {
			return Point{}, invalid(param, err.Error())
		}
		return Point{Relative: true, Offset: off}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Point{}, invalid(param, "is not an RFC 3339 timestamp (2024-01-31T23:59:59Z, 2024-01-31T23:59:59.999+02:00) nor a relative time (now, now-15m, now-24h, now-7d)")
	}
	if t.Nanosecond()%int(time.Microsecond) != 0 {
		return Point{}, invalid(param, "has more precision than microseconds, which the database cannot store")
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return Point{}, invalid(param, "is outside the years 0001 to 9999")
	}
	return Point{At: t.UTC()}, nil
}

// MaxEventTypeLen is the longest event type (the column is varchar(100)).
const MaxEventTypeLen = 100

// ParseEventType validates the optional event_type filter: empty for no
// filter, else 1 to 100 characters of printable UTF-8.
func ParseEventType(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxEventTypeLen {
		return "", invalid("event_type", "must be at most 100 characters of UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "", invalid("event_type", "must not contain control characters")
		}
	}
	return s, nil
}

func invalid(param, what string) error {
	return &ParamError{Param: param, Code: CodeInvalidParameter, Message: fmt.Sprintf("query parameter %q %s", param, what)}
}

var errOffset = errors.New("has a bad relative offset: use now, or now followed by terms such as -15m, -24h, -7d, +1h (units s, m, h, d, w)")

// parseOffset parses a sequence of signed terms like "-7d+12h".
func parseOffset(s string) (time.Duration, error) {
	var total time.Duration
	for s != "" {
		sign := time.Duration(1)
		switch s[0] {
		case '-':
			sign = -1
		case '+', ' ': // '+' arrives as ' ' when the client did not escape it
		default:
			return 0, errOffset
		}
		s = s[1:]
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 || i == len(s) {
			return 0, errOffset
		}
		n, _ := strconv.Atoi(s[:i])
		var unit time.Duration
		switch s[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, errOffset
		}
		if time.Duration(n) > maxRelative/unit {
			return 0, errors.New("has a relative offset larger than 100 years")
		}
		total += sign * time.Duration(n) * unit
		if total > maxRelative || total < -maxRelative {
			return 0, errors.New("has a relative offset larger than 100 years")
		}
		s = s[i+1:]
	}
	return total, nil
}

// humanDuration prints whole days as "400d" and anything else as Go does.
func humanDuration(d time.Duration) string {
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	if d >= day {
		return fmt.Sprintf("%.1fd", float64(d)/float64(day))
	}
	return d.String()
}
