-- 005_usage.sql: per-tenant, per-day usage counters, written by the gateway
-- (additive upserts of the deltas it has counted), read by the control plane
-- for usage and billing, and summed per month for the gateway's quota.
--
-- day is the UTC calendar day; a month is the UTC calendar month.
--
-- Gateway upsert (one row per tenant and day, deltas only):
--
--   INSERT INTO usage_daily AS u (tenant_id, day, requests, status_2xx, ...)
--   VALUES ($1, $2, $3, $4, ...)
--   ON CONFLICT (tenant_id, day) DO UPDATE
--      SET requests = u.requests + EXCLUDED.requests,
--          status_2xx = u.status_2xx + EXCLUDED.status_2xx, ...

SET LOCAL search_path = public;

CREATE TABLE usage_daily (
    tenant_id           bigint NOT NULL
                        REFERENCES tenants (id) ON DELETE RESTRICT,
    day                 date NOT NULL,
    -- requests counted against the quota and billed (price_per_1k_cents)
    requests            bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    -- final status of the requests passed to the backend, by class
    status_2xx          bigint NOT NULL DEFAULT 0 CHECK (status_2xx >= 0),
    status_3xx          bigint NOT NULL DEFAULT 0 CHECK (status_3xx >= 0),
    status_4xx          bigint NOT NULL DEFAULT 0 CHECK (status_4xx >= 0),
    status_5xx          bigint NOT NULL DEFAULT 0 CHECK (status_5xx >= 0),
    -- requests the gateway refused, by reason (tenant known from the cert)
    refused_auth        bigint NOT NULL DEFAULT 0 CHECK (refused_auth >= 0),
    refused_route       bigint NOT NULL DEFAULT 0 CHECK (refused_route >= 0),
    refused_rate        bigint NOT NULL DEFAULT 0 CHECK (refused_rate >= 0),
    refused_quota       bigint NOT NULL DEFAULT 0 CHECK (refused_quota >= 0),
    refused_validation  bigint NOT NULL DEFAULT 0
                        CHECK (refused_validation >= 0),
    bytes_in            bigint NOT NULL DEFAULT 0 CHECK (bytes_in >= 0),
    bytes_out           bigint NOT NULL DEFAULT 0 CHECK (bytes_out >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

-- lets "WHERE month = $1" on gateway_usage_month use an index; the
-- expression must stay identical to the one in the view
CREATE INDEX usage_daily_month_idx
    ON usage_daily ((date_trunc('month', day::timestamp)::date), tenant_id);

CREATE TRIGGER usage_daily_set_updated_at
    BEFORE UPDATE ON usage_daily
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();


-- Requests per tenant per UTC calendar month: what the quota is checked
-- against.  Owned by the migration superuser, so a reader needs no
-- privilege on usage_daily.

CREATE VIEW gateway_usage_month AS
SELECT u.tenant_id,
       date_trunc('month', u.day::timestamp)::date AS month,
       sum(u.requests)::bigint                     AS requests
FROM usage_daily u
GROUP BY u.tenant_id, date_trunc('month', u.day::timestamp)::date;
