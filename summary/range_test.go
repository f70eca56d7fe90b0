package summary

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var fixedNow = time.Date(2024, 3, 10, 12, 34, 56, 789_000_000, time.UTC)

func testParser() RangeParser {
	return RangeParser{Now: func() time.Time { return fixedNow }, Align: 5 * time.Second, MaxRange: 400 * 24 * time.Hour}
}

func TestParseRange(t *testing.T) {
	aligned := time.Date(2024, 3, 10, 12, 34, 55, 0, time.UTC)
	tests := []struct {
		name, from, to string
		wantFrom       string
		wantTo         string
		wantCode       string
		wantParam      string
	}{
		{"utc", "2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z", "2024-01-01T00:00:00.000Z", "2024-01-31T23:59:59.000Z", "", ""},
		{"offset", "2024-01-01T02:00:00+02:00", "2024-01-01T00:00:00-05:00", "2024-01-01T00:00:00.000Z", "2024-01-01T05:00:00.000Z", "", ""},
		{"millis", "2024-01-01T00:00:00.123Z", "2024-01-01T00:00:00.999Z", "2024-01-01T00:00:00.123Z", "2024-01-01T00:00:00.999Z", "", ""},
		{"micros", "2024-01-01T00:00:00.123456Z", "2024-01-01T00:00:00.1234567Z", "", "", CodeInvalidParameter, "to"},
		{"micros ok", "2024-01-01T00:00:00.000001Z", "2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00.000001Z", "2024-01-01T00:00:00.500Z", "", ""},
		{"equal ends", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z", "", ""},
		{"now", "now-24h", "now", "2024-03-09T12:34:55.000Z", "2024-03-10T12:34:55.000Z", "", ""},
		{"now minutes", "now-15m", "now", "2024-03-10T12:19:55.000Z", aligned.Format("2006-01-02T15:04:05.000Z"), "", ""},
		{"now days", "now-7d", "now-1d", "2024-03-03T12:34:55.000Z", "2024-03-09T12:34:55.000Z", "", ""},
		{"now compound", "now-1w+2h", "now+30s", "2024-03-03T14:34:55.000Z", "2024-03-10T12:35:25.000Z", "", ""},
		{"plus as space", "now-2h", "now 1h", "2024-03-10T10:34:55.000Z", "2024-03-10T13:34:55.000Z", "", ""},
		{"missing from", "", "now", "", "", CodeMissingParameter, "from"},
		{"missing to", "now-1h", "", "", "", CodeMissingParameter, "to"},
		{"garbage", "yesterday", "now", "", "", CodeInvalidParameter, "from"},
		{"date only", "2024-01-01", "now", "", "", CodeInvalidParameter, "from"},
		{"no zone", "2024-01-01T00:00:00", "now", "", "", CodeInvalidParameter, "from"},
		{"bad unit", "now-3y", "now", "", "", CodeInvalidParameter, "from"},
		{"no number", "now-d", "now", "", "", CodeInvalidParameter, "from"},
		{"trailing", "now-1h-", "now", "", "", CodeInvalidParameter, "from"},
		{"huge", "now-999999999d", "now", "", "", CodeInvalidParameter, "from"},
		{"year zero", "0001-01-01T00:30:00+01:00", "now", "", "", CodeInvalidParameter, "from"},
		{"bad month", "2024-13-01T00:00:00Z", "now", "", "", CodeInvalidParameter, "from"},
		{"too long", strings.Repeat("9", 100), "now", "", "", CodeInvalidParameter, "from"},
		{"reversed", "2024-02-01T00:00:00Z", "2024-01-01T00:00:00Z", "", "", CodeInvalidRange, "from"},
		{"reversed by 1ms", "2024-01-01T00:00:00.001Z", "2024-01-01T00:00:00Z", "", "", CodeInvalidRange, "from"},
		{"too large", "2022-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "", "", CodeRangeTooLarge, "to"},
		{"exactly max", "2023-01-01T00:00:00Z", "2024-02-05T00:00:00Z", "2023-01-01T00:00:00.000Z", "2024-02-05T00:00:00.000Z", "", ""},
		{"max plus 1ms", "2023-01-01T00:00:00Z", "2024-02-05T00:00:00.001Z", "", "", CodeRangeTooLarge, "to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := testParser().Parse(tt.from, tt.to)
			if tt.wantCode != "" {
				var pe *ParamError
				if !errors.As(err, &pe) {
					t.Fatalf("want %s error, got %v (range %v)", tt.wantCode, err, r)
				}
				if pe.Code != tt.wantCode || pe.Param != tt.wantParam {
					t.Fatalf("got code %s param %s (%s), want %s %s", pe.Code, pe.Param, pe.Message, tt.wantCode, tt.wantParam)
				}
				if !strings.Contains(pe.Message, tt.wantParam) {
					t.Errorf("message %q does not name the parameter %q", pe.Message, tt.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatInstant(r.From); got != tt.wantFrom {
				t.Errorf("from = %s, want %s", got, tt.wantFrom)
			}
			if got := FormatInstant(r.To); got != tt.wantTo {
				t.Errorf("to = %s, want %s", got, tt.wantTo)
			}
		})
	}
}

func TestKeyIsCanonical(t *testing.T) {
	p := testParser()
	spellings := [][2]string{
		{"2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"},
		{"2024-01-01T02:00:00+02:00", "2024-01-01T19:00:00-05:00"},
		{"2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000000Z"},
		{"2023-12-31T23:00:00-01:00", "2024-01-02T05:30:00+05:30"},
	}
	want := "2024-01-01T00:00:00.000Z:2024-01-02T00:00:00.000Z"
	for _, s := range spellings {
		r, err := p.Parse(s[0], s[1])
		if err != nil {
			t.Fatal(err)
		}
		if r.Key() != want {
			t.Errorf("%v: key %s, want %s", s, r.Key(), want)
		}
	}
}

func TestNowIsAlignedToTheInterval(t *testing.T) {
	// Every client within one refresh interval shares one key.
	base := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	var first string
	for _, off := range []time.Duration{0, time.Millisecond, 2 * time.Second, 4999 * time.Millisecond} {
		p := RangeParser{Now: func() time.Time { return base.Add(off) }, Align: 5 * time.Second}
		r, err := p.Parse("now-1h", "now")
		if err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = r.Key()
		} else if r.Key() != first {
			t.Errorf("offset %s: key %s differs from %s", off, r.Key(), first)
		}
	}
	p := RangeParser{Now: func() time.Time { return base.Add(5 * time.Second) }, Align: 5 * time.Second}
	r, _ := p.Parse("now-1h", "now")
	if r.Key() == first {
		t.Error("the next interval must give a new key")
	}
}

func TestTypeCountsJSONKeepsOrder(t *testing.T) {
	tc := TypeCounts{{"b", 5}, {"a", 5}, {"c", 9}, {`q"uote`, 1}}
	tc.Sort()
	b, err := tc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"c":9,"a":5,"b":5,"q\"uote":1}`; string(b) != want {
		t.Fatalf("got %s want %s", b, want)
	}
	var back TypeCounts
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if len(back) != 4 || back[0] != (TypeCount{"c", 9}) || back[3] != (TypeCount{`q"uote`, 1}) {
		t.Fatalf("round trip: %v", back)
	}
	if b, _ := (TypeCounts{}).MarshalJSON(); string(b) != "{}" {
		t.Fatalf("empty: %s", b)
	}
}

// FuzzParseRange checks that no input panics, that accepted ranges are
// ordered, within the limit and microsecond-precise, and that the canonical
// form parses back to the same range.
func FuzzParseRange(f *testing.F) {
	for _, s := range [][2]string{
		{"2024-01-01T00:00:00Z", "2024-01-31T23:59:59.999Z"},
		{"2024-01-01T02:00:00+02:00", "now"},
		{"now-15m", "now"}, {"now-7d+1h", "now-1s"}, {"now 1h", "now"}, {"", ""}, {"0001-01-01T00:30:00+01:00", "9999-12-31T23:00:00-02:00"},
		{"2024-01-01T00:00:00.123456789Z", "now-999999999w"},
	} {
		f.Add(s[0], s[1])
	}
	p := testParser()
	f.Fuzz(func(t *testing.T, from, to string) {
		r, err := p.Parse(from, to)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Code == "" || pe.Message == "" || (pe.Param != "from" && pe.Param != "to") {
				t.Fatalf("error without code/param: %#v", err)
			}
			return
		}
		if r.From.After(r.To) || r.Span() > p.MaxRange {
			t.Fatalf("accepted a bad range %v", r)
		}
		if r.From.Nanosecond()%1000 != 0 || r.To.Nanosecond()%1000 != 0 {
			t.Fatalf("sub-microsecond instant %v", r)
		}
		back, err := p.Parse(FormatInstant(r.From), FormatInstant(r.To))
		if err != nil || back.Key() != r.Key() || !back.From.Equal(r.From) || !back.To.Equal(r.To) {
			t.Fatalf("canonical form does not round-trip: %v -> %v (%v)", r, back, err)
		}
	})
}

func TestSpecSlidesWithTimeUnderOneKey(t *testing.T) {
	p := testParser()
	spec, err := p.ParseSpec("now-24h", "now")
	if err != nil {
		t.Fatal(err)
	}
	if !spec.Relative() || spec.Key() != "now-86400000000us:now0us" {
		t.Fatalf("key %s", spec.Key())
	}
	a := spec.Resolve(fixedNow.Truncate(5 * time.Second))
	b := spec.Resolve(fixedNow.Truncate(5 * time.Second).Add(5 * time.Second))
	if b.From.Sub(a.From) != 5*time.Second || b.Span() != 24*time.Hour {
		t.Fatalf("%v then %v", a, b)
	}
	abs, err := p.ParseSpec("2024-01-01T02:00:00+02:00", "2024-01-02T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if abs.Relative() || abs.Key() != "2024-01-01T00:00:00.000Z:2024-01-02T00:00:00.000Z" {
		t.Fatalf("absolute key %s", abs.Key())
	}
}

// FuzzFormatInstant: the hand-written formatter writes what time.Format
// writes, for any instant (years outside 0–9999 take time.Format itself).
func FuzzFormatInstant(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1_700_000_000), int64(123_000_000))
	f.Add(int64(1_700_000_000), int64(123_456_789))
	f.Add(int64(-62_135_596_800), int64(1_000))       // 0001-01-01
	f.Add(int64(253_402_300_799), int64(999_999_999)) // 9999-12-31T23:59:59
	f.Add(int64(-70_000_000_000), int64(5))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		at := time.Unix(sec, nsec%int64(time.Second))
		if got, want := FormatInstant(at), formatInstantSlow(at.UTC()); got != want {
			t.Fatalf("FormatInstant(%v) = %q, want %q", at, got, want)
		}
	})
}
