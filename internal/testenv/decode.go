package testenv

import (
	"encoding/json"
	"testing"
	"time"
)

// Status is the data of a stream's `event: status` as a client reads it.
type Status struct {
	State      string  `json:"state"`
	Since      string  `json:"since"`
	ComputedAt *string `json:"computedAt"`
	Reason     string  `json:"reason"`
}

// Decode unmarshals the JSON s into a T, failing the test when it cannot.
func Decode[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// Millis parses an RFC 3339 instant with milliseconds, as the server
// writes them, failing the test on any other form.
func Millis(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", s)
	if err != nil {
		t.Fatalf("%q is not RFC 3339 with milliseconds: %v", s, err)
	}
	return at
}
