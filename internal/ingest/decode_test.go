package ingest

import (
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

// FuzzDecode: any body gives events that are all valid, or reasons, or a
// body error; never a panic, never both events and reasons.
func FuzzDecode(f *testing.F) {
	f.Add(`[{"user_id":"u","event_type":"click"}]`, false)
	f.Add(`{"user_id":"u","event_type":"click","created_at":"2024-01-01T00:00:00Z"}`+"\n", true)
	f.Add(`[{"user_id":"","event_type":"X"},{"user_id":null}]`, false)
	f.Add(`[`, false)
	f.Add("{\"user_id\":\"\\ud800\",\"event_type\":\"a\"}\n{}", true)
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
			if !validType(e.EventType) {
				t.Fatalf("bad event_type accepted: %q", e.EventType)
			}
			if e.CreatedAt.After(now.Add(MaxFuture)) || e.CreatedAt.Nanosecond()%1000 != 0 {
				t.Fatalf("bad created_at accepted: %v", e.CreatedAt)
			}
		}
	})
}
