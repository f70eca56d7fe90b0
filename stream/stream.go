// Package stream keeps dashboards live. A broker keyed by the normalized
// range refreshes each live range once per interval (not per client),
// with one scheduler for all of them; a Coordinator makes N instances
// compute each range once per interval (a lease per interval, a fenced
// publish, an announcement to every instance); and the snapshots fan out
// to Server-Sent Event clients without ever blocking on one.
//
// The package knows no transport and no store: the HTTP edge hands it a
// Sink or a hijacked connection, a summary Source computes, and a
// Coordinator (Redis for many instances, Memory for one) shares the work.
package stream

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/liveanalytics/analyticsd/summary"
)

// Source computes summaries; *summary.Service is one.
type Source interface {
	Get(ctx context.Context, r summary.Range) (summary.Result, error)
	Refresh(ctx context.Context, r summary.Range) (summary.Result, error)
}

// Snapshot is one version of a range's summary as clients receive it.
type Snapshot struct {
	Version   int64
	Data      []byte // the summary endpoint's JSON body
	Published time.Time
}

// Coordinator shares the refresh of each live range between the instances
// that hold it. Keys are summary.Spec keys. Redis implements it for many
// instances; Memory for one process.
type Coordinator interface {
	// TryLeases claims each lease for ttl, all in one round trip: the
	// broker asks for every range due at a boundary at once. The answers
	// are in the order of leases.
	TryLeases(ctx context.Context, leases []LeaseRef, ttl time.Duration) ([]Lease, error)
	// RenewLeases extends this instance's leases by ttl (the ones it still
	// holds), all in one round trip.
	RenewLeases(ctx context.Context, leases []LeaseRef, ttl time.Duration) error
	// Publish stores s as the range's snapshot for ttl and announces it to
	// every instance, unless a snapshot at least as new is stored: then it
	// returns ErrFenced and changes nothing.
	Publish(ctx context.Context, key string, s *Snapshot, ttl time.Duration) error
	// PublishAll is Publish for many ranges in one round trip; the answers
	// are in the order of ps.
	PublishAll(ctx context.Context, ps []Publication, ttl time.Duration) []error
	// Latest is the stored snapshot of a range, or nil.
	Latest(ctx context.Context, key string) (*Snapshot, error)
	// Watch and Unwatch say which ranges' announcements this instance
	// wants; Listen may deliver others, which the broker ignores.
	Watch(ctx context.Context, key string) error
	Unwatch(ctx context.Context, key string) error
	// Listen delivers announced snapshots until ctx ends. Announcements
	// are at most once: after a gap (a reconnect) it calls resync, and
	// the broker re-reads Latest for its ranges.
	Listen(ctx context.Context, deliver func(key string, s *Snapshot), resync func())
	// Census records that this instance holds the live ranges keys during
	// interval k (kept for ttl) and returns how many distinct ranges the
	// instances have recorded for k so far. Every instance records once per
	// interval, so the last one to record counts every range once, however
	// many instances hold it (analytics_stream_cluster_ranges, read with
	// max() over the instances).
	Census(ctx context.Context, k int64, keys []string, ttl time.Duration) (int, error)
}

// LeaseRef names the lease of one interval of one range.
type LeaseRef struct {
	Key      string // the range's summary.Spec key
	Interval int64
}

// Publication is one range's new snapshot.
type Publication struct {
	Key      string
	Snapshot *Snapshot
}

// Lease is the answer to one lease attempt.
type Lease struct {
	Won bool
	// TTL is how long the lease holds unless renewed: the ttl asked for
	// when won, else what is left of the holder's (≤ 0: it lapsed
	// meanwhile). A loser need not try again before it runs out.
	TTL time.Duration
}

// ErrFenced is Publish's answer when a newer snapshot is already stored:
// a stalled old leader must never replace it.
var ErrFenced = errors.New("stream: a newer snapshot is already stored")

// Errors of Subscribe.
var (
	ErrClosed         = errors.New("stream: broker is shutting down")
	ErrTooManyClients = errors.New("stream: too many clients")
	ErrTooManyRanges  = errors.New("stream: too many live ranges")
	// ErrTooManyRangesForAddr: the address already holds
	// MaxRangesPerAddr ranges; it may join one of them or close one.
	ErrTooManyRangesForAddr = errors.New("stream: too many live ranges from one address")
)

// Options configure a Broker. DefaultOptions holds the defaults; a zero
// field takes its default.
type Options struct {
	Interval          time.Duration // refresh step
	LeaseTTL          time.Duration // how long a refresh lease holds [Interval/2]
	Grace             time.Duration // a range outlives its last client by this
	MaxClients        int           // per instance
	MaxClientsPerAddr int           // per remote address
	MaxRanges         int           // live ranges per instance
	MaxRangesPerAddr  int           // distinct ranges one remote address has clients on
	Heartbeat         time.Duration // comment on idle streams
	WriteTimeout      time.Duration // deadline of one write to a client
	Retry             time.Duration // reconnection delay sent to clients
	Writers           int           // goroutines writing to detached streams
	Refreshers        int           // goroutines computing refreshes, shared by every range
	// Invalidate, when set, is told the range key of every snapshot
	// another instance announces: that instance wrote the summary cache
	// first, so an in-process copy of the range is out of date.
	Invalidate func(rangeKey string)
	Logger     *slog.Logger
	Metrics    *Metrics
	Now        func() time.Time
}

// DefaultOptions are the defaults of every setting; the server's
// configuration starts from them.
func DefaultOptions() Options {
	return Options{
		Interval:          5 * time.Second,
		Grace:             10 * time.Second,
		MaxClients:        50_000,
		MaxClientsPerAddr: 1000,
		MaxRanges:         1000,
		MaxRangesPerAddr:  100,
		Heartbeat:         15 * time.Second,
		WriteTimeout:      5 * time.Second,
		Retry:             3 * time.Second,
		Writers:           64,
		Refreshers:        16,
	}
}

// withDefaults fills every zero field.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&o.Interval, d.Interval)
	set(&o.LeaseTTL, o.Interval/2)
	set(&o.Grace, d.Grace)
	set(&o.Heartbeat, d.Heartbeat)
	set(&o.WriteTimeout, d.WriteTimeout)
	set(&o.Retry, d.Retry)
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&o.MaxClients, d.MaxClients}, {&o.MaxClientsPerAddr, d.MaxClientsPerAddr},
		{&o.MaxRanges, d.MaxRanges}, {&o.MaxRangesPerAddr, d.MaxRangesPerAddr}, {&o.Writers, d.Writers},
		{&o.Refreshers, d.Refreshers},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
