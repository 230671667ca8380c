-- pgbench script: the exact statement that GET /api/v1/plans?limit=3 sends
-- (ngx_http_controlplane_plans_list), with the same parameters: the first
-- page (cursor 0) of 3 plans.  Run against the nutripro database as the
-- control plane's role; it only reads.
\set cursor 0
\set lim 3
SELECT '[' || coalesce(string_agg(row_to_json(p)::text, ',' ORDER BY p.id), '') || ']', count(*), max(p.id) FROM (SELECT id, name, description, rate_per_sec, burst, monthly_quota FROM plans WHERE id > :cursor::bigint ORDER BY id LIMIT :lim::int) p;
