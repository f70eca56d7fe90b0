-- Rollups: exact aggregates per minute, hour, day and month, so that any
-- range is answered from a few hundred precomputed buckets plus raw edges
-- shorter than a minute. See storage/rollup.go and the README's
-- "Rollups" section.

-- Dense 32-bit integers for user ids, so that a bucket's users fit a
-- roaring bitmap. Only the rollup worker inserts, one at a time.
CREATE TABLE user_dict (
    id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id varchar(255) NOT NULL UNIQUE
);

-- One row per non-empty bucket. grain: 0 minute, 1 hour, 2 day, 3 month,
-- all aligned in UTC. users is the portable roaring serialization of the
-- bucket's user_dict ids. version changes on every rewrite, so a decoded
-- bitmap can be cached in process under its version.
CREATE SEQUENCE rollup_version;

CREATE TABLE rollup_totals (
    grain       smallint    NOT NULL,
    bucket      timestamptz NOT NULL,
    version     bigint      NOT NULL DEFAULT nextval('rollup_version'),
    events      bigint      NOT NULL,
    users       bytea       NOT NULL,
    type_names  text[]      NOT NULL,
    type_counts bigint[]    NOT NULL,
    PRIMARY KEY (grain, bucket)
);

-- The same per event type, for the event_type= drill-down.
CREATE TABLE rollup_types (
    grain      smallint     NOT NULL,
    bucket     timestamptz  NOT NULL,
    event_type varchar(100) NOT NULL,
    version    bigint       NOT NULL DEFAULT nextval('rollup_version'),
    events     bigint       NOT NULL,
    users      bytea        NOT NULL,
    PRIMARY KEY (event_type, grain, bucket)
);
CREATE INDEX rollup_types_bucket_idx ON rollup_types (grain, bucket);

-- Minutes whose events changed since their rollup was computed. Append-only
-- (no unique key, no locks): a writer never waits for another writer or for
-- the worker, and the worker deletes only the rows its snapshot sees, so a
-- mark committed after the worker looked stays for the next round.
CREATE TABLE rollup_dirty (
    minute    timestamptz NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_dirty_minute_idx ON rollup_dirty (minute);

-- Hour, day and month buckets with a changed minute inside that the worker
-- has not recomputed yet (a minute marks all three ancestors at once). A bucket is recomputed once it has closed (its
-- end has passed), so the current hour, day and month are never rewritten
-- every second; until then, and while any minute inside it is dirty, a
-- query descends into its children instead of reading it. Only the worker
-- writes this table.
CREATE TABLE rollup_pending (
    grain  smallint    NOT NULL,
    bucket timestamptz NOT NULL,
    PRIMARY KEY (grain, bucket)
);

-- Statement-level triggers with transition tables: one INSERT ... SELECT
-- per statement or COPY, whatever its row count. They see every writer,
-- not only this server. search_path is pinned so that a producer with
-- another search_path still marks this schema's table.
CREATE FUNCTION rollup_mark_new() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO rollup_dirty (minute)
    SELECT DISTINCT date_trunc('minute', created_at, 'UTC') FROM new_rows WHERE isfinite(created_at);
    RETURN NULL;
END $$;

CREATE FUNCTION rollup_mark_old() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO rollup_dirty (minute)
    SELECT DISTINCT date_trunc('minute', created_at, 'UTC') FROM old_rows WHERE isfinite(created_at);
    RETURN NULL;
END $$;

CREATE FUNCTION rollup_mark_changed() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO rollup_dirty (minute)
    SELECT DISTINCT m FROM (
        SELECT date_trunc('minute', created_at, 'UTC') AS m FROM old_rows WHERE isfinite(created_at)
        UNION
        SELECT date_trunc('minute', created_at, 'UTC') FROM new_rows WHERE isfinite(created_at)
    ) changed;
    RETURN NULL;
END $$;

-- TRUNCATE events empties the rollups with it.
CREATE FUNCTION rollup_reset() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM rollup_totals;
    DELETE FROM rollup_types;
    DELETE FROM rollup_dirty;
    DELETE FROM rollup_pending;
    RETURN NULL;
END $$;

CREATE TRIGGER events_rollup_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_new();
CREATE TRIGGER events_rollup_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_old();
CREATE TRIGGER events_rollup_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_changed();
CREATE TRIGGER events_rollup_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION rollup_reset();

-- Events already in the table are rolled up by the worker like late ones.
INSERT INTO rollup_dirty (minute)
SELECT DISTINCT date_trunc('minute', created_at, 'UTC') FROM events WHERE isfinite(created_at);
