-- events becomes a table partitioned by range of created_at, so that old
-- raw events can be dropped a partition at a time (RAW_RETENTION) while
-- the rollups keep their exact counts. The rollup worker creates the
-- partitions (monthly by default, PARTITION_INTERVAL) ahead of time; a
-- default partition takes whatever falls outside them, and the worker
-- moves those rows into a partition when it creates one.
--
-- An existing table with rows is not rewritten: it becomes one partition,
-- FROM (MINVALUE) TO (its bound). storage.Migrate has already added and
-- validated, outside any transaction and while writers kept writing, the
-- CHECK constraint events_before_partitioning (created_at < bound), so
-- that ATTACH does not scan it. Without that constraint (the SQL run by
-- hand) it is added here, which scans the table under lock.
--
-- The id column stays unique through its identity sequence; there is no
-- unique index on it any more (a partitioned table's unique index must
-- include created_at, and building one would rewrite nothing but index a
-- hundred million rows). Nothing reads events by id.
DO $$
DECLARE
    bound   timestamptz;
    def     text;
    last_id bigint;
BEGIN
    -- Writers wait from here to the commit: the ids and the bound must not
    -- move under us.
    LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT 1 FROM events) THEN
        DROP TABLE events;
    ELSE
        SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
        WHERE conrelid = 'events'::regclass AND conname = 'events_before_partitioning' AND convalidated;
        IF def IS NULL THEN
            bound := date_trunc('month', greatest(now() + interval '1 day',
                (SELECT max(created_at) FROM events WHERE created_at < 'infinity')), 'UTC') + interval '1 month';
            ALTER TABLE events DROP CONSTRAINT IF EXISTS events_before_partitioning;
            EXECUTE format('ALTER TABLE events ADD CONSTRAINT events_before_partitioning CHECK (created_at < %L::timestamptz)', bound);
        ELSE
            bound := substring(def FROM '''([^'']+)''')::timestamptz;
        END IF;
        SELECT coalesce(max(id), 0) INTO last_id FROM events;
        ALTER TABLE events RENAME TO events_unpartitioned;
        ALTER INDEX events_created_at_idx RENAME TO events_unpartitioned_created_at_idx;
        ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
        DROP TRIGGER events_rollup_insert ON events_unpartitioned;
        DROP TRIGGER events_rollup_delete ON events_unpartitioned;
        DROP TRIGGER events_rollup_update ON events_unpartitioned;
        DROP TRIGGER events_rollup_truncate ON events_unpartitioned;
        ALTER TABLE events_unpartitioned ALTER COLUMN id DROP IDENTITY;
        CREATE TEMPORARY TABLE events_partitioning_bound ON COMMIT DROP AS SELECT bound, last_id;
    END IF;
END $$;

CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    varchar(255) NOT NULL,
    event_type varchar(100) NOT NULL,
    created_at timestamptz  NOT NULL
) PARTITION BY RANGE (created_at);

-- The same index as before, now on every partition (an attached table's
-- own index of the same definition becomes its partition, unbuilt).
CREATE INDEX events_created_at_idx ON events (created_at) INCLUDE (event_type, user_id);

CREATE TRIGGER events_rollup_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_new();
CREATE TRIGGER events_rollup_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_old();
CREATE TRIGGER events_rollup_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_changed();
CREATE TRIGGER events_rollup_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION rollup_reset();

DO $$
DECLARE
    b record;
BEGIN
    IF to_regclass('pg_temp.events_partitioning_bound') IS NOT NULL THEN
        SELECT * INTO b FROM pg_temp.events_partitioning_bound;
        EXECUTE format('ALTER TABLE events ALTER COLUMN id RESTART WITH %s', b.last_id + 1);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION events_unpartitioned FOR VALUES FROM (MINVALUE) TO (%L)', b.bound);
    END IF;
END $$;

CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Raw events older than raw_from have been dropped (RAW_RETENTION); the
-- rollups answer for them at minute resolution. Rollups older than
-- rollups_from have been deleted (ROLLUP_RETENTION). NULL: nothing dropped.
-- One row; only the rollup worker writes it, in the transaction that drops.
CREATE TABLE retention (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    raw_from     timestamptz,
    rollups_from timestamptz
);
INSERT INTO retention DEFAULT VALUES;
