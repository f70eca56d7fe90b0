package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestDecode(t *testing.T) {
	evs, bad, err := Decode(JSONArray, strings.NewReader(`[{"user_id":"u1","event_type":"page_view","created_at":"2024-05-01T13:59:59.1234567+02:00","extra":1},{"user_id":"ü","event_type":"a.b:c-d_1"}]`), now)
	if err != nil || len(bad) != 0 || len(evs) != 2 {
		t.Fatalf("%v %v %v", evs, bad, err)
	}
	if want := time.Date(2024, 5, 1, 11, 59, 59, 123456000, time.UTC); !evs[0].CreatedAt.Equal(want) || evs[1].CreatedAt != now {
		t.Fatalf("times: %v %v", evs[0].CreatedAt, evs[1].CreatedAt)
	}
	_, bad, err = Decode(NDJSON, strings.NewReader("{\"user_id\":\"a\",\"event_type\":\"x\",\"created_at\":\"2024-05-01T12:06:00Z\"}\n{\"user_id\":\"a\\u0000b\",\"event_type\":\"x\"}\n"), now)
	if err != nil || len(bad) != 2 || bad[0].Field != "created_at" || bad[1].Field != "user_id" || bad[1].Index != 1 {
		t.Fatalf("NDJSON with bad items: %+v %v", bad, err)
	}
	if _, err := ParseContentType("application/json; charset=utf-8"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseContentType("text/plain"); err != ErrUnsupportedMedia {
		t.Fatal("text/plain accepted")
	}
}

// TestDecodeRefusesWhatJSONWouldReplace: encoding/json turns a byte
// sequence that is not UTF-8, and an unpaired surrogate escape, into
// U+FFFD, so different raw ids would collapse into one user. Each is an
// item error naming the event and the field, in both formats; a proper
// pair, a literal U+FFFD and its escape are ordinary text.
func TestDecodeRefusesWhatJSONWouldReplace(t *testing.T) {
	for _, tc := range []struct {
		name, field, value, reason string
	}{
		{"bytes", "user_id", "a\xff\xfeb", reasonBadUTF8},
		{"truncated sequence", "user_id", "a\xe2\x82", reasonBadUTF8},
		{"encoded surrogate", "user_id", "a\xed\xa0\x80b", reasonBadUTF8},
		{"overlong", "user_id", "\xc0\xaf", reasonBadUTF8},
		{"lone high surrogate", "user_id", `a\ud800b`, reasonSurrogate},
		{"lone low surrogate", "user_id", `a\udc00`, reasonSurrogate},
		{"high at the end", "user_id", `a\uD83D`, reasonSurrogate},
		{"two highs", "user_id", `\ud83d\ud83d\ude00`, reasonSurrogate},
		{"reversed pair", "user_id", `\ude00\ud83d`, reasonSurrogate},
		{"event type bytes", "event_type", "click\xff", reasonBadUTF8},
		{"event type surrogate", "event_type", `click\udfff`, reasonSurrogate},
		{"created_at bytes", "created_at", "2024-05-01T00:00:00Z\xff", reasonBadUTF8},
	} {
		ev := map[string]string{"user_id": "u", "event_type": "click"}
		ev[tc.field] = tc.value
		obj := "{"
		for _, k := range []string{"user_id", "event_type", "created_at"} {
			if v, ok := ev[k]; ok {
				obj += `"` + k + `":"` + v + `",`
			}
		}
		obj = strings.TrimSuffix(obj, ",") + "}"
		good := `{"user_id":"u","event_type":"click"}`
		for _, f := range []struct {
			format Format
			body   string
		}{
			{JSONArray, "[" + good + "," + obj + "]"},
			{NDJSON, good + "\n" + obj + "\n"},
		} {
			evs, bad, err := Decode(f.format, strings.NewReader(f.body), now)
			if err != nil || len(evs) != 0 || len(bad) != 1 || bad[0].Index != 1 || bad[0].Field != tc.field || bad[0].Reason != tc.reason {
				t.Errorf("%s (format %d): events %q, problems %+v, error %v; want one problem for event 1's %s", tc.name, f.format, evs, bad, err, tc.field)
			}
		}
	}
	// Valid text stays, and stays distinct.
	body := `[{"user_id":"\ud83d\ude00","event_type":"a"},{"user_id":"\uD83D\uDE00x","event_type":"a"},{"user_id":"` + "\xef\xbf\xbd" + `","event_type":"a"},{"user_id":"\ufffd!","event_type":"a"},{"user_id":"\\ud800","event_type":"a"}]`
	evs, bad, err := Decode(JSONArray, strings.NewReader(body), now)
	if err != nil || len(bad) != 0 || len(evs) != 5 {
		t.Fatalf("valid text: %v %+v %v", evs, bad, err)
	}
	for i, want := range []string{"😀", "😀x", "\ufffd", "\ufffd!", `\ud800`} {
		if evs[i].UserID != want {
			t.Errorf("event %d: user_id %q, want %q", i, evs[i].UserID, want)
		}
	}
	// A non-string is still a body error naming the field.
	if _, _, err := Decode(JSONArray, strings.NewReader(`[{"user_id":5,"event_type":"a"}]`), now); err == nil || !strings.Contains(err.Error(), `field "user_id" must be a string`) {
		t.Errorf("a number as user_id: %v", err)
	}
}

// FuzzDecode: any body gives events that are all valid, or reasons, or a
// body error; never a panic, never both events and reasons.
func FuzzDecode(f *testing.F) {
	f.Add(`[{"user_id":"u","event_type":"click"}]`, false)
	f.Add(`{"user_id":"u","event_type":"click","created_at":"2024-01-01T00:00:00Z"}`+"\n", true)
	f.Add(`[{"user_id":"","event_type":"X"},{"user_id":null}]`, false)
	f.Add(`[`, false)
	f.Add("{\"user_id\":\"\\ud800\",\"event_type\":\"a\"}\n{}", true)
	f.Add("[{\"user_id\":\"a\xff\xfeb\",\"event_type\":\"a\"}]", false)
	f.Add("{\"user_id\":\"a\\ud800b\",\"event_type\":\"a\"}", true)
	f.Add("[{\"user_id\":\"\\ud83d\\ude00\",\"event_type\":\"a\"}]", false)
	f.Fuzz(func(t *testing.T, body string, ndjson bool) {
		format := JSONArray
		if ndjson {
			format = NDJSON
		}
		evs, bad, err := Decode(format, strings.NewReader(body), now)
		if err != nil && (evs != nil || bad != nil) {
			t.Fatal("an error with results")
		}
		if len(bad) > 0 && len(evs) > 0 {
			t.Fatal("events returned next to invalid items")
		}
		if len(evs) > MaxEvents || len(bad) > maxItemErrors {
			t.Fatal("over the limits")
		}
		for _, e := range evs {
			if e.UserID == "" || utf8.RuneCountInString(e.UserID) > MaxUserIDLen || !utf8.ValidString(e.UserID) || strings.ContainsRune(e.UserID, 0) {
				t.Fatalf("bad user_id accepted: %q", e.UserID)
			}
			// U+FFFD in an accepted id must have been sent as such, not
			// made up by the decoder for bytes it could not read.
			if strings.ContainsRune(e.UserID, utf8.RuneError) && !strings.Contains(body, "\ufffd") && !strings.Contains(strings.ToLower(body), `\ufffd`) {
				t.Fatalf("user_id %q holds U+FFFD that the body never spelled", e.UserID)
			}
			if !validType(e.EventType) {
				t.Fatalf("bad event_type accepted: %q", e.EventType)
			}
			if e.CreatedAt.After(now.Add(MaxFuture)) || e.CreatedAt.Nanosecond()%1000 != 0 {
				t.Fatalf("bad created_at accepted: %v", e.CreatedAt)
			}
		}
	})
}

// BenchmarkDecode decodes a full batch (10,000 events, about 1 MB): the
// ingest endpoint's cost before the database.
func BenchmarkDecode(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[")
	for i := range MaxEvents {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"user_id":"user-%d-ü","event_type":"page_view","created_at":"2024-05-01T11:%02d:%02d.123Z"}`, i, i/60%60, i%60)
	}
	sb.WriteString("]")
	body := sb.String()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		evs, bad, err := Decode(JSONArray, strings.NewReader(body), now)
		if err != nil || len(bad) != 0 || len(evs) != MaxEvents {
			b.Fatal(err, bad)
		}
	}
}

// FuzzUnquote: the strict decoder of a string literal agrees with
// encoding/json on every literal it accepts, and refuses only literals
// that encoding/json would have decoded with a U+FFFD it made up.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{"abc", `a\"b\\c\/d\b\f\n\r\t`, `\u00fc\u20AC`, `\ud83d\ude00`, `\ud800`, `\udc00\ud800`, "a\xffb", "\xed\xa0\x80", `\ufffd`, "ü€😀", `\ud83d\u0041`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := []byte(`"` + s + `"`)
		if !json.Valid(lit) {
			return // the decoder never hands such a literal over
		}
		var want string
		if err := json.Unmarshal(lit, &want); err != nil {
			t.Fatal(err)
		}
		got, bad := unquote([]byte(s))
		switch {
		case bad == "" && got != want:
			t.Fatalf("%q: got %q, encoding/json %q", s, got, want)
		case bad != "" && !strings.ContainsRune(want, utf8.RuneError):
			t.Fatalf("%q refused (%s), but encoding/json reads it as %q without replacing anything", s, bad, want)
		}
	})
}
