package stream

import (
	"sync"
	"testing"
	"time"
)

// TestLockByWaitsForAWriter: shutdown's farewell waits for a writer that
// holds the stream (one write), and gives up at the shared deadline.
func TestLockByWaitsForAWriter(t *testing.T) {
	var mu sync.Mutex
	mu.Lock()
	go func() {
		time.Sleep(20 * time.Millisecond) // a write in progress
		mu.Unlock()
	}()
	if !lockBy(&mu, time.Now().Add(5*time.Second)) {
		t.Fatal("gave up on a lock released within the deadline")
	}
	// Held past the deadline (a stalled client's write): give up.
	if lockBy(&mu, time.Now().Add(10*time.Millisecond)) {
		t.Fatal("took a lock that was never released")
	}
	mu.Unlock()
}
