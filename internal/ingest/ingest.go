// Package ingest is what POST /api/v1/events means, without HTTP:
// decoding and validating a batch of events (JSON array or NDJSON),
// all-or-nothing, and the Writer that stores a batch once per idempotency
// key.
package ingest

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Writer stores a validated batch, once per idempotency key.
type Writer interface {
	WriteEvents(ctx context.Context, keyID, idemKey string, bodyHash []byte, events []Event) (accepted int, replayed bool, err error)
}

// ErrKeyReused is returned by a Writer when an idempotency key comes back
// with a different batch.
var ErrKeyReused = errors.New("ingest: idempotency key reused with a different batch")

// ErrBeforeRetention is returned by a Writer when an event is older than
// the raw events it still keeps (RAW_RETENTION dropped that range): the
// rollups of that range are final and are never recomputed.
var ErrBeforeRetention = errors.New("ingest: event older than the raw retention")

// BodyHash names a batch for its idempotency key: the same body under
// another content type is another batch; the same body compressed or not
// is the same batch (body is the decoded body).
func BodyHash(contentType string, body []byte) []byte {
	sum := sha256.Sum256(append([]byte(contentType+"\n"), body...))
	return sum[:]
}

// ValidIdempotencyKey accepts an empty key (none) or 1 to 255 printable
// ASCII characters.
func ValidIdempotencyKey(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Encoding is a body's content coding, from its Content-Encoding.
type Encoding int

// The codings a body may have.
const (
	Identity Encoding = iota // as sent
	Gzip
)

// MaxCompressedBytes bounds a gzip body as sent. MaxBodyBytes bounds it
// once decompressed; gzip adds a few bytes per 16 KB to data it cannot
// compress, so any body within MaxBodyBytes fits in this once compressed.
const MaxCompressedBytes = MaxBodyBytes + MaxBodyBytes/64

// Errors of ParseContentEncoding and ReadBody.
var (
	ErrUnsupportedEncoding = errors.New("Content-Encoding must be gzip or identity (or absent)")
	ErrBodyTooLarge        = fmt.Errorf("the body is larger than %d MB", MaxBodyBytes>>20)
	ErrBadGzip             = errors.New("the body is not valid gzip, as Content-Encoding says it is")
)

// ParseContentEncoding reads the Content-Encoding header lines: none,
// identity, or one gzip (x-gzip is its old name). Anything else, or gzip
// twice, is ErrUnsupportedEncoding.
func ParseContentEncoding(lines []string) (Encoding, error) {
	enc := Identity
	for _, line := range lines {
		for _, c := range strings.Split(line, ",") {
			switch strings.ToLower(strings.TrimSpace(c)) {
			case "", "identity":
			case "gzip", "x-gzip":
				if enc == Gzip {
					return 0, ErrUnsupportedEncoding
				}
				enc = Gzip
			default:
				return 0, ErrUnsupportedEncoding
			}
		}
	}
	return enc, nil
}

// ReadBody reads a body of encoding enc and returns it decoded, at most
// MaxBodyBytes (else ErrBodyTooLarge, having decompressed no more than
// that). The caller bounds r as sent (MaxBodyBytes for Identity,
// MaxCompressedBytes for Gzip); errors reading r come back unwrapped.
func ReadBody(enc Encoding, r io.Reader) ([]byte, error) { return readBody(enc, r, MaxBodyBytes) }

// readBody is ReadBody with the limit as a parameter, for tests.
func readBody(enc Encoding, r io.Reader, limit int) ([]byte, error) {
	if enc == Gzip {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, gzipError(err)
		}
		defer gz.Close()
		r = gz
	}
	body, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		if enc == Gzip {
			return nil, gzipError(err)
		}
		return nil, err
	}
	if len(body) > limit {
		return nil, ErrBodyTooLarge
	}
	return body, nil
}

// gzipError tells a body that is not gzip from a read that failed.
func gzipError(err error) error {
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &corrupt) {
		return ErrBadGzip
	}
	return err
}
