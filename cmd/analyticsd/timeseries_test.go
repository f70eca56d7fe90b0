package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

type seriesBody struct {
	Data []struct {
		T           string           `json:"t"`
		Events      int64            `json:"events"`
		UniqueUsers int64            `json:"uniqueUsers"`
		ByType      map[string]int64 `json:"byType"`
	} `json:"data"`
	Bucket string `json:"bucket"`
	TZ     string `json:"tz"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *server) series(t *testing.T, q url.Values) (int, seriesBody) {
	t.Helper()
	var b seriesBody
	code, _ := getJSON(t, s.base+"/api/v1/analytics/timeseries?"+q.Encode(), &b)
	return code, b
}

// filteredTruth is the plain SQL answer for one type in [from, to).
func filteredTruth(t *testing.T, conn *pgx.Conn, typ string, from, to time.Time) (events, users int64) {
	t.Helper()
	err := conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT user_id) FROM events
		WHERE created_at >= $1 AND created_at < $2 AND event_type = $3`, from, to, typ).Scan(&events, &users)
	if err != nil {
		t.Fatal(err)
	}
	return events, users
}

// waitRolledUp waits until the server's worker has no dirty minute left,
// so that the answers below come from the rollups, not the raw rows.
func waitRolledUp(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM rollup_dirty`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollup worker left %d dirty marks after 30 s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTimeseriesEndpoint(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ROLLUP_INTERVAL": "50ms"})
	ctx := context.Background()
	conn := pgxConnect(t, s.dbURL)
	defer conn.Close(ctx)

	// Three days around the end of DST in Berlin (2024-10-27 has 25 hours).
	berlin, _ := time.LoadLocation("Europe/Berlin")
	start := time.Date(2024, 10, 26, 0, 0, 0, 0, berlin)
	rng := rand.New(rand.NewPCG(3, 4))
	types := []string{"page_view", "click", "purchase"}
	rows := make([][]any, 0, 6000)
	for range 6000 {
		ts := start.Add(time.Duration(rng.Int64N(int64(73 * time.Hour)))).Truncate(time.Microsecond)
		rows = append(rows, []any{fmt.Sprintf("u%d", rng.IntN(300)), types[rng.IntN(len(types))], ts})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"user_id", "event_type", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	waitRolledUp(t, conn)

	last := time.Date(2024, 10, 28, 23, 59, 59, 999999000, berlin)
	q := url.Values{"from": {start.Format(time.RFC3339)}, "to": {last.Format(time.RFC3339Nano)}, "bucket": {"day"}, "tz": {"Europe/Berlin"}}
	code, body := s.series(t, q)
	if code != 200 || body.Bucket != "day" || body.TZ != "Europe/Berlin" || len(body.Data) != 3 {
		t.Fatalf("days: %d %+v", code, body)
	}
	for i, p := range body.Data {
		from := time.Date(2024, 10, 26+i, 0, 0, 0, 0, berlin)
		if p.T != from.Format(time.RFC3339) {
			t.Errorf("point %d labelled %s, want %s", i, p.T, from.Format(time.RFC3339))
		}
		want := groundTruth(t, conn, from, from.AddDate(0, 0, 1).Add(-time.Microsecond))
		if p.Events != want.Total || p.UniqueUsers != want.Users || !equalMaps(p.ByType, want.ByType) {
			t.Errorf("day %s: endpoint %+v, SQL %+v", p.T, p, want)
		}
	}

	// The same days as CSV: one row per day and type, adding up.
	resp, err := http.Get(s.base + "/api/v1/analytics/export.csv?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export.csv: %d %v %v", resp.StatusCode, resp.Header, err)
	}
	if strings.Join(records[0], ",") != "bucket_start,event_type,events,bucket_events,bucket_unique_users" || len(records) != 1+3*len(types) {
		t.Fatalf("export.csv: %d rows, header %v", len(records), records[0])
	}
	sums := map[string]int64{}
	for _, rec := range records[1:] {
		n, _ := strconv.ParseInt(rec[2], 10, 64)
		sums[rec[0]] += n
		if total, _ := strconv.ParseInt(rec[3], 10, 64); total != body.Data[(len(sums)-1)].Events {
			t.Fatalf("row %v: bucket_events differs from the series' %d", rec, body.Data[len(sums)-1].Events)
		}
	}
	for _, p := range body.Data {
		if sums[p.T] != p.Events {
			t.Errorf("CSV rows of %s add up to %d, the series says %d", p.T, sums[p.T], p.Events)
		}
	}

	// Hours across the DST change, for one type only.
	q.Set("bucket", "hour")
	q.Set("from", time.Date(2024, 10, 27, 0, 0, 0, 0, berlin).Format(time.RFC3339))
	q.Set("to", time.Date(2024, 10, 27, 23, 59, 59, 0, berlin).Format(time.RFC3339))
	q.Set("event_type", "click")
	code, body = s.series(t, q)
	if code != 200 || len(body.Data) != 25 {
		t.Fatalf("hours on the 25-hour day: %d, %d points", code, len(body.Data))
	}
	for _, p := range body.Data {
		from, _ := time.Parse(time.RFC3339, p.T)
		events, users := filteredTruth(t, conn, "click", from, from.Add(time.Hour))
		if p.Events != events || p.UniqueUsers != users || (events > 0 && p.ByType["click"] != events) || len(p.ByType) > 1 {
			t.Errorf("clicks in hour %s: endpoint %+v, SQL %d events %d users", p.T, p, events, users)
		}
	}

	// The summary takes the same filter.
	var sb summaryBody
	code, _ = getJSON(t, s.base+"/api/v1/analytics/summary?event_type=purchase&from="+url.QueryEscape(start.Format(time.RFC3339))+"&to="+url.QueryEscape(last.Format(time.RFC3339Nano)), &sb)
	got := sb.parse(t)
	events, users := filteredTruth(t, conn, "purchase", start, last.Add(time.Microsecond))
	if code != 200 || got.Total != events || got.Users != users || len(got.ByType) != 1 {
		t.Fatalf("summary of purchases: %d %+v, SQL %d events %d users", code, got, events, users)
	}

	// Without a bucket the server picks one.
	code, body = s.series(t, url.Values{"from": {"2024-10-26T10:00:00Z"}, "to": {"2024-10-26T11:00:00Z"}})
	if code != 200 || body.Bucket != "minute" || len(body.Data) != 61 || body.TZ != "UTC" {
		t.Fatalf("automatic bucket for an hour: %d %s, %d points", code, body.Bucket, len(body.Data))
	}

	for _, bad := range []struct {
		q    url.Values
		code string
	}{
		{url.Values{"from": {"now-1h"}, "to": {"now"}, "tz": {"Mars/Olympus_Mons"}}, "invalid_parameter"},
		{url.Values{"from": {"now-1h"}, "to": {"now"}, "bucket": {"week"}}, "invalid_parameter"},
		{url.Values{"from": {"now-30d"}, "to": {"now"}, "bucket": {"minute"}}, "range_too_large"},
		{url.Values{"from": {"now-1h"}, "to": {"now"}, "event_type": {string(make([]byte, 101))}}, "invalid_parameter"},
		{url.Values{"to": {"now"}}, "missing_parameter"},
	} {
		code, body := s.series(t, bad.q)
		if code != 400 || body.Error == nil || body.Error.Code != bad.code {
			t.Errorf("%v: %d %+v, want 400 %s", bad.q, code, body.Error, bad.code)
		}
	}
}
