// Package auth holds API keys: their configuration as hashes, constant-time
// verification, and scopes.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// Scope is what a key may do.
type Scope string

// The scopes.
const (
	ScopeIngest Scope = "ingest"
	ScopeRead   Scope = "read"
)

// ReadAuth says whether reads need a key.
type ReadAuth string

// The read policies (READ_AUTH).
const (
	ReadOpen     ReadAuth = "open"     // reads need no key
	ReadRequired ReadAuth = "required" // reads need a key with the read scope
)

// ParseReadAuth reads a policy by name.
func ParseReadAuth(s string) (ReadAuth, error) {
	switch r := ReadAuth(s); r {
	case ReadOpen, ReadRequired:
		return r, nil
	}
	return "", errors.New("must be open or required")
}

// Key is one configured API key: the SHA-256 of the secret, never the
// secret itself.
type Key struct {
	ID     string // the first 12 hex digits of the hash: safe to log and to key rate limits by
	hash   [32]byte
	scopes map[Scope]bool
}

// Has reports whether the key carries scope s.
func (k *Key) Has(s Scope) bool { return k != nil && k.scopes[s] }

// Keys is the configured set. Replace swaps it for another atomically:
// a request sees the old set or the new one, never a mix.
type Keys struct{ set atomic.Pointer[[]*Key] }

// list is the current set.
func (ks *Keys) list() []*Key {
	if ks == nil {
		return nil
	}
	if p := ks.set.Load(); p != nil {
		return *p
	}
	return nil
}

// Len is the number of keys.
func (ks *Keys) Len() int { return len(ks.list()) }

// Replace makes ks hold the keys of other (none when other is nil).
func (ks *Keys) Replace(other *Keys) {
	list := other.list()
	ks.set.Store(&list)
}

// ParseKeys reads entries "sha256:<64 hex digits>:<scope>[,<scope>]"
// separated by white space, newlines or ';'. '#' starts a comment that runs
// to the end of the line. `analyticsd keygen` prints a key and its entry.
func ParseKeys(text string) (*Keys, error) {
	var list []*Key
	seen := map[[32]byte]bool{}
	for n, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for i, entry := range strings.FieldsFunc(line, func(r rune) bool { return r == ';' || r == ' ' || r == '\t' || r == '\r' }) {
			k, err := parseEntry(entry)
			if err != nil {
				return nil, fmt.Errorf("line %d, entry %d: %w", n+1, i+1, err)
			}
			if seen[k.hash] {
				return nil, fmt.Errorf("line %d: key %s is listed twice", n+1, k.ID)
			}
			seen[k.hash] = true
			list = append(list, k)
		}
	}
	ks := &Keys{}
	ks.set.Store(&list)
	return ks, nil
}

func parseEntry(entry string) (*Key, error) {
	parts := strings.Split(entry, ":")
	if len(parts) != 3 || parts[0] != "sha256" {
		// Never echo the entry: it may be a key pasted by mistake.
		return nil, errors.New("want sha256:<64 hex digits>:<scopes>, the hash of a key, not the key (run `analyticsd keygen`)")
	}
	raw, err := hex.DecodeString(parts[1])
	if err != nil || len(raw) != sha256.Size {
		return nil, errors.New("the hash must be 64 hex digits")
	}
	k := &Key{ID: strings.ToLower(parts[1][:12]), scopes: map[Scope]bool{}}
	copy(k.hash[:], raw)
	for _, s := range strings.Split(parts[2], ",") {
		switch sc := Scope(strings.TrimSpace(s)); sc {
		case ScopeIngest, ScopeRead:
			k.scopes[sc] = true
		default:
			return nil, fmt.Errorf("entry for key %s: unknown scope %q (use ingest, read)", k.ID, s)
		}
	}
	return k, nil
}

// Lookup finds the key whose hash is the token's. Every configured key is
// compared, in constant time, so the time taken says nothing about which
// key (or how much of one) matched.
func (ks *Keys) Lookup(token string) (*Key, bool) {
	if token == "" {
		return nil, false
	}
	sum := sha256.Sum256([]byte(token))
	var found *Key
	for _, k := range ks.list() {
		if subtle.ConstantTimeCompare(sum[:], k.hash[:]) == 1 {
			found = k
		}
	}
	return found, found != nil
}

// Generate makes a new random key and its configuration entry.
func Generate(scopes ...Scope) (token, entry string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = "ak_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	return token, "sha256:" + hex.EncodeToString(sum[:]) + ":" + strings.Join(names, ","), nil
}

// Token is the key a request presents: "Authorization: Bearer <key>", or
// the access_token parameter of query, the request's parsed query string
// (EventSource cannot set headers; nil: not allowed). present reports
// whether the request tried to authenticate.
func Token(r *http.Request, query url.Values) (token string, present bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", true
		}
		return strings.TrimSpace(rest), true
	}
	if v, ok := query["access_token"]; ok && len(v) > 0 {
		return v[0], true
	}
	return "", false
}
