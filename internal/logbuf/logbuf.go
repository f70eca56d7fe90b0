// Package logbuf batches log output: a busy server writes its access log
// with one write call per batch instead of one per request.
package logbuf

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Writer buffers whole writes (log lines) and passes them on when the
// buffer fills, every interval, and on Close. A line waits at most one
// interval; what a hard kill interrupts is at most the last interval's.
type Writer struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// New starts a Writer in front of w with a buffer of size bytes, flushed
// at least every interval.
func New(w io.Writer, size int, interval time.Duration) *Writer {
	lw := &Writer{buf: bufio.NewWriterSize(w, size), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.flushEvery(interval)
	return lw
}

// Write buffers p whole: a line is never split between two writes to the
// underlying writer unless it is larger than the buffer.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Available() < len(p) && w.buf.Buffered() > 0 {
		if err := w.buf.Flush(); err != nil {
			return 0, err
		}
	}
	return w.buf.Write(p)
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Flush()
}

func (w *Writer) flushEvery(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Close stops the flusher and writes what is buffered. It must be called
// once; writes after it still buffer and are lost.
func (w *Writer) Close() error {
	close(w.stop)
	<-w.done
	return w.Flush()
}
