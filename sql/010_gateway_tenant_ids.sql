-- 010_gateway_tenant_ids.sql: every tenant id, deleted tenants' included,
-- for the gateway's usage flush.  The flush inserts only rows of tenants
-- that exist (usage_daily references tenants), and filtered them through
-- gateway_registry, which leaves deleted tenants out: the usage a tenant
-- had before its deletion and that was not flushed yet was dropped, never
-- billed.  Owned by the migration superuser, like the gateway's other
-- views: the gateway needs no privilege on tenants.

SET LOCAL search_path = public;

CREATE VIEW gateway_tenant_ids AS
SELECT id AS tenant_id FROM tenants;

GRANT SELECT ON gateway_tenant_ids TO nutripro_gateway;
