package auth

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	ing, ingEntry, _ := Generate(ScopeIngest)
	both, bothEntry, _ := Generate(ScopeIngest, ScopeRead)
	ks, err := ParseKeys("# comment\n" + ingEntry + " ; " + bothEntry + "  # trailing\n\n")
	if err != nil || ks.Len() != 2 {
		t.Fatalf("ParseKeys: %d keys, %v", ks.Len(), err)
	}
	if k, ok := ks.Lookup(ing); !ok || !k.Has(ScopeIngest) || k.Has(ScopeRead) {
		t.Fatalf("ingest key: %+v %v", k, ok)
	}
	if k, ok := ks.Lookup(both); !ok || !k.Has(ScopeRead) || len(k.ID) != 12 {
		t.Fatalf("ingest+read key: %+v %v", k, ok)
	}
	for _, bad := range []string{"", both[:len(both)-1], both + "x", strings.ToUpper(both)} {
		if _, ok := ks.Lookup(bad); ok {
			t.Errorf("Lookup(%q) matched", bad)
		}
	}
	for _, bad := range []string{"sha256:abc:ingest", "md5:" + strings.Repeat("a", 64) + ":ingest", "sha256:" + strings.Repeat("a", 64) + ":admin", ingEntry + " " + ingEntry, "plain-secret"} {
		if _, err := ParseKeys(bad); err == nil {
			t.Errorf("ParseKeys(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "plain-secret") {
			t.Errorf("error echoes the secret: %v", err)
		}
	}
}

func TestToken(t *testing.T) {
	r := httptest.NewRequest("GET", "/x?access_token=q", nil)
	if tok, ok := Token(r, r.URL.Query()); tok != "q" || !ok {
		t.Fatalf("query token: %q %v", tok, ok)
	}
	if _, ok := Token(r, nil); ok {
		t.Fatal("query token accepted where it is not allowed")
	}
	r.Header.Set("Authorization", "bearer  h ")
	if tok, ok := Token(r, r.URL.Query()); tok != "h" || !ok {
		t.Fatalf("header token: %q %v", tok, ok)
	}
	r.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	if tok, ok := Token(r, r.URL.Query()); tok != "" || !ok {
		t.Fatalf("basic auth: %q %v (want an attempt with no token)", tok, ok)
	}
}
