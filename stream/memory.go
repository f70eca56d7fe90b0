package stream

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Memory is a Coordinator within one process: the single-instance mode of
// the server, and a stand-in for Redis when several brokers in one test
// share it. Leases and snapshots expire as they do in Redis.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	leases    map[string]time.Time // key + interval → expiry
	snapshots map[string]memorySnapshot
	listeners map[int]func(string, *Snapshot)
	census    map[int64]map[string]struct{} // interval → live ranges recorded
	nextID    int
	pruneAt   time.Time // when expired entries are next swept
}

type memorySnapshot struct {
	s       *Snapshot
	expires time.Time
}

var _ Coordinator = (*Memory)(nil)

// NewMemory makes an empty coordinator.
func NewMemory() *Memory {
	return &Memory{now: time.Now, leases: map[string]time.Time{}, snapshots: map[string]memorySnapshot{},
		listeners: map[int]func(string, *Snapshot){}, census: map[int64]map[string]struct{}{}}
}

func leaseKey(key string, k int64) string { return key + "\x00" + strconv.FormatInt(k, 10) }

// TryLeases claims each lease unless an unexpired one holds it.
func (m *Memory) TryLeases(_ context.Context, leases []LeaseRef, ttl time.Duration) ([]Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.prune(now)
	out := make([]Lease, len(leases))
	for i, l := range leases {
		lk := leaseKey(l.Key, l.Interval)
		if exp, held := m.leases[lk]; held && exp.After(now) {
			out[i] = Lease{TTL: exp.Sub(now)}
			continue
		}
		m.leases[lk] = now.Add(ttl)
		out[i] = Lease{Won: true, TTL: ttl}
	}
	return out, nil
}

// prune forgets expired leases and snapshots, at most once a second so
// that the cost stays linear in the live ranges.
func (m *Memory) prune(now time.Time) {
	if now.Before(m.pruneAt) {
		return
	}
	m.pruneAt = now.Add(time.Second)
	for lk, exp := range m.leases {
		if !exp.After(now) {
			delete(m.leases, lk)
		}
	}
	for k, cur := range m.snapshots {
		if !cur.expires.After(now) {
			delete(m.snapshots, k)
		}
	}
}

// RenewLeases extends the leases that have not expired.
func (m *Memory) RenewLeases(_ context.Context, leases []LeaseRef, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, l := range leases {
		lk := leaseKey(l.Key, l.Interval)
		if exp, held := m.leases[lk]; held && exp.After(now) {
			m.leases[lk] = now.Add(ttl)
		}
	}
	return nil
}

// Publish stores s unless a snapshot at least as new is stored, and hands
// it to every listener.
func (m *Memory) Publish(_ context.Context, key string, s *Snapshot, ttl time.Duration) error {
	m.mu.Lock()
	now := m.now()
	if cur, ok := m.snapshots[key]; ok && cur.expires.After(now) && cur.s.Version >= s.Version {
		m.mu.Unlock()
		return ErrFenced
	}
	m.prune(now)
	m.snapshots[key] = memorySnapshot{s: s, expires: now.Add(ttl)}
	listeners := make([]func(string, *Snapshot), 0, len(m.listeners))
	for _, l := range m.listeners {
		listeners = append(listeners, l)
	}
	m.mu.Unlock()
	for _, l := range listeners {
		l(key, s)
	}
	return nil
}

// PublishAll publishes each in turn.
func (m *Memory) PublishAll(ctx context.Context, ps []Publication, ttl time.Duration) []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = m.Publish(ctx, p.Key, p.Snapshot, ttl)
	}
	return errs
}

// Latest returns the stored snapshot, or nil once it expired.
func (m *Memory) Latest(_ context.Context, key string) (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.snapshots[key]; ok && cur.expires.After(m.now()) {
		return cur.s, nil
	}
	return nil, nil
}

// Watch does nothing: every listener hears every range.
func (m *Memory) Watch(context.Context, string) error { return nil }

// Unwatch does nothing.
func (m *Memory) Unwatch(context.Context, string) error { return nil }

// Census adds keys to interval k's set and returns its size; sets older
// than the previous interval are forgotten.
func (m *Memory) Census(_ context.Context, k int64, keys []string, _ time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.census[k]
	if set == nil {
		set = map[string]struct{}{}
		m.census[k] = set
		for old := range m.census {
			if old < k-1 {
				delete(m.census, old)
			}
		}
	}
	for _, key := range keys {
		set[key] = struct{}{}
	}
	return len(set), nil
}

// Listen hands every published snapshot to deliver until ctx ends.
// Nothing is ever lost in memory, so resync is never called.
func (m *Memory) Listen(ctx context.Context, deliver func(string, *Snapshot), _ func()) {
	m.mu.Lock()
	id := m.nextID
	m.nextID++
	m.listeners[id] = deliver
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	delete(m.listeners, id)
	m.mu.Unlock()
}
