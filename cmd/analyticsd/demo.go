package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/liveanalytics/analyticsd/internal/ingest"
	"github.com/liveanalytics/analyticsd/storage"
)

// demoUsers is the demo's user pool at the end of its history; it keeps
// growing with the live events.
const demoUsers = 20_000

// startDemo seeds an empty database with a realistic history (daily and
// weekly rhythm, mild growth, a user pool growing with the events; see
// storage.Model), then starts a goroutine (owned by wg, stopped by ctx)
// that continues it live, second by second, at the rate the history has at
// that time of day. The live events go through w, the path
// POST /api/v1/events takes (one transaction, COPY), so they count as
// accepted events (source "demo"); the seed is a bulk load and does not.
func startDemo(ctx context.Context, db *storage.DB, w ingest.Writer, events int64, days int, log *slog.Logger, wg *sync.WaitGroup) error {
	if days < 1 {
		return fmt.Errorf("%w: --demo-days must be at least 1", errUsage)
	}
	has, err := db.HasEvents(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if !has && events > 0 {
		log.Info("demo: seeding an empty database", "events", events, "days", days)
		st, err := db.Seed(ctx, storage.SeedOptions{Events: events, Days: days, Users: demoUsers, End: now})
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		log.Info("demo: seeded", "events", st.Events, "elapsed", st.Elapsed.String())
	}
	// On a database seeded earlier the same model goes on: its rate is the
	// one the default seed has at this time of day.
	live := storage.NewModel(now, days, max(events, 1), demoUsers, false).Live(rand.Uint64(), nil)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				batch := live.Second(now)
				if len(batch) == 0 {
					continue
				}
				if _, _, err := w.WriteEvents(ctx, "", "", nil, batch); err != nil && ctx.Err() == nil {
					log.Warn("demo: insert failed", "err", err)
				}
			}
		}
	}()
	return nil
}
