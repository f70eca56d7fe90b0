package stream

import (
	"sync"
	"time"
)

// The refresh scheduler. Every live range refreshes at every interval
// boundary, so one goroutine per broker does the scheduling for all of
// them (there is no timer or goroutine per range): at boundary k it takes
// the leases of every range that needs interval k in one round trip
// (Coordinator.TryLeases), queues the ranges it won for a fixed pool of
// refresher goroutines, renews the leases it holds in one round trip per
// renewal, and remembers the ranges it lost. A lost range waits for the
// winner's announcement; only when the winner's lease could have lapsed
// (it stopped renewing: it died) does the scheduler try it again, batched
// with the others due then. Per interval the cost is linear in the ranges
// and the round trips are a handful, whatever the number of ranges.
//
// A refresh still computing when the next boundary passes is followed at
// once by the next interval's (late rather than skipped); only when more
// than one interval behind does a range jump to the current one.

// job is one refresh for a refresher: interval k of lr, computed as.
type job struct {
	lr *liveRange
	k  int64
	as role
}

// pending is a range that needs interval k and has no lease for it yet.
type pending struct {
	lr *liveRange
	k  int64
}

// waiting is a range whose lease another instance holds.
type waiting struct {
	k     int64
	retry time.Time // when the holder's lease could have lapsed
}

// sched is the scheduler's state, guarded by mu.
type sched struct {
	mu      sync.Mutex
	busy    map[*liveRange]int64 // interval queued or computing
	late    map[*liveRange]int64 // a boundary passed while busy: that interval is next
	held    map[*liveRange]int64 // leases this instance holds until the refresh ends
	waiting map[*liveRange]waiting
	ready   []pending // late ranges to lease, together once readyAt passes
	readyAt time.Time
	queue   []job
	pubs    []Publication // computed by a refresher as the leader, to publish
	pubTo   []*liveRange  // the range of each of pubs

	work chan struct{} // a job is queued (capacity 1)
	pub  chan struct{} // a snapshot is waiting to be published (capacity 1)
	wake chan struct{} // held or waiting changed outside the scheduler (capacity 1)
}

func newSched() sched {
	return sched{busy: map[*liveRange]int64{}, late: map[*liveRange]int64{}, held: map[*liveRange]int64{},
		waiting: map[*liveRange]waiting{}, work: make(chan struct{}, 1), pub: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push queues a refresh (s.mu held).
func (s *sched) push(j job) {
	s.busy[j.lr] = j.k
	if j.as == roleLeader {
		s.held[j.lr] = j.k
	}
	s.queue = append(s.queue, j)
}

// taken reports whether p's range is already queued, computing or
// waiting for another instance (s.mu held).
func (s *sched) taken(p pending) bool {
	_, busy := s.busy[p.lr]
	_, waits := s.waiting[p.lr]
	return busy || waits || p.lr.ctx.Err() != nil
}

// pop takes the oldest queued refresh.
func (s *sched) pop() (job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		s.queue = nil // let a long queue's array go
		return job{}, false
	}
	j := s.queue[0]
	s.queue[0] = job{}
	s.queue = s.queue[1:]
	if len(s.queue) > 0 {
		signal(s.work) // another refresher may start the next one
	}
	return j, true
}

// schedule is the broker's one scheduling goroutine: interval boundaries,
// lease retries of lost ranges, lease renewals.
func (b *Broker) schedule() {
	defer b.wg.Done()
	k := b.tick(b.o.Now()) + 1
	var renewAt time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := b.o.Now()
		if cur := b.tick(now); k < cur {
			k = cur
		}
		at := b.tickTime(k)
		b.s.mu.Lock()
		for _, w := range b.s.waiting {
			if w.retry.Before(at) {
				at = w.retry
			}
		}
		if len(b.s.ready) > 0 && b.s.readyAt.Before(at) {
			at = b.s.readyAt
		}
		holding := len(b.s.held) > 0
		b.s.mu.Unlock()
		switch {
		case !holding:
			renewAt = time.Time{}
		case renewAt.IsZero():
			renewAt = now.Add(b.o.LeaseTTL / 3)
		}
		if holding && renewAt.Before(at) {
			at = renewAt
		}
		timer.Reset(at.Sub(now))
		select {
		case <-b.ctx.Done():
			return
		case <-b.s.wake:
			timer.Stop() // Go ≥ 1.23: no stale tick can be received after Stop
			continue
		case <-timer.C:
		}
		now = b.o.Now()
		if !now.Before(b.tickTime(k)) {
			b.round(k)
			k++
		}
		b.retry(now)
		b.s.mu.Lock()
		var ready []pending
		if len(b.s.ready) > 0 && !now.Before(b.s.readyAt) {
			for _, p := range b.s.ready {
				if b.s.taken(p) {
					continue // a boundary came first and dealt with it
				}
				if s := p.lr.latestSnapshot(); s != nil && s.Version >= p.k {
					b.m.refreshed(roleFollower)
					continue
				}
				ready = append(ready, p)
			}
			b.s.ready = nil
		}
		b.s.mu.Unlock()
		b.lease(ready)
		if holding && !now.Before(renewAt) {
			b.renew()
			renewAt = b.o.Now().Add(b.o.LeaseTTL / 3)
		}
	}
}

// round starts interval k of every live range.
func (b *Broker) round(k int64) {
	b.mu.Lock()
	ranges := make([]*liveRange, 0, len(b.ranges))
	for _, lr := range b.ranges {
		if lr.live {
			ranges = append(ranges, lr)
		}
	}
	b.mu.Unlock()
	due := make([]pending, 0, len(ranges))
	missed, example := 0, ""
	b.s.mu.Lock()
	for _, lr := range ranges {
		if lr.ctx.Err() != nil {
			continue
		}
		if _, ok := b.s.busy[lr]; ok {
			b.s.late[lr] = k
			continue
		}
		if _, ok := b.s.waiting[lr]; ok {
			delete(b.s.waiting, lr)
			missed, example = missed+1, lr.key
		}
		if s := lr.latestSnapshot(); s != nil && s.Version >= k {
			b.m.refreshed(roleFollower)
			continue
		}
		due = append(due, pending{lr, k})
	}
	b.s.mu.Unlock()
	if missed > 0 {
		// One line per boundary, not one per range: an overloaded fleet
		// misses thousands at once.
		b.o.Logger.Warn("stream: interval passed without a snapshot", "ranges", missed, "example", example, "version", k-1)
	}
	b.lease(due)
}

// lease asks for the leases of ps in one round trip and acts on the
// answers: queue the won ones, remember the lost ones, compute every one
// locally when coordination fails (Redis down: each instance refreshes
// on its own).
func (b *Broker) lease(ps []pending) {
	if len(ps) == 0 {
		return
	}
	refs := make([]LeaseRef, len(ps))
	for i, p := range ps {
		refs[i] = LeaseRef{Key: p.lr.key, Interval: p.k}
	}
	got, err := b.coord.TryLeases(b.ctx, refs, b.o.LeaseTTL)
	if b.ctx.Err() != nil {
		return
	}
	now := b.o.Now()
	queued := false
	b.s.mu.Lock()
	for i, p := range ps {
		switch {
		case p.lr.ctx.Err() != nil:
		case err != nil:
			b.s.push(job{p.lr, p.k, roleLocal})
			queued = true
		case got[i].Won:
			b.s.push(job{p.lr, p.k, roleLeader})
			queued = true
		default:
			b.m.contention.Inc()
			if s := p.lr.latestSnapshot(); s != nil && s.Version >= p.k {
				b.m.refreshed(roleFollower) // announced meanwhile
				continue
			}
			// Ask again once the holder's lease could have lapsed, a
			// little after, so that the attempt is not early.
			b.s.waiting[p.lr] = waiting{k: p.k, retry: now.Add(got[i].TTL + b.o.LeaseTTL/20)}
		}
	}
	b.s.mu.Unlock()
	if queued {
		signal(b.s.work)
	}
}

// retry tries again, together, the lost leases whose holders could have
// lapsed by now (or within a twentieth of the lease, so that leases taken
// together are retried together).
func (b *Broker) retry(now time.Time) {
	var ps []pending
	b.s.mu.Lock()
	for lr, w := range b.s.waiting {
		if lr.ctx.Err() != nil {
			delete(b.s.waiting, lr)
			continue
		}
		if w.retry.After(now.Add(b.o.LeaseTTL / 20)) {
			continue
		}
		delete(b.s.waiting, lr)
		if s := lr.latestSnapshot(); s != nil && s.Version >= w.k {
			b.m.refreshed(roleFollower)
			continue
		}
		ps = append(ps, pending{lr, w.k})
	}
	b.s.mu.Unlock()
	b.lease(ps)
}

// arrived tells the scheduler that lr got the snapshot of interval v:
// a range waiting for it is done.
func (b *Broker) arrived(lr *liveRange, v int64) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if w, ok := b.s.waiting[lr]; ok && v >= w.k {
		delete(b.s.waiting, lr)
		b.m.refreshed(roleFollower)
	}
}

// renew extends every lease this instance holds for a refresh not yet
// done, queued ones included, in one round trip.
func (b *Broker) renew() {
	b.s.mu.Lock()
	refs := make([]LeaseRef, 0, len(b.s.held))
	for lr, k := range b.s.held {
		if lr.ctx.Err() == nil {
			refs = append(refs, LeaseRef{Key: lr.key, Interval: k})
		}
	}
	b.s.mu.Unlock()
	_ = b.coord.RenewLeases(b.ctx, refs, b.o.LeaseTTL)
}

// refresher computes queued refreshes until the broker closes.
func (b *Broker) refresher() {
	defer b.wg.Done()
	for {
		j, ok := b.s.pop()
		if !ok {
			select {
			case <-b.ctx.Done():
				return
			case <-b.s.work:
			}
			continue
		}
		if j.lr.ctx.Err() == nil {
			b.compute(j.lr.ctx, j.lr, j.k, j.as)
		}
		b.done(j)
	}
}

// done ends a refresh: its lease is no longer renewed, and a range whose
// next boundary passed meanwhile starts that interval now, its lease taken
// by the scheduler together with the others that end within a twentieth
// of a lease (an overloaded instance finishes many late refreshes, and
// one lease round trip each would grow with the ranges again).
func (b *Broker) done(j job) {
	b.s.mu.Lock()
	delete(b.s.busy, j.lr)
	if b.s.held[j.lr] == j.k {
		delete(b.s.held, j.lr)
	}
	next, late := b.s.late[j.lr]
	delete(b.s.late, j.lr)
	b.s.mu.Unlock()
	if !late || j.lr.ctx.Err() != nil || b.ctx.Err() != nil {
		return
	}
	if cur := b.tick(b.o.Now()); next < cur {
		next = cur
	}
	if s := j.lr.latestSnapshot(); s != nil && s.Version >= next {
		b.m.refreshed(roleFollower)
		return
	}
	b.s.mu.Lock()
	first := len(b.s.ready) == 0
	if first {
		b.s.readyAt = b.o.Now().Add(b.o.LeaseTTL / 20)
	}
	b.s.ready = append(b.s.ready, pending{j.lr, next})
	b.s.mu.Unlock()
	if first {
		// Only the first: the scheduler's wait is set by readyAt, and a
		// wake for each late range would rescan its state every time.
		signal(b.s.wake)
	}
}

// publish hands a leader's snapshot to the publisher.
func (b *Broker) publish(lr *liveRange, s *Snapshot) {
	b.s.mu.Lock()
	b.s.pubs = append(b.s.pubs, Publication{Key: lr.key, Snapshot: s})
	b.s.pubTo = append(b.s.pubTo, lr)
	b.s.mu.Unlock()
	signal(b.s.pub)
}

// publisher publishes the leaders' snapshots, all those computed while
// the previous batch was on its way in one round trip, in the order they
// were computed, and delivers each one locally once published.
func (b *Broker) publisher() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.s.pub:
		}
		b.s.mu.Lock()
		pubs, to := b.s.pubs, b.s.pubTo
		b.s.pubs, b.s.pubTo = nil, nil
		b.s.mu.Unlock()
		if len(pubs) == 0 {
			continue
		}
		errs := b.coord.PublishAll(b.ctx, pubs, 10*b.o.Interval)
		if b.ctx.Err() != nil {
			return
		}
		for i, p := range pubs {
			b.published(to[i], p.Snapshot, errs[i])
		}
	}
}
