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

const demoUsers = 5_000

// startDemo seeds an empty database with a modest data set, then starts a
// goroutine (owned by wg, stopped by ctx) that writes a few live events
// every second so that a new user sees the numbers move. The live events go
// through w, the path POST /api/v1/events takes (one transaction, COPY),
// so they count as accepted events (source "demo"); the seed is a bulk
// load and does not.
func startDemo(ctx context.Context, db *storage.DB, w ingest.Writer, events int64, log *slog.Logger, wg *sync.WaitGroup) error {
	has, err := db.HasEvents(ctx)
	if err != nil {
		return err
	}
	if !has && events > 0 {
		log.Info("demo: seeding an empty database", "events", events, "days", 30)
		st, err := db.Seed(ctx, storage.SeedOptions{Events: events, Days: 30, Users: demoUsers})
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		log.Info("demo: seeded", "events", st.Events, "elapsed", st.Elapsed.String())
	}
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
				batch := storage.RandomEvents(1+rand.IntN(12), now, demoUsers, nil)
				if _, _, err := w.WriteEvents(ctx, "", "", nil, batch); err != nil && ctx.Err() == nil {
					log.Warn("demo: insert failed", "err", err)
				}
			}
		}
	}()
	return nil
}
