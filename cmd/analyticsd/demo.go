package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/liveanalytics/analyticsd/storage"
)

const demoUsers = 5_000

// startDemo seeds an empty database with a modest data set, then starts a
// goroutine (owned by wg, stopped by ctx) that inserts a few live events
// every second so that a new user sees the numbers move.
func startDemo(ctx context.Context, db *storage.DB, events int64, log *slog.Logger, wg *sync.WaitGroup) error {
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
				if err := db.InsertRandom(ctx, 1+rand.IntN(12), now, demoUsers, nil); err != nil && ctx.Err() == nil {
					log.Warn("demo: insert failed", "err", err)
				}
			}
		}
	}()
	return nil
}
