-- Hours of zones offset by :30 and :45, and each bucket's user count.
--
-- Grains 5 and 6 are the hours [hh:30, hh+1:30) and [hh:15, hh+1:15) UTC:
-- the local hours of zones offset by :30 (India, Iran, Myanmar,
-- Newfoundland, central Australia) and by :45 (Nepal +05:45, Chatham
-- +12:45, Eucla +08:45). Each is computed from its 4 quarter-hours by the
-- worker, beside the hierarchy (nothing is computed from them). An hourly
-- series in those zones then reads one bucket per hour instead of 4.
--
-- users_count is the cardinality of users. A series bucket or a summary
-- that is exactly one rollup bucket reads it instead of the bitmap (which
-- is the bulk of a rollup row and lives out of line, in TOAST). Rows
-- written before this migration have NULL and are read as bitmaps until
-- the worker rewrites them; adding a nullable column rewrites nothing.
ALTER TABLE rollup_totals ADD COLUMN IF NOT EXISTS users_count bigint;
ALTER TABLE rollup_types ADD COLUMN IF NOT EXISTS users_count bigint;

-- Every offset hour with a minute in it is pending: the worker builds it
-- from the quarters (not from events), and readers take the 4 quarters
-- until it has.
INSERT INTO rollup_pending (grain, bucket)
SELECT DISTINCT g.grain, g.bucket
FROM rollup_totals t
CROSS JOIN LATERAL (VALUES
    (5, date_bin('1 hour', t.bucket, TIMESTAMPTZ '2000-01-01 00:30:00+00')),
    (6, date_bin('1 hour', t.bucket, TIMESTAMPTZ '2000-01-01 00:15:00+00'))
) AS g(grain, bucket)
WHERE t.grain = 0
ON CONFLICT DO NOTHING;
