package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"strings"
	"time"
	"unicode/utf16"
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

// wire is an event as sent.
type wire struct {
	UserID    text `json:"user_id"`
	EventType text `json:"event_type"`
	CreatedAt text `json:"created_at"`
}

// text is a string field as sent: whether it was there (null counts as
// missing) and whether its raw JSON literal was well-formed. encoding/json
// writes U+FFFD for a byte sequence that is not UTF-8 and for an unpaired
// UTF-16 surrogate escape ("\ud800"), so "a\xffb" and "a\xfeb" would be
// stored as one user: the literal is checked before it is decoded.
type text struct {
	s   string
	set bool
	bad string // why the literal is refused, or ""
}

var stringType = reflect.TypeFor[string]()

// UnmarshalJSON is called by encoding/json with the literal as sent (the
// decoder has checked its JSON syntax, not its encoding).
func (t *text) UnmarshalJSON(b []byte) error {
	*t = text{}
	switch {
	case string(b) == "null":
		return nil
	case len(b) < 2 || b[0] != '"':
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: stringType}
	}
	t.set = true
	t.s, t.bad = unquote(b[1 : len(b)-1])
	return nil
}

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// Why a literal is refused.
const (
	reasonBadUTF8   = "must be valid UTF-8: it holds a byte sequence that is not"
	reasonSurrogate = "must be valid UTF-8: it holds an unpaired UTF-16 surrogate escape (\\ud800 to \\udfff)"
)

// unquote decodes the inside of a JSON string literal, whose syntax
// (escapes included) the decoder has already checked, or says why it is
// refused: a byte sequence that is not UTF-8, or a \u escape of a
// surrogate that is not a high one followed by a low one.
func unquote(b []byte) (string, string) {
	if bytes.IndexByte(b, '\\') < 0 {
		if !utf8.Valid(b) {
			return "", reasonBadUTF8
		}
		return string(b), ""
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\' && b[i+1] == 'u':
			r := hex4(b[i+2 : i+6])
			i += 6
			switch {
			case r < 0xd800 || r > 0xdfff:
			case r < 0xdc00 && i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' && isLowSurrogate(hex4(b[i+2:i+6])):
				r = utf16.DecodeRune(r, hex4(b[i+2:i+6]))
				i += 6
			default:
				return "", reasonSurrogate
			}
			out = utf8.AppendRune(out, r)
		case c == '\\':
			out = append(out, unescape[b[i+1]])
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return "", reasonBadUTF8
			}
			out = append(out, b[i:i+size]...)
			i += size
		}
	}
	return string(out), ""
}

// unescape maps the character after a backslash to what it stands for.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func isLowSurrogate(r rune) bool { return r >= 0xdc00 && r <= 0xdfff }

// hex4 reads four hex digits (checked by the decoder).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
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
	var events []Event
	var bad []ItemError
	// Each event is validated as it is decoded: no list of raw events.
	each := func(i int, w *wire) {
		ev, errs := validate(i, w, now)
		switch {
		case len(errs) > 0:
			if len(bad) < maxItemErrors {
				bad = append(bad, errs...)
			}
		case len(bad) == 0:
			events = append(events, ev)
		}
	}
	var err error
	switch f {
	case JSONArray:
		err = decodeArray(r, each)
	case NDJSON:
		err = decodeLines(r, each)
	default:
		return nil, nil, ErrUnsupportedMedia
	}
	switch {
	case err != nil:
		return nil, nil, err
	case len(bad) > 0:
		return nil, bad, nil
	}
	return events, nil, nil
}

func decodeArray(r io.Reader, each func(int, *wire)) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return &SyntaxError{"the body must be a JSON array of events"}
	}
	n := 0
	for ; dec.More(); n++ {
		if n == MaxEvents {
			return ErrTooManyEvents
		}
		var w wire
		if err := dec.Decode(&w); err != nil {
			return itemSyntax(n, err)
		}
		each(n, &w)
	}
	if _, err := dec.Token(); err != nil {
		return syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &SyntaxError{"unexpected data after the JSON array"}
	}
	return nil
}

func decodeLines(r io.Reader, each func(int, *wire)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxBodyBytes+1)
	n := 0
	for line := 0; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if n == MaxEvents {
			return ErrTooManyEvents
		}
		var w wire
		if b[0] != '{' {
			return &SyntaxError{fmt.Sprintf("line %d: each line must be one JSON object", line+1)}
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return &SyntaxError{fmt.Sprintf("line %d: %s", line+1, describe(err))}
		}
		each(n, &w)
		n++
	}
	if err := sc.Err(); err != nil {
		return syntax(err)
	}
	return nil
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

func validate(i int, w *wire, now time.Time) (Event, []ItemError) {
	var errs []ItemError
	bad := func(field, reason string) { errs = append(errs, ItemError{Index: i, Field: field, Reason: reason}) }
	var ev Event
	switch {
	case !w.UserID.set:
		bad("user_id", "is required")
	case w.UserID.bad != "":
		bad("user_id", w.UserID.bad)
	case w.UserID.s == "" || utf8.RuneCountInString(w.UserID.s) > MaxUserIDLen:
		bad("user_id", "must be 1 to 255 characters")
	case strings.IndexByte(w.UserID.s, 0) >= 0:
		bad("user_id", "must be valid UTF-8 without NUL characters")
	default:
		ev.UserID = w.UserID.s
	}
	switch {
	case !w.EventType.set:
		bad("event_type", "is required")
	case w.EventType.bad != "":
		bad("event_type", w.EventType.bad)
	case !validType(w.EventType.s):
		bad("event_type", "must be 1 to 100 characters of a-z, 0-9, _ . : -")
	default:
		ev.EventType = w.EventType.s
	}
	switch {
	case !w.CreatedAt.set:
		ev.CreatedAt = now.Truncate(time.Microsecond)
	case w.CreatedAt.bad != "":
		bad("created_at", w.CreatedAt.bad)
	default:
		t, err := time.Parse(time.RFC3339Nano, w.CreatedAt.s)
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
