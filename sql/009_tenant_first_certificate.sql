-- 009_tenant_first_certificate.sql: when a tenant's first certificate was
-- registered.  Onboarding operators register a tenant's first certificate
-- only.  The control plane sets this column in the statement that inserts
-- a certificate, through an UPDATE of the tenant's row: of two concurrent
-- first registrations the second waits for the first's row lock, finds
-- the column set and inserts nothing.

SET LOCAL search_path = public;

ALTER TABLE tenants ADD COLUMN first_certificate_at timestamptz;

UPDATE tenants t
SET first_certificate_at = c.first
FROM (SELECT tenant_id, min(created_at) AS first
      FROM tenant_certificates GROUP BY tenant_id) c
WHERE c.tenant_id = t.id;
