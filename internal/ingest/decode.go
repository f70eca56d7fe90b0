package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"time"
	"unicode/utf8"
)

// Limits of one batch.
const (
	MaxEvents       = 10_000
	MaxBodyBytes    = 5 << 20
	MaxFuture       = 5 * time.Minute
	MaxUserIDLen    = 255
	MaxEventTypeLen = 100
)

// Event is one validated event.
type Event struct {
	UserID    string
	EventType string
	CreatedAt time.Time
}

// ItemError is why one event of the batch is invalid.
type ItemError struct {
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// wire is an event as sent. Pointers tell a missing field from an empty one.
type wire struct {
	UserID    *string `json:"user_id"`
	EventType *string `json:"event_type"`
	CreatedAt *string `json:"created_at"`
}

// Errors of Decode that are about the whole body.
var (
	ErrTooManyEvents    = fmt.Errorf("more than %d events in one batch", MaxEvents)
	ErrUnsupportedMedia = errors.New("Content-Type must be application/json (an array of events) or application/x-ndjson (one event per line)")
)

// SyntaxError is a body that is not the JSON it should be.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

// maxItemErrors bounds the list of reasons returned for one batch.
const maxItemErrors = 100

// Format is the body's encoding, from its Content-Type.
type Format int

// The formats.
const (
	JSONArray Format = iota + 1
	NDJSON
)

// ParseContentType maps a Content-Type header to a Format.
func ParseContentType(ct string) (Format, error) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, ErrUnsupportedMedia
	}
	switch mt {
	case "application/json":
		return JSONArray, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines":
		return NDJSON, nil
	}
	return 0, ErrUnsupportedMedia
}

// Decode reads and validates a batch. It returns the events, or the
// reasons (index, field, reason) why some are invalid — then none may be
// written — or an error about the body as a whole. r must be bounded by
// the caller (the handler reads at most MaxBodyBytes first).
func Decode(f Format, r io.Reader, now time.Time) ([]Event, []ItemError, error) {
	var raws []wire
	var err error
	switch f {
	case JSONArray:
		raws, err = decodeArray(r)
	case NDJSON:
		raws, err = decodeLines(r)
	default:
		return nil, nil, ErrUnsupportedMedia
	}
	if err != nil {
		return nil, nil, err
	}
	events := make([]Event, 0, len(raws))
	var bad []ItemError
	for i, w := range raws {
		ev, errs := validate(i, w, now)
		if len(errs) > 0 {
			if len(bad) < maxItemErrors {
				bad = append(bad, errs...)
			}
			continue
		}
		events = append(events, ev)
	}
	if len(bad) > 0 {
		return nil, bad, nil
	}
	return events, nil, nil
}

func decodeArray(r io.Reader) ([]wire, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, &SyntaxError{"the body must be a JSON array of events"}
	}
	var out []wire
	for dec.More() {
		if len(out) == MaxEvents {
			return nil, ErrTooManyEvents
		}
		var w wire
		if err := dec.Decode(&w); err != nil {
			return nil, itemSyntax(len(out), err)
		}
		out = append(out, w)
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &SyntaxError{"unexpected data after the JSON array"}
	}
	return out, nil
}

func decodeLines(r io.Reader) ([]wire, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxBodyBytes+1)
	var out []wire
	for line := 0; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(out) == MaxEvents {
			return nil, ErrTooManyEvents
		}
		var w wire
		if b[0] != '{' {
			return nil, &SyntaxError{fmt.Sprintf("line %d: each line must be one JSON object", line+1)}
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, &SyntaxError{fmt.Sprintf("line %d: %s", line+1, describe(err))}
		}
		out = append(out, w)
	}
	if err := sc.Err(); err != nil {
		return nil, syntax(err)
	}
	return out, nil
}

func syntax(err error) error {
	return &SyntaxError{"the body is not valid JSON: " + describe(err)}
}

func itemSyntax(i int, err error) error {
	return &SyntaxError{fmt.Sprintf("event %d: %s", i, describe(err))}
}

// describe words a JSON error without Go type names.
func describe(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q must be a string", te.Field)
		}
		return "each event must be a JSON object"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return "malformed JSON"
}

func validate(i int, w wire, now time.Time) (Event, []ItemError) {
	var errs []ItemError
	bad := func(field, reason string) { errs = append(errs, ItemError{Index: i, Field: field, Reason: reason}) }
	var ev Event
	switch {
	case w.UserID == nil:
		bad("user_id", "is required")
	case *w.UserID == "" || utf8.RuneCountInString(*w.UserID) > MaxUserIDLen:
		bad("user_id", "must be 1 to 255 characters")
	case !utf8.ValidString(*w.UserID) || bytes.IndexByte([]byte(*w.UserID), 0) >= 0:
		bad("user_id", "must be valid UTF-8 without NUL characters")
	default:
		ev.UserID = *w.UserID
	}
	switch {
	case w.EventType == nil:
		bad("event_type", "is required")
	case !validType(*w.EventType):
		bad("event_type", "must be 1 to 100 characters of a-z, 0-9, _ . : -")
	default:
		ev.EventType = *w.EventType
	}
	if w.CreatedAt == nil {
		ev.CreatedAt = now.Truncate(time.Microsecond)
	} else {
		t, err := time.Parse(time.RFC3339Nano, *w.CreatedAt)
		switch {
		case err != nil:
			bad("created_at", "must be an RFC 3339 timestamp such as 2024-01-31T23:59:59.123Z")
		case t.Year() < 1 || t.UTC().Year() > 9999:
			bad("created_at", "must be within the years 0001 to 9999")
		case t.After(now.Add(MaxFuture)):
			bad("created_at", "is more than 5 minutes in the future")
		default:
			ev.CreatedAt = t.UTC().Truncate(time.Microsecond)
		}
	}
	return ev, errs
}

func validType(s string) bool {
	if s == "" || len(s) > MaxEventTypeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
