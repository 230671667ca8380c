-- 001_roles.sql: the two application roles and the database-wide baseline.
--
-- Roles are cluster-wide, so creation is idempotent (another database in the
-- same cluster may already have created them) and the attributes are
-- re-asserted every time.  No passwords are set here: the dev cluster uses
-- trust/peer on the local socket and 127.0.0.1; a deployment sets passwords
-- (or client certificates) out of band.
--
-- Neither role owns anything: every object is created by the migration
-- superuser, and the roles only receive the grants in 008_privileges.sql.

SET LOCAL search_path = public;

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['nutripro_controlplane', 'nutripro_gateway'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r)
        THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;

        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB '
                       'NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT', r);
    END LOOP;
END
$$;

-- Database level: only the two roles (and superusers) may connect; nobody
-- else may create temporary objects.

DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC',
                   current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I '
                   'TO nutripro_controlplane, nutripro_gateway',
                   current_database());

    -- Per-database role defaults (DF4-3: a runaway statement or an abandoned
    -- transaction cannot hold the database).  The modules may lower them,
    -- or raise them with SET LOCAL for a known long statement.
    EXECUTE format('ALTER ROLE nutripro_gateway IN DATABASE %I '
                   'SET statement_timeout = %L', current_database(), '5s');
    EXECUTE format('ALTER ROLE nutripro_gateway IN DATABASE %I '
                   'SET lock_timeout = %L', current_database(), '2s');
    EXECUTE format('ALTER ROLE nutripro_gateway IN DATABASE %I '
                   'SET idle_in_transaction_session_timeout = %L',
                   current_database(), '10s');

    EXECUTE format('ALTER ROLE nutripro_controlplane IN DATABASE %I '
                   'SET statement_timeout = %L', current_database(), '10s');
    EXECUTE format('ALTER ROLE nutripro_controlplane IN DATABASE %I '
                   'SET lock_timeout = %L', current_database(), '5s');
    EXECUTE format('ALTER ROLE nutripro_controlplane IN DATABASE %I '
                   'SET idle_in_transaction_session_timeout = %L',
                   current_database(), '30s');
END
$$;

-- Schema level: PostgreSQL 15 already withholds CREATE from PUBLIC; withhold
-- USAGE too, and give it back to the two roles only.

REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO nutripro_controlplane, nutripro_gateway;

-- Functions are executable by PUBLIC by default.  Nothing created by the
-- migration superuser from now on is, unless granted explicitly.

ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
