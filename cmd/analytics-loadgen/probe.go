package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

// prober measures freshness end to end: it POSTs one event of a type of
// its own to /api/v1/events every interval and times each from the 202
// until a live stream filtered by that type counts it.
type prober struct {
	o        options
	typ      string
	mu       sync.Mutex
	accepted []time.Time // accepted[i]: when probe i+1 got its 202
	fresh    latencies
	measured bool // after resetStats: only the steady state counts
	sentFrom int  // probes before the steady state are not counted
	lost     atomic.Int64
}

func newProber(o options) *prober {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &prober{o: o, typ: "lg_probe_" + hex.EncodeToString(b)}
}

// start opens the watching clients and the sender; both stop with ctx.
func (p *prober) start(ctx context.Context, wg *sync.WaitGroup, hc *http.Client) {
	for i := range p.o.probe.clients {
		target := p.o.targets[i%len(p.o.targets)]
		c := sse.NewClient(target + "/api/v1/analytics/stream?from=now-1h&to=now&event_type=" + url.QueryEscape(p.typ))
		c.Connection = hc
		c.ReconnectStrategy = &backoff.StopBackOff{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := int64(-1)
			_ = c.SubscribeRawWithContext(ctx, func(ev *sse.Event) {
				var body struct {
					Data struct {
						TotalEvents int64 `json:"totalEvents"`
					} `json:"data"`
				}
				if len(ev.Data) == 0 || json.Unmarshal(ev.Data, &body) != nil {
					return
				}
				now := time.Now()
				if seen >= 0 {
					p.shown(seen, body.Data.TotalEvents, now)
				}
				seen = max(seen, body.Data.TotalEvents)
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.o.probe.every)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := p.send(ctx, hc, p.o.targets[i%len(p.o.targets)]); err != nil && ctx.Err() == nil {
				p.lost.Add(1)
			}
		}
	}()
}

func (p *prober) send(ctx context.Context, hc *http.Client, target string) error {
	body := fmt.Sprintf(`[{"user_id":"probe","event_type":%q}]`, p.typ)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target+"/api/v1/events", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.o.probe.key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ingest answered %d", resp.StatusCode)
	}
	p.mu.Lock()
	p.accepted = append(p.accepted, time.Now())
	p.mu.Unlock()
	return nil
}

// shown records probes from+1..to as seen at now by one client.
func (p *prober) shown(from, to int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from + 1; i <= to && i <= int64(len(p.accepted)); i++ {
		if p.measured && int(i) > p.sentFrom {
			p.fresh.add(now.Sub(p.accepted[i-1]))
		}
	}
}

func (p *prober) resetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.measured = true
	p.sentFrom = len(p.accepted)
	p.fresh.reset()
	p.lost.Store(0)
}

// result is the freshness histogram, the probes sent in the steady state
// and those that failed or were never shown to a watching client.
func (p *prober) result() (map[int]int64, int64, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := int64(len(p.accepted) - p.sentFrom)
	// Each probe should be timed once per watching client.
	missing := sent*int64(p.o.probe.clients) - p.fresh.n.Load()
	// The last interval's probes may not be shown yet when the run ends.
	missing = max(missing-int64(p.o.probe.clients)*int64(p.o.interval/p.o.probe.every+1), 0)
	return p.fresh.sparse(), sent, p.lost.Load() + missing/int64(p.o.probe.clients)
}
