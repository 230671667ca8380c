-- 011_usage_flush_batches.sql: the gateway's usage flushes, by batch id,
-- so that a flush sent again is applied once.  A flush whose answer was
-- lost after the database committed it (a timeout during the commit, a
-- crash or failover between commit and answer, a worker stopped during
-- the flush) is sent again with the same batch ids: the statement inserts
-- its batch ids here first (ON CONFLICT DO NOTHING) and adds only the rows
-- whose batch was new.  The same statement forgets batches older than a
-- week.

SET LOCAL search_path = public;

CREATE TABLE usage_flush_batches (
    batch       bigint PRIMARY KEY,
    flushed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX usage_flush_batches_flushed_at_idx
    ON usage_flush_batches (flushed_at);

GRANT SELECT, INSERT, DELETE ON usage_flush_batches TO nutripro_gateway;
