-- 006_audit_log.sql: append-only, hash-chained audit log.
--
-- Every row carries prev_hash (the row_hash of the row before it, or 32 zero
-- bytes for the first row) and
--
--   row_hash = sha256(prev_hash || convert_to(audit_canonical(row), 'UTF8'))
--
-- where audit_canonical() is a JSON array of the row's fields with a fixed
-- order and a fixed timestamp format (independent of TimeZone / DateStyle).
-- The BEFORE INSERT trigger fills in id, at, prev_hash and row_hash itself;
-- whatever the client supplies for them is overwritten.  Inserts are
-- serialised on the single row of audit_chain_head (locked until the
-- inserting transaction ends), so ids are handed out in chain order, and a
-- REPEATABLE READ / SERIALIZABLE writer that raced another one gets a
-- serialization failure (SQLSTATE 40001: retry) instead of forking the chain.
--
-- UPDATE, DELETE and TRUNCATE raise an exception for everyone.  Only a
-- superuser can get past that (ALTER TABLE ... DISABLE TRIGGER, or
-- session_replication_role = replica), and audit_verify() then reports it.

SET LOCAL search_path = public;

CREATE SEQUENCE audit_log_id_seq;

CREATE TABLE audit_log (
    -- assigned by the chain trigger, in chain order (gaps are possible:
    -- a rolled-back insert consumes an id)
    id                 bigint PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- no foreign key: the log outlives the operators it names
    operator_id        bigint,
    operator_username  text CHECK (length(operator_username) <= 256),
    -- e.g. 'auth.login', 'auth.login_failed', 'tenant.create', 'cert.revoke'
    action             text NOT NULL
                       CHECK (action ~ '^[a-z][a-z0-9_.:-]{0,63}$'),
    -- e.g. 'tenant', 'certificate', 'plan', 'operator', 'session', 'setting'
    target_type        text CHECK (target_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    target_id          text CHECK (length(target_id) <= 256),
    client_addr        inet,
    details            jsonb NOT NULL DEFAULT '{}'
                       CHECK (jsonb_typeof(details) = 'object'),
    prev_hash          bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    row_hash           bytea NOT NULL CHECK (octet_length(row_hash) = 32)
);

ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_operator_id_idx ON audit_log (operator_id)
    WHERE operator_id IS NOT NULL;
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id)
    WHERE target_type IS NOT NULL;


-- The head of the chain: one row, only touched by the SECURITY DEFINER
-- functions below (the application roles have no privilege on it).
-- last_id = 0 and 32 zero bytes while the log is empty.

CREATE TABLE audit_chain_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id    bigint NOT NULL,
    last_hash  bytea NOT NULL CHECK (octet_length(last_hash) = 32)
);

INSERT INTO audit_chain_head (singleton, last_id, last_hash)
VALUES (true, 0, decode(repeat('00', 32), 'hex'));


-- Canonical text of a row, the input to its hash (after prev_hash).
-- Changing this function invalidates every existing row_hash: don't.

CREATE FUNCTION audit_canonical(a audit_log) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, public
AS $$
    SELECT jsonb_build_array(
               a.id,
               to_char(a.at AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               a.operator_id,
               a.operator_username,
               a.action,
               a.target_type,
               a.target_id,
               a.client_addr::text,
               a.details
           )::text
$$;


CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    head_hash  bytea;
BEGIN
    -- serialises concurrent inserts until this transaction ends
    SELECT last_hash INTO STRICT head_hash
      FROM audit_chain_head
       FOR UPDATE;

    NEW.id := nextval('audit_log_id_seq');
    NEW.at := clock_timestamp();
    NEW.prev_hash := head_hash;
    NEW.row_hash := sha256(head_hash
                           || convert_to(audit_canonical(NEW), 'UTF8'));

    UPDATE audit_chain_head
       SET last_id = NEW.id, last_hash = NEW.row_hash;

    RETURN NEW;
END
$$;

-- "zz": BEFORE triggers fire in name order, and this one must see the row
-- as it will be stored
CREATE TRIGGER audit_log_zz_chain
    BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();


CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- statement level, so that even an UPDATE/DELETE matching no row fails
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_chain_head_protect
    BEFORE DELETE OR TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();


-- audit_verify(): walks the chain in id order and returns the id of the
-- first row whose prev_hash is not the previous row's row_hash or whose
-- row_hash does not match its content; NULL when the chain is intact.
-- When rows were removed from the end, it returns the id the chain head
-- says was last (a row that no longer exists).  STABLE: the whole walk and
-- the head are read from one snapshot, so concurrent inserts are not
-- reported as breaks.

CREATE FUNCTION audit_verify() RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    r         audit_log;
    head      audit_chain_head;
    expected  bytea := decode(repeat('00', 32), 'hex');
    walked_id bigint := 0;
BEGIN
    SELECT * INTO STRICT head FROM audit_chain_head;

    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        IF r.id > head.last_id
           OR r.prev_hash IS DISTINCT FROM expected
           OR r.row_hash IS DISTINCT FROM
              sha256(r.prev_hash || convert_to(audit_canonical(r), 'UTF8'))
        THEN
            RETURN r.id;
        END IF;

        expected := r.row_hash;
        walked_id := r.id;
    END LOOP;

    IF walked_id <> head.last_id OR expected <> head.last_hash THEN
        RETURN head.last_id;
    END IF;

    RETURN NULL;
END
$$;
