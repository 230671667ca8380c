-- 003_operators_sessions.sql: control-plane operators (password + TOTP) and
-- their sessions.  Secrets are never stored in the clear: password_hash is a
-- slow-hash string ("$scrypt$ln=15,r=8,p=1$<salt>$<hash>"), totp_secret_enc is the TOTP
-- key encrypted by the control plane, and a session is stored as the
-- SHA-256 of its random token.

SET LOCAL search_path = public;

CREATE TABLE operators (
    id               bigserial PRIMARY KEY,
    -- unique case-insensitively (see operators_username_lower_key); look
    -- up with WHERE lower(username) = lower($1) to use the index
    username         text NOT NULL
                     CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role             text NOT NULL
                     CHECK (role IN ('admin', 'onboarding', 'tenant_manager')),
    -- the one tenant a tenant_manager manages; NULL for the other roles
    tenant_id        bigint REFERENCES tenants (id) ON DELETE RESTRICT,
    password_hash    text NOT NULL CHECK (length(password_hash) BETWEEN 1 AND 1024),
    -- NULL until the operator has enrolled a TOTP key
    totp_secret_enc  bytea CHECK (octet_length(totp_secret_enc) <= 1024),
    -- last RFC 6238 time step accepted: a code is only accepted for a step
    -- greater than this (UPDATE ... WHERE totp_last_step < $step)
    totp_last_step   bigint NOT NULL DEFAULT 0 CHECK (totp_last_step >= 0),
    failed_logins    integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until     timestamptz,
    disabled         boolean NOT NULL DEFAULT false,
    last_login_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT operators_tenant_scope_check
        CHECK ((role = 'tenant_manager') = (tenant_id IS NOT NULL))
);

CREATE UNIQUE INDEX operators_username_lower_key ON operators (lower(username));
CREATE INDEX operators_tenant_id_idx ON operators (tenant_id)
    WHERE tenant_id IS NOT NULL;

CREATE TRIGGER operators_set_updated_at
    BEFORE UPDATE ON operators
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();


CREATE TABLE sessions (
    id            bigserial PRIMARY KEY,
    operator_id   bigint NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    -- SHA-256 of the random session token; the token itself is never stored
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    client_addr   inet,
    CHECK (expires_at > created_at)
);

CREATE INDEX sessions_operator_id_idx ON sessions (operator_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
