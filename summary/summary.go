// Package summary is the domain of the analytics server: parsing and
// normalizing time ranges, the Summary type, time-series buckets, and the
// cache-aside Service that answers a range from a Cache or the Store.
//
// It declares the small interfaces it needs (Store, Aggregator, Cache) and
// knows no driver and no transport: no net/http, no Redis, no SQL.
package summary

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Summary is the aggregate of the events in one range.
type Summary struct {
	TotalEvents  int64      `json:"totalEvents"`
	UniqueUsers  int64      `json:"uniqueUsers"`
	EventsByType TypeCounts `json:"eventsByType"`
	// Effective, when set, is the half-open range the answer is exact for,
	// which differs from the one asked: an edge fell inside a range whose
	// raw events were dropped (RAW_RETENTION) at sub-minute precision and
	// was moved out to the minute. Answers show it in their period.
	Effective *Interval `json:"-"`
}

// TypeCount is the number of events of one type.
type TypeCount struct {
	Type  string
	Count int64
}

// TypeCounts is a list of per-type counts kept in descending count order
// (ties by name). It marshals to a JSON object whose keys keep that order, so
// a dashboard iterating the object sees the biggest type first, as the seed's
// ORDER BY count DESC did.
type TypeCounts []TypeCount

// Sort puts the counts in their canonical order: count descending, then type.
func (tc TypeCounts) Sort() {
	sort.Slice(tc, func(i, j int) bool {
		if tc[i].Count != tc[j].Count {
			return tc[i].Count > tc[j].Count
		}
		return tc[i].Type < tc[j].Type
	})
}

// Map returns the counts as a map.
func (tc TypeCounts) Map() map[string]int64 {
	m := make(map[string]int64, len(tc))
	for _, c := range tc {
		m[c.Type] = c.Count
	}
	return m
}

// MarshalJSON writes an object in the slice's order.
func (tc TypeCounts) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range tc {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(c.Type)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		fmt.Fprintf(&b, ":%d", c.Count)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object and restores the canonical order.
func (tc *TypeCounts) UnmarshalJSON(data []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	out := make(TypeCounts, 0, len(m))
	for k, v := range m {
		out = append(out, TypeCount{Type: k, Count: v})
	}
	out.Sort()
	*tc = out
	return nil
}

// Store computes a Summary from the system of record. The range is
// inclusive of both ends. The rollup work replaces the implementation, not
// this interface.
type Store interface {
	Summary(ctx context.Context, r Range) (Summary, error)
}

// Interval is a half-open span of time [From, To): the time series' bucket
// and the unit the store answers in.
type Interval struct {
	From, To time.Time
}

// Aggregator answers many intervals at once, all from one consistent
// snapshot of the data, optionally for one event type only ("" for all).
type Aggregator interface {
	Aggregate(ctx context.Context, eventType string, ivs []Interval) ([]Summary, error)
}

// ErrUnavailable is returned (wrapped) when neither the store nor a cached
// copy can answer.
var ErrUnavailable = errors.New("summary: data temporarily unavailable")
