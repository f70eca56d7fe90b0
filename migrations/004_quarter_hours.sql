-- A quarter-hour grain between minute and hour, so that hours in zones
-- offset by :30 or :45 (India, Nepal, parts of Australia) are 4 buckets
-- rather than 60, and range edges need at most 3 quarters and 14 minutes.
-- Grain numbers are now 0 minute, 1 quarter, 2 hour, 3 day, 4 month. The
-- coarse rows are dropped and every parent of an existing minute is marked
-- pending: the worker rebuilds them from the minutes (not from events), and
-- readers descend to the minutes until it has.
DELETE FROM rollup_totals WHERE grain > 0;
DELETE FROM rollup_types WHERE grain > 0;
DELETE FROM rollup_pending;
INSERT INTO rollup_pending (grain, bucket)
SELECT DISTINCT g.grain, g.bucket
FROM rollup_totals t
CROSS JOIN LATERAL (VALUES
    (1, date_bin('15 minutes', t.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')),
    (2, date_trunc('hour', t.bucket, 'UTC')),
    (3, date_trunc('day', t.bucket, 'UTC')),
    (4, date_trunc('month', t.bucket, 'UTC'))
) AS g(grain, bucket)
WHERE t.grain = 0;
