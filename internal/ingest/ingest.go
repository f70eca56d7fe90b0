// Package ingest is what POST /api/v1/events means, without HTTP:
// decoding and validating a batch of events (JSON array or NDJSON),
// all-or-nothing, and the Writer that stores a batch once per idempotency
// key.
package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
)

// Writer stores a validated batch, once per idempotency key.
type Writer interface {
	WriteEvents(ctx context.Context, keyID, idemKey string, bodyHash []byte, events []Event) (accepted int, replayed bool, err error)
}

// ErrKeyReused is returned by a Writer when an idempotency key comes back
// with a different batch.
var ErrKeyReused = errors.New("ingest: idempotency key reused with a different batch")

// BodyHash names a batch for its idempotency key: the same body under
// another content type is another batch.
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
