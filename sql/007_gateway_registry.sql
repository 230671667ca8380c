-- 007_gateway_registry.sql: the one view the gateway reads its tenant
-- registry from, and the NOTIFY that tells it to read again.
--
-- gateway_registry: one row per certificate (active or revoked) of every
-- tenant that is not soft-deleted, with its tenant and plan.  The gateway
-- refuses a request unless cert_status = 'active', tenant_status = 'active'
-- and not_before <= now < not_after; a fingerprint that is not in the view
-- is unknown and refused (fail closed).
--
-- Owned by the migration superuser: the gateway needs SELECT on the view
-- only, not on the tables behind it.

SET LOCAL search_path = public;

CREATE VIEW gateway_registry AS
SELECT c.id                                AS cert_id,
       encode(c.fingerprint_sha256, 'hex') AS fingerprint,
       c.status                            AS cert_status,
       c.not_before,
       c.not_after,
       t.id                                AS tenant_id,
       t.slug                              AS tenant_slug,
       t.name                              AS tenant_name,
       t.status                            AS tenant_status,
       p.id                                AS plan_id,
       p.name                              AS plan_name,
       p.rate_per_sec,
       p.burst,
       p.monthly_quota,
       p.routes
FROM tenant_certificates c
JOIN tenants t ON t.id = c.tenant_id
JOIN plans p ON p.id = t.plan_id
WHERE t.deleted_at IS NULL;


-- NOTIFY nutripro_registry on every change to a table the view is built
-- from.  Payload: '<table>:<op>:<id>', e.g. 'tenant_certificates:UPDATE:42',
-- 'tenants:DELETE:7', 'plans:INSERT:3' (op is INSERT, UPDATE or DELETE;
-- id is the row's id, i.e. cert_id, tenant_id or plan_id in the view).
-- Notifications are delivered when the writing transaction commits and
-- not at all if it rolls back; identical payloads within one transaction
-- are folded into one.

CREATE FUNCTION registry_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
DECLARE
    row_id  bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_id := OLD.id;
    ELSE
        row_id := NEW.id;
    END IF;

    PERFORM pg_notify('nutripro_registry',
                      TG_TABLE_NAME || ':' || TG_OP || ':' || row_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER plans_registry_notify
    AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH ROW EXECUTE FUNCTION registry_notify();

CREATE TRIGGER tenants_registry_notify
    AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION registry_notify();

CREATE TRIGGER tenant_certificates_registry_notify
    AFTER INSERT OR UPDATE OR DELETE ON tenant_certificates
    FOR EACH ROW EXECUTE FUNCTION registry_notify();
