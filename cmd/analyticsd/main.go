// Command analyticsd is the live analytics server: one binary that serves
// the API, the live stream and the dashboard, migrates its schema and
// generates demo data.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // time zones for ?tz= even where the system has none (scratch images)
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "analyticsd:", err)
		os.Exit(exitCode(err))
	}
}
