-- Demo tenants (make demo): tenant-a on "standard", tenant-b on "free",
-- each with its dev certificate; fingerprints come in as psql variables.
INSERT INTO tenants (slug, name, plan_id)
SELECT 'tenant-a', 'Tenant A Meal Planner', id FROM plans WHERE name = 'standard'
ON CONFLICT (slug) DO NOTHING;
INSERT INTO tenants (slug, name, plan_id)
SELECT 'tenant-b', 'Tenant B Meal Planner', id FROM plans WHERE name = 'free'
ON CONFLICT (slug) DO NOTHING;
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after)
SELECT t.id, decode(:'fp_a', 'hex'), 'CN=tenant-a', '01', now() - interval '1 day', now() + interval '800 days'
FROM tenants t WHERE t.slug = 'tenant-a'
ON CONFLICT (fingerprint_sha256) DO NOTHING;
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after)
SELECT t.id, decode(:'fp_b', 'hex'), 'CN=tenant-b', '02', now() - interval '1 day', now() + interval '800 days'
FROM tenants t WHERE t.slug = 'tenant-b'
ON CONFLICT (fingerprint_sha256) DO NOTHING;
-- tenant-c is onboarded live by the demo: its certificate starts unknown
DELETE FROM tenant_certificates WHERE fingerprint_sha256 = decode(:'fp_c', 'hex');
DELETE FROM operators WHERE username IN ('demo-admin', 'demo-onboarding', 'demo-manager');
