-- Idempotent ingest: a batch retried with the same Idempotency-Key (per API
-- key) is written once; the retry gets the first answer. Rows older than a
-- day are deleted by the server.
CREATE TABLE ingest_idempotency (
    key_id     text        NOT NULL,
    idem_key   text        NOT NULL,
    body_hash  bytea       NOT NULL,
    accepted   integer     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX ingest_idempotency_created_at_idx ON ingest_idempotency (created_at);
