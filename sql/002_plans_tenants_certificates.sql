-- 002_plans_tenants_certificates.sql: rate plans, tenants and their TLS
-- client certificates: everything the gateway registry is built from.

SET LOCAL search_path = public;

-- Shared helper: keep updated_at current on every UPDATE.  Runs as the
-- invoker; a trigger's change to NEW needs no column privilege.

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;


-- plans -------------------------------------------------------------------

CREATE TABLE plans (
    id                   bigserial PRIMARY KEY,
    name                 text NOT NULL UNIQUE
                         CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    description          text NOT NULL DEFAULT ''
                         CHECK (length(description) <= 1000),
    -- sustained rate in requests per second; fractions allowed (0.5 = one
    -- request every two seconds).  The gateway keeps it in milli-requests:
    -- (rate_per_sec * 1000)::bigint.
    rate_per_sec         numeric(10,3) NOT NULL
                         CHECK (rate_per_sec > 0 AND rate_per_sec <= 1000000),
    burst                integer NOT NULL CHECK (burst >= 1),
    -- requests per calendar month (UTC); NULL = unlimited
    monthly_quota        bigint CHECK (monthly_quota >= 0),
    price_monthly_cents  bigint NOT NULL DEFAULT 0
                         CHECK (price_monthly_cents >= 0),
    price_per_1k_cents   integer NOT NULL DEFAULT 0
                         CHECK (price_per_1k_cents >= 0),
    -- route names this plan may call; NULL = every route, '{}' = none.
    -- A one-dimensional array of plain tokens without NULLs, so its text
    -- form is {name,name,...} and never needs quoting.
    routes               text[]
                         CHECK (CASE
                                WHEN routes IS NULL OR cardinality(routes) = 0
                                    THEN true
                                WHEN routes::text !~ '^\{[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}(,[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127})*\}$'
                                    THEN false
                                ELSE array_position(routes, NULL) IS NULL
                                END),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER plans_set_updated_at
    BEFORE UPDATE ON plans
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO plans (name, description, rate_per_sec, burst, monthly_quota,
                   price_monthly_cents, price_per_1k_cents, routes)
VALUES
    ('free', 'Evaluation: 1 r/s, 10 000 requests a month',
     1, 5, 10000, 0, 0, NULL),
    ('standard', 'Production: 10 r/s, 1 000 000 requests a month',
     10, 20, 1000000, 4900, 20, NULL),
    ('enterprise', 'High volume: 100 r/s, no monthly quota',
     100, 200, NULL, 49900, 10, NULL)
ON CONFLICT (name) DO NOTHING;


-- tenants -----------------------------------------------------------------

CREATE TABLE tenants (
    id          bigserial PRIMARY KEY,
    -- stable external identifier; never reused, even after soft delete
    slug        text NOT NULL UNIQUE
                CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL
                CHECK (length(name) BETWEEN 1 AND 200),
    plan_id     bigint NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- soft delete: a deleted tenant disappears from gateway_registry
    deleted_at  timestamptz
);

CREATE INDEX tenants_plan_id_idx ON tenants (plan_id);

CREATE TRIGGER tenants_set_updated_at
    BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();


-- tenant_certificates -----------------------------------------------------

CREATE TABLE tenant_certificates (
    id                  bigserial PRIMARY KEY,
    tenant_id           bigint NOT NULL
                        REFERENCES tenants (id) ON DELETE RESTRICT,
    -- SHA-256 over the DER encoding of the certificate (note: nginx's
    -- $ssl_client_fingerprint is SHA-1, so the gateway hashes the DER itself)
    fingerprint_sha256  bytea NOT NULL UNIQUE
                        CHECK (octet_length(fingerprint_sha256) = 32),
    subject             text NOT NULL CHECK (length(subject) <= 4096),
    issuer              text CHECK (length(issuer) <= 4096),
    serial              text NOT NULL CHECK (serial ~ '^[0-9A-Fa-f]{1,128}$'),
    not_before          timestamptz NOT NULL,
    not_after           timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'revoked')),
    revoked_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (not_after > not_before),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);

CREATE INDEX tenant_certificates_tenant_id_idx
    ON tenant_certificates (tenant_id);

-- A certificate row is bound to one tenant and one key for life, and
-- revocation is final: to trust the certificate again, delete the row and
-- register it anew (both are audited by the control plane).

CREATE FUNCTION tenant_certificates_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
BEGIN
    IF NEW.fingerprint_sha256 <> OLD.fingerprint_sha256
       OR NEW.tenant_id <> OLD.tenant_id
    THEN
        RAISE EXCEPTION 'tenant_certificates: fingerprint and tenant are '
                        'immutable (id %)', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;

    IF OLD.status = 'revoked' AND NEW.status <> 'revoked' THEN
        RAISE EXCEPTION 'tenant_certificates: a revoked certificate cannot '
                        'be reactivated (id %)', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;

    RETURN NEW;
END
$$;

CREATE TRIGGER tenant_certificates_guard
    BEFORE UPDATE ON tenant_certificates
    FOR EACH ROW EXECUTE FUNCTION tenant_certificates_guard();
