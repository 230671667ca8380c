-- 008_privileges.sql: least privilege for the two application roles
-- (threat DF3-1).  The file first takes everything away, then grants
-- exactly what each role needs, so running it again (or after a later
-- migration) always leaves the same state.
--
--   nutripro_gateway       reads gateway_registry and gateway_usage_month;
--                          inserts/updates the counters of usage_daily.
--                          Nothing else.
--   nutripro_controlplane  reads/writes its tables; reads usage; appends to
--                          and reads audit_log (never updates or deletes);
--                          runs audit_verify().
--
-- Neither role owns any object; the views run with their owner's (the
-- migration superuser's) rights on the tables behind them.

SET LOCAL search_path = public;

REVOKE ALL ON ALL TABLES IN SCHEMA public
    FROM PUBLIC, nutripro_controlplane, nutripro_gateway;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public
    FROM PUBLIC, nutripro_controlplane, nutripro_gateway;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public
    FROM PUBLIC, nutripro_controlplane, nutripro_gateway;


-- gateway ------------------------------------------------------------------

GRANT SELECT ON gateway_registry, gateway_usage_month TO nutripro_gateway;

-- INSERT ... ON CONFLICT (tenant_id, day) DO UPDATE SET c = u.c + EXCLUDED.c
-- needs INSERT on the inserted columns, UPDATE on the updated ones and
-- SELECT on the conflict columns and on the columns read by the update.
GRANT SELECT (tenant_id, day, requests,
              status_2xx, status_3xx, status_4xx, status_5xx,
              refused_auth, refused_route, refused_rate, refused_quota,
              refused_validation, bytes_in, bytes_out),
      INSERT (tenant_id, day, requests,
              status_2xx, status_3xx, status_4xx, status_5xx,
              refused_auth, refused_route, refused_rate, refused_quota,
              refused_validation, bytes_in, bytes_out),
      UPDATE (requests,
              status_2xx, status_3xx, status_4xx, status_5xx,
              refused_auth, refused_route, refused_rate, refused_quota,
              refused_validation, bytes_in, bytes_out)
    ON usage_daily TO nutripro_gateway;


-- control plane ------------------------------------------------------------

GRANT SELECT, INSERT, UPDATE, DELETE
    ON plans, tenants, tenant_certificates, operators, sessions, settings
    TO nutripro_controlplane;

GRANT USAGE
    ON SEQUENCE plans_id_seq, tenants_id_seq, tenant_certificates_id_seq,
                operators_id_seq, sessions_id_seq
    TO nutripro_controlplane;

GRANT SELECT ON usage_daily, gateway_usage_month, gateway_registry
    TO nutripro_controlplane;

-- append and read only; id, at, prev_hash and row_hash are set by the
-- chain trigger, which alone touches audit_chain_head and audit_log_id_seq
GRANT SELECT, INSERT ON audit_log TO nutripro_controlplane;

GRANT EXECUTE ON FUNCTION audit_verify() TO nutripro_controlplane;


-- No object, and not the database (whose owner owns schema public), may
-- belong to an application role: an owner can grant itself anything and
-- drop triggers.

DO $$
DECLARE
    bad  text;
BEGIN
    SELECT string_agg(c.relname, ', ') INTO bad
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
     WHERE r.rolname IN ('nutripro_controlplane', 'nutripro_gateway');

    IF bad IS NULL THEN
        SELECT string_agg(p.proname, ', ') INTO bad
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
         WHERE r.rolname IN ('nutripro_controlplane', 'nutripro_gateway');
    END IF;

    IF bad IS NULL THEN
        SELECT string_agg('schema ' || n.nspname, ', ') INTO bad
          FROM pg_catalog.pg_namespace n
          JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
         WHERE r.rolname IN ('nutripro_controlplane', 'nutripro_gateway');
    END IF;

    IF bad IS NULL THEN
        SELECT 'database ' || d.datname INTO bad
          FROM pg_catalog.pg_database d
          JOIN pg_catalog.pg_roles r ON r.oid = d.datdba
         WHERE d.datname = current_database()
           AND r.rolname IN ('nutripro_controlplane', 'nutripro_gateway');
    END IF;

    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'objects owned by an application role: %', bad;
    END IF;
END
$$;
