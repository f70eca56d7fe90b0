package logbuf

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer counts the writes it receives.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) snapshot() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.writes
}

func TestBatchesWholeLinesAndFlushes(t *testing.T) {
	var out lockedBuffer
	w := New(&out, 64, 20*time.Millisecond)
	line := strings.Repeat("x", 19) + "\n" // 20 bytes: three fit in 64
	for range 10 {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	got, writes := out.snapshot()
	if writes != 3 || len(got)%len(line) != 0 {
		t.Fatalf("%d writes of %d bytes before the interval; want 3 writes of whole lines", writes, len(got))
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if got, _ := out.snapshot(); got == strings.Repeat(line, 10) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("buffered lines not flushed within the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := w.Write([]byte("last\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := out.snapshot(); !strings.HasSuffix(got, "last\n") {
		t.Fatalf("Close did not flush: %q", got)
	}
}

func TestConcurrentWritersKeepLinesWhole(t *testing.T) {
	var out lockedBuffer
	w := New(&out, 256, time.Millisecond)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				_, _ = w.Write([]byte(strings.Repeat(string(rune('a'+i)), 30) + "\n"))
			}
		}()
	}
	wg.Wait()
	_ = w.Close()
	got, _ := out.snapshot()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if len(l) != 30 || strings.Count(l, l[:1]) != 30 {
			t.Fatalf("torn line %q", l)
		}
	}
}
