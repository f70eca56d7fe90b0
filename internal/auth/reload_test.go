package auth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReplaceUnderConcurrentLookups: lookups running while the set is
// swapped see one whole set, the old or the new (never none, never a
// torn key); the race detector checks the swap itself.
func TestReplaceUnderConcurrentLookups(t *testing.T) {
	a, aEntry, _ := Generate(ScopeRead)
	b, bEntry, _ := Generate(ScopeRead)
	setA, _ := ParseKeys(aEntry)
	setB, _ := ParseKeys(bEntry)
	idA, idB := strings.TrimPrefix(aEntry, "sha256:")[:12], strings.TrimPrefix(bEntry, "sha256:")[:12]
	live := &Keys{}
	live.Replace(setA)
	// Readers look up 500 times each while the set is swapped for as
	// long as any of them runs.
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for range 500 {
				if n := live.Len(); n != 1 {
					t.Errorf("%d keys mid-swap, want 1", n)
					return
				}
				if k, ok := live.Lookup(a); ok && k.ID != idA {
					t.Errorf("key a found as %s", k.ID)
					return
				}
				if k, ok := live.Lookup(b); ok && k.ID != idB {
					t.Errorf("key b found as %s", k.ID)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	for i := 0; ; i++ {
		select {
		case <-done:
			live.Replace(nil)
			if live.Len() != 0 {
				t.Fatal("Replace(nil) kept keys")
			}
			return
		default:
		}
		if i%2 == 0 {
			live.Replace(setB)
		} else {
			live.Replace(setA)
		}
	}
}
func writeAtomically(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloader: the file is reloaded when it changes and on a signal;
// inline keys stay; a bad or missing file is logged and counted and the
// keys stay as they were.
func TestReloader(t *testing.T) {
	inline, inlineEntry, _ := Generate(ScopeIngest)
	one, oneEntry, _ := Generate(ScopeRead)
	two, twoEntry, _ := Generate(ScopeRead)
	path := filepath.Join(t.TempDir(), "keys")
	writeAtomically(t, path, oneEntry+"\n")
	reg := prometheus.NewRegistry()
	keys := &Keys{}
	// The log lines are checked by the HTTP test (cmd/analyticsd).
	r := NewReloader(keys, Source{Inline: inlineEntry, File: path}, 10*time.Millisecond, nil, reg)
	if err := r.Load(); err != nil || keys.Len() != 2 {
		t.Fatalf("load: %v, %d keys", err, keys.Len())
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { r.Run(ctx, hup); close(done) }()
	defer func() { cancel(); <-done }()

	has := func(token string) bool { _, ok := keys.Lookup(token); return ok }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: never happened", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	writeAtomically(t, path, twoEntry+"\n")
	waitFor("rotation by file change", func() bool { return has(two) && !has(one) && has(inline) })

	writeAtomically(t, path, "sha256:not-a-hash:read\n")
	waitFor("a bad file counted", func() bool { return testutil.ToFloat64(r.runs.WithLabelValues("error")) == 1 })
	if !has(two) || !has(inline) {
		t.Fatal("a bad file dropped the keys")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor("a missing file counted", func() bool { return testutil.ToFloat64(r.runs.WithLabelValues("error")) == 2 })
	if !has(two) {
		t.Fatal("a missing file dropped the keys")
	}
	// Written in place with the same size and time, only a signal tells.
	writeAtomically(t, path, oneEntry+"\n")
	waitFor("the file back", func() bool { return has(one) })
	fi, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte(twoEntry+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(path, fi.ModTime(), fi.ModTime())
	time.Sleep(50 * time.Millisecond)
	if has(two) {
		t.Fatal("an unchanged stamp was reloaded")
	}
	hup <- syscall.SIGHUP
	waitFor("reload on a signal", func() bool { return has(two) && !has(one) })
	if ok := testutil.ToFloat64(r.runs.WithLabelValues("ok")); ok != 3 {
		t.Fatalf("ok reloads = %v, want 3", ok)
	}
}
