package stream

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// detached is a stream whose HTTP/1.1 connection was hijacked after the
// headers: net/http's goroutine, buffers and request state are gone, and
// the broker's writer pool writes to the socket. What is left per client
// is this struct, the socket and one goroutine parked in a 1-byte Read
// that notices the peer closing.
type detached struct {
	c         *Client
	nc        net.Conn
	mu        sync.Mutex // held by the one writer writing; see flush
	sent      int64      // guarded by mu
	seq       int64      // status frames written; guarded by mu
	queued    atomic.Bool
	hbDue     atomic.Bool
	lastWrite atomic.Int64 // unix nanos
	closeOnce sync.Once
}

// Detach writes head (the HTTP response head) and the stream's opening on
// the hijacked connection nc in one write, then hands the connection to
// the writer pool; it owns c and nc from then on. sent is the version the
// client already has (Last-Event-ID), or -1.
func (b *Broker) Detach(c *Client, nc net.Conn, head []byte, sent int64) {
	buf, version, seq := b.opening(head, c, sent)
	_ = nc.SetWriteDeadline(time.Now().Add(b.o.WriteTimeout))
	if _, err := nc.Write(buf); err != nil {
		b.dropped(err)
		_ = nc.Close()
		c.Close()
		return
	}
	if version != sent {
		b.m.deliveries.Inc()
	}
	d := &detached{c: c, nc: nc, sent: version, seq: seq}
	d.lastWrite.Store(time.Now().UnixNano())
	b.dmu.Lock()
	if b.ctx.Err() != nil {
		// The broker closed while the opening was written: closeDetached
		// did not see this stream, so it gets its farewell here.
		b.dmu.Unlock()
		_ = nc.SetWriteDeadline(time.Now().Add(min(b.o.WriteTimeout, time.Second)))
		_, _ = nc.Write(b.farewell())
		d.close()
		return
	}
	b.detached[d] = struct{}{}
	b.wg.Add(1)
	b.dmu.Unlock()
	c.det.Store(d)
	b.enqueue(d) // a snapshot may have arrived while the headers were written
	go func() {
		defer b.wg.Done()
		// EventSource sends nothing after its request: any read result
		// means the peer closed (or misbehaves). Either way, end it.
		var buf [1]byte
		_, _ = nc.Read(buf[:])
		b.closeStream(d)
	}()
}

func (d *detached) close() {
	d.closeOnce.Do(func() {
		_ = d.nc.Close()
		d.c.Close()
	})
}

func (b *Broker) closeStream(d *detached) {
	b.dmu.Lock()
	delete(b.detached, d)
	b.dmu.Unlock()
	d.close()
}

// closeDetached ends every detached stream, first writing each the
// farewell (the delay to reconnect after), waiting for a writer busy with
// it.
// The writes share one short deadline, so that stalled clients cannot hold
// up shutdown.
func (b *Broker) closeDetached() {
	b.dmu.Lock()
	all := make([]*detached, 0, len(b.detached))
	for d := range b.detached {
		all = append(all, d)
	}
	b.dmu.Unlock()
	bye := b.farewell()
	deadline := time.Now().Add(min(b.o.WriteTimeout, time.Second))
	for _, d := range all {
		if lockBy(&d.mu, deadline) {
			_ = d.nc.SetWriteDeadline(deadline)
			_, _ = d.nc.Write(bye)
			d.mu.Unlock()
		}
		b.closeStream(d)
	}
}

// lockBy takes mu, waiting for it until deadline: a writer holds a
// stream's lock for one write (with its own deadline), and a stream that a
// writer was bringing up to date at shutdown must still get its farewell
// (under load that was the case often enough to lose it).
func lockBy(mu *sync.Mutex, deadline time.Time) bool {
	for !mu.TryLock() {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
	return true
}

// enqueue asks a writer to bring d up to date. Each stream is in the queue
// at most once, and the queue holds MaxClients, so this never blocks.
func (b *Broker) enqueue(d *detached) {
	if d.queued.CompareAndSwap(false, true) {
		select {
		case b.wq <- d:
		default:
			d.queued.Store(false)
		}
	}
}

func (b *Broker) writer() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case d := <-b.wq:
			d.queued.Store(false)
			b.flush(d)
		}
	}
}

// flush writes the latest snapshot (or a due heartbeat) to d. If another
// writer is busy with d it returns at once: that writer looks again when
// it is done, so nothing is lost and no writer waits on a slow client.
func (b *Broker) flush(d *detached) {
	if !d.mu.TryLock() {
		return
	}
	frame, version, seq := appendPending(nil, d.c, d.sent, d.seq)
	if frame == nil && d.hbDue.Swap(false) {
		frame = heartbeat
	}
	if frame == nil {
		d.mu.Unlock()
		return
	}
	_ = d.nc.SetWriteDeadline(time.Now().Add(b.o.WriteTimeout))
	_, err := d.nc.Write(frame)
	if err != nil {
		d.mu.Unlock()
		b.dropped(err)
		b.closeStream(d)
		return
	}
	if version > d.sent {
		b.m.deliveries.Inc()
	}
	d.sent, d.seq = version, seq
	d.lastWrite.Store(time.Now().UnixNano())
	d.mu.Unlock()
	if s, f := d.c.Latest(), d.c.currentStatus(); s != nil && s.Version > version || f != nil && f.seq > seq {
		b.enqueue(d)
	}
}

// heartbeats marks idle detached streams due for a comment line.
func (b *Broker) heartbeats() {
	defer b.wg.Done()
	t := time.NewTicker(b.o.Heartbeat / 4)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			idle := now.Add(-b.o.Heartbeat).UnixNano()
			b.dmu.Lock()
			for d := range b.detached {
				if d.lastWrite.Load() <= idle {
					d.hbDue.Store(true)
					b.enqueue(d)
				}
			}
			b.dmu.Unlock()
		}
	}
}
