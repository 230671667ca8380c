-- Demo tenants (make demo): tenant-a on "standard", tenant-b on "free",
-- each with its dev certificate, active again whatever happened before;
-- tenant-c's certificate starts unknown (the demo onboards it live).
-- Fingerprints come in as psql variables.
INSERT INTO tenants (slug, name, plan_id)
SELECT 'tenant-a', 'Tenant A Meal Planner', id FROM plans WHERE name = 'standard'
ON CONFLICT (slug) DO NOTHING;
INSERT INTO tenants (slug, name, plan_id)
SELECT 'tenant-b', 'Tenant B Meal Planner', id FROM plans WHERE name = 'free'
ON CONFLICT (slug) DO NOTHING;
UPDATE tenants SET status = 'active', deleted_at = NULL,
    plan_id = (SELECT id FROM plans WHERE name = CASE slug WHEN 'tenant-a'
               THEN 'standard' ELSE 'free' END)
WHERE slug IN ('tenant-a', 'tenant-b');

DELETE FROM tenant_certificates
WHERE fingerprint_sha256 IN (decode(:'fp_a', 'hex'), decode(:'fp_b', 'hex'),
                             decode(:'fp_c', 'hex'));
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after)
SELECT t.id, decode(:'fp_a', 'hex'), 'CN=tenant-a', '01', now() - interval '1 day', now() + interval '800 days'
FROM tenants t WHERE t.slug = 'tenant-a';
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after)
SELECT t.id, decode(:'fp_b', 'hex'), 'CN=tenant-b', '02', now() - interval '1 day', now() + interval '800 days'
FROM tenants t WHERE t.slug = 'tenant-b';

DELETE FROM operators WHERE username IN ('demo-admin', 'demo-onboarding', 'demo-manager');
