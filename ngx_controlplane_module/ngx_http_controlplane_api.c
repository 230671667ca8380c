
/*
 * The control plane's route table: method, path, the roles allowed, and
 * for most routes one parameterised statement whose single text column is
 * the JSON answer.  Every write carries its audit row in the same
 * statement (a data-modifying CTE), so a change and its record commit or
 * fail together.  Tenant managers are scoped in the statement itself:
 * "scope" is their tenant id (NULL for the other roles), and another
 * tenant's rows are simply not found (404).
 *
 * Parameters ($1, $2, ... in the order of "params"):
 *     op, user, role, scope, addr    the operator's id, name, role, tenant
 *                                    scope; the client's address
 *     s0, s1                         numeric path segments ("{}")
 *     key                            a path segment naming a setting
 *     body                           the JSON body, checked against "schema"
 *     limit, cursor                  keyset pagination (bounded)
 *     q:NAME                         a query argument, or NULL
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/evp.h>

#include "ngx_http_controlplane_module.h"
#include "ngx_http_controlplane_crypto.h"


static ngx_int_t ngx_http_controlplane_param(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, ngx_str_t *token, const char **value);
static ngx_int_t ngx_http_controlplane_param_error(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_controlplane_answer(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_cert_time(const ASN1_TIME *t,
    u_char *buf);


#define CP_AUDIT(action, target, id, details)                                 \
    "a AS (INSERT INTO audit_log (operator_id, operator_username, action,"    \
    " target_type, target_id, client_addr, details) SELECT $1::bigint, $2, '" \
    action "', '" target "', " id ", $3::inet, " details " FROM "


static ngx_http_controlplane_route_t  ngx_http_controlplane_routes[] = {

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/health"),
      NGX_HTTP_CP_PUBLIC, ngx_http_controlplane_health,
      NULL, NULL, NULL, 0, NULL, NULL },

    /* sessions */

    { NGX_HTTP_POST, ngx_string("/api/v1/session"),
      NGX_HTTP_CP_PUBLIC, ngx_http_controlplane_login,
      "auth.login", NULL, NULL, 201,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"required\":[\"username\",\"password\",\"totp\"],"
      "\"properties\":{"
      /*
       * the form user names are created in: ASCII only, so that the login
       * limit's key (ASCII lower case) and the database's lower() agree
       */
      "\"username\":{\"type\":\"string\",\"pattern\":"
                    "\"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$\"},"
      "\"password\":{\"type\":\"string\",\"minLength\":1,"
                    "\"maxLength\":1024},"
      "\"totp\":{\"type\":\"string\",\"pattern\":\"^[0-9]{6}$\"}}}",
      NULL },

    { NGX_HTTP_DELETE, ngx_string("/api/v1/session"),
      NGX_HTTP_CP_ANY, ngx_http_controlplane_logout,
      NULL, NULL, NULL, 0, NULL, NULL },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/session"),
      NGX_HTTP_CP_ANY, ngx_http_controlplane_whoami,
      NULL, NULL, NULL, 0, NULL, NULL },

    /* plans */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/plans"),
      NGX_HTTP_CP_PUBLIC, ngx_http_controlplane_plans_list,
      NULL, NULL, NULL, 0, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/api/v1/plans"),
      NGX_HTTP_CP_ADMIN, NULL,
      "plan.create", "op,user,addr,body",
      "WITH b AS (SELECT $4::jsonb AS j),"
      " p AS (INSERT INTO plans (name, description, rate_per_sec, burst,"
      " monthly_quota, price_monthly_cents, price_per_1k_cents, routes)"
      " SELECT j->>'name', coalesce(j->>'description', ''),"
      " (j->>'rate_per_sec')::numeric, (j->>'burst')::int,"
      " (j->>'monthly_quota')::bigint,"
      " coalesce((j->>'price_monthly_cents')::bigint, 0),"
      " coalesce((j->>'price_per_1k_cents')::int, 0),"
      " CASE WHEN j ? 'routes' AND jsonb_typeof(j->'routes') = 'array'"
      " THEN ARRAY(SELECT jsonb_array_elements_text(j->'routes')) END"
      " FROM b RETURNING *), "
      CP_AUDIT("plan.create", "plan", "p.id::text",
               "jsonb_build_object('name', p.name)") "p RETURNING id)"
      " SELECT row_to_json(p)::text FROM p, a",
      201,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"required\":[\"name\",\"rate_per_sec\",\"burst\"],"
      "\"properties\":{"
      "\"name\":{\"type\":\"string\",\"pattern\":"
                "\"^[a-z0-9][a-z0-9_-]{0,62}$\"},"
      "\"description\":{\"type\":\"string\",\"maxLength\":1000},"
      "\"rate_per_sec\":{\"type\":\"number\",\"exclusiveMinimum\":0,"
                        "\"maximum\":1000000},"
      "\"burst\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000000},"
      "\"monthly_quota\":{\"type\":[\"integer\",\"null\"],\"minimum\":0},"
      "\"price_monthly_cents\":{\"type\":\"integer\",\"minimum\":0},"
      "\"price_per_1k_cents\":{\"type\":\"integer\",\"minimum\":0,"
                              "\"maximum\":2147483647},"
      "\"routes\":{\"type\":[\"array\",\"null\"],\"maxItems\":64,"
                  "\"uniqueItems\":true,\"items\":{\"type\":\"string\","
                  "\"pattern\":\"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$\"}}}}",
      NULL },

    /* the whole plan, unit prices and route scope included: admins */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/plans/{}"),
      NGX_HTTP_CP_ADMIN, NULL,
      "plan.get", "s0",
      "SELECT row_to_json(p)::text FROM plans p WHERE p.id = $1::bigint",
      200, NULL, NULL },

    { NGX_HTTP_PATCH, ngx_string("/api/v1/plans/{}"),
      NGX_HTTP_CP_ADMIN, NULL,
      "plan.update", "op,user,addr,s0,body",
      "WITH b AS (SELECT $5::jsonb AS j),"
      " p AS (UPDATE plans SET"
      " description = coalesce(j->>'description', description),"
      " rate_per_sec = coalesce((j->>'rate_per_sec')::numeric, rate_per_sec),"
      " burst = coalesce((j->>'burst')::int, burst),"
      " monthly_quota = CASE WHEN j ? 'monthly_quota'"
      " THEN (j->>'monthly_quota')::bigint ELSE monthly_quota END,"
      " price_monthly_cents = coalesce((j->>'price_monthly_cents')::bigint,"
      " price_monthly_cents),"
      " price_per_1k_cents = coalesce((j->>'price_per_1k_cents')::int,"
      " price_per_1k_cents),"
      " routes = CASE WHEN NOT j ? 'routes' THEN routes"
      " WHEN jsonb_typeof(j->'routes') = 'array'"
      " THEN ARRAY(SELECT jsonb_array_elements_text(j->'routes')) END"
      " FROM b WHERE plans.id = $4::bigint RETURNING plans.*), "
      CP_AUDIT("plan.update", "plan", "p.id::text", "(SELECT j FROM b)")
      "p RETURNING id)"
      " SELECT row_to_json(p)::text FROM p, a",
      200,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"minProperties\":1,\"properties\":{"
      "\"description\":{\"type\":\"string\",\"maxLength\":1000},"
      "\"rate_per_sec\":{\"type\":\"number\",\"exclusiveMinimum\":0,"
                        "\"maximum\":1000000},"
      "\"burst\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000000},"
      "\"monthly_quota\":{\"type\":[\"integer\",\"null\"],\"minimum\":0},"
      "\"price_monthly_cents\":{\"type\":\"integer\",\"minimum\":0},"
      "\"price_per_1k_cents\":{\"type\":\"integer\",\"minimum\":0,"
                              "\"maximum\":2147483647},"
      "\"routes\":{\"type\":[\"array\",\"null\"],\"maxItems\":64,"
                  "\"uniqueItems\":true,\"items\":{\"type\":\"string\","
                  "\"pattern\":\"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$\"}}}}",
      NULL },

    /* tenants */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/tenants"),
      NGX_HTTP_CP_ANY, NULL,
      "tenant.list", "scope,cursor,limit",
      "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY x.id),"
      " '[]'), 'limit', $3::int, 'next_cursor', CASE WHEN count(*) = $3::int"
      " THEN max(x.id)::text END)::text"
      " FROM (SELECT t.id, t.slug, t.name, p.name AS plan, t.status,"
      " t.created_at FROM tenants t JOIN plans p ON p.id = t.plan_id"
      " WHERE t.deleted_at IS NULL AND ($1::bigint IS NULL OR t.id = $1)"
      " AND t.id > $2::bigint ORDER BY t.id LIMIT $3::int) x",
      200, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/api/v1/tenants"),
      NGX_HTTP_CP_ADMIN|NGX_HTTP_CP_ONBOARDING, NULL,
      "tenant.create", "op,user,addr,body",
      "WITH b AS (SELECT $4::jsonb AS j),"
      " t AS (INSERT INTO tenants (slug, name, plan_id)"
      " SELECT j->>'slug', j->>'name', (SELECT id FROM plans WHERE name ="
      " coalesce(j->>'plan', (SELECT value #>> '{}' FROM settings"
      " WHERE key = 'default_plan'))) FROM b RETURNING *), "
      CP_AUDIT("tenant.create", "tenant", "t.id::text",
               "jsonb_build_object('slug', t.slug)") "t RETURNING id)"
      " SELECT json_build_object('id', t.id, 'slug', t.slug, 'name', t.name,"
      " 'plan', (SELECT name FROM plans WHERE id = t.plan_id),"
      " 'status', t.status, 'created_at', t.created_at)::text FROM t, a",
      201,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"required\":[\"slug\",\"name\"],"
      "\"properties\":{"
      "\"slug\":{\"type\":\"string\",\"pattern\":"
                "\"^[a-z0-9][a-z0-9_-]{0,62}$\"},"
      "\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":200},"
      "\"plan\":{\"type\":\"string\",\"pattern\":"
                "\"^[a-z0-9][a-z0-9_-]{0,62}$\"}}}",
      NULL },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/tenants/{}"),
      NGX_HTTP_CP_ANY, NULL,
      "tenant.get", "scope,s0",
      "SELECT json_build_object('id', t.id, 'slug', t.slug, 'name', t.name,"
      " 'plan', p.name, 'status', t.status, 'created_at', t.created_at)::text"
      " FROM tenants t JOIN plans p ON p.id = t.plan_id"
      " WHERE t.id = $2::bigint AND t.deleted_at IS NULL"
      " AND ($1::bigint IS NULL OR t.id = $1)",
      200, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/api/v1/tenants/{}/suspend"),
      NGX_HTTP_CP_ADMIN, NULL,
      "tenant.suspend", "op,user,addr,s0",
      "WITH t AS (UPDATE tenants SET status = 'suspended'"
      " WHERE id = $4::bigint AND deleted_at IS NULL RETURNING *), "
      CP_AUDIT("tenant.suspend", "tenant", "t.id::text", "'{}'::jsonb")
      "t RETURNING id)"
      " SELECT json_build_object('id', t.id, 'slug', t.slug,"
      " 'status', t.status)::text FROM t, a",
      200, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/api/v1/tenants/{}/resume"),
      NGX_HTTP_CP_ADMIN, NULL,
      "tenant.resume", "op,user,addr,s0",
      "WITH t AS (UPDATE tenants SET status = 'active'"
      " WHERE id = $4::bigint AND deleted_at IS NULL RETURNING *), "
      CP_AUDIT("tenant.resume", "tenant", "t.id::text", "'{}'::jsonb")
      "t RETURNING id)"
      " SELECT json_build_object('id', t.id, 'slug', t.slug,"
      " 'status', t.status)::text FROM t, a",
      200, NULL, NULL },

    { NGX_HTTP_DELETE, ngx_string("/api/v1/tenants/{}"),
      NGX_HTTP_CP_ADMIN, NULL,
      "tenant.delete", "op,user,addr,s0",
      "WITH t AS (UPDATE tenants SET deleted_at = now()"
      " WHERE id = $4::bigint AND deleted_at IS NULL RETURNING *), "
      CP_AUDIT("tenant.delete", "tenant", "t.id::text",
               "jsonb_build_object('slug', t.slug)") "t RETURNING id)"
      " SELECT json_build_object('id', t.id, 'slug', t.slug,"
      " 'deleted', true)::text FROM t, a",
      200, NULL, NULL },

    /* certificates */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/tenants/{}/certificates"),
      NGX_HTTP_CP_ANY, NULL,
      "certificate.list", "scope,s0",
      "SELECT coalesce(json_agg(json_build_object('id', c.id,"
      " 'fingerprint_sha256', encode(c.fingerprint_sha256, 'hex'),"
      " 'subject', c.subject, 'serial', c.serial, 'not_before', c.not_before,"
      " 'not_after', c.not_after, 'status', c.status, 'revoked_at',"
      " c.revoked_at) ORDER BY c.id), '[]')::text"
      " FROM tenants t LEFT JOIN tenant_certificates c ON c.tenant_id = t.id"
      " WHERE t.id = $2::bigint AND t.deleted_at IS NULL"
      " AND ($1::bigint IS NULL OR t.id = $1) GROUP BY t.id",
      200, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/api/v1/tenants/{}/certificates"),
      NGX_HTTP_CP_ANY, ngx_http_controlplane_certificate_add,
      "certificate.add", NULL, NULL, 201,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"required\":[\"pem\"],\"properties\":{"
      "\"pem\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":16384}}}",
      NULL },

    { NGX_HTTP_POST,
      ngx_string("/api/v1/tenants/{}/certificates/{}/revoke"),
      NGX_HTTP_CP_ADMIN|NGX_HTTP_CP_TENANT_MANAGER, NULL,
      "certificate.revoke", "op,user,addr,scope,s0,s1",
      "WITH c AS (UPDATE tenant_certificates c SET status = 'revoked',"
      " revoked_at = now() FROM tenants t WHERE c.id = $6::bigint"
      " AND c.tenant_id = $5::bigint AND t.id = c.tenant_id"
      " AND t.deleted_at IS NULL AND ($4::bigint IS NULL OR t.id = $4)"
      " AND c.status = 'active' RETURNING c.*), "
      CP_AUDIT("certificate.revoke", "certificate", "c.id::text",
               "jsonb_build_object('tenant_id', c.tenant_id,"
               " 'fingerprint_sha256', encode(c.fingerprint_sha256, 'hex'))")
      "c RETURNING id)"
      " SELECT json_build_object('id', c.id, 'status', c.status,"
      " 'revoked_at', c.revoked_at)::text FROM c, a",
      200, NULL, NULL },

    /* usage and billing */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/tenants/{}/usage"),
      NGX_HTTP_CP_ADMIN|NGX_HTTP_CP_TENANT_MANAGER, NULL,
      "usage.read", "scope,s0,q:from,q:to",
      "SELECT coalesce(json_agg(json_build_object('day', u.day,"
      " 'requests', u.requests, 'status_2xx', u.status_2xx,"
      " 'status_3xx', u.status_3xx, 'status_4xx', u.status_4xx,"
      " 'status_5xx', u.status_5xx, 'refused_auth', u.refused_auth,"
      " 'refused_route', u.refused_route, 'refused_rate', u.refused_rate,"
      " 'refused_quota', u.refused_quota,"
      " 'refused_validation', u.refused_validation,"
      " 'bytes_in', u.bytes_in, 'bytes_out', u.bytes_out) ORDER BY u.day)"
      " FILTER (WHERE u.day IS NOT NULL), '[]')::text"
      " FROM tenants t LEFT JOIN usage_daily u ON u.tenant_id = t.id"
      " AND u.day >= coalesce($3::date, date_trunc('month', now())::date)"
      " AND u.day <= coalesce($4::date, now()::date)"
      " AND u.day > coalesce($4::date, now()::date) - 366"
      " WHERE t.id = $2::bigint AND t.deleted_at IS NULL"
      " AND ($1::bigint IS NULL OR t.id = $1) GROUP BY t.id",
      200, NULL, NULL },

    /*
     * A read of billing data is audited in the same statement.  Pricing
     * internals (the plan's unit prices) are for admins: masked (null) for
     * tenant managers, who see their amounts.
     */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/tenants/{}/billing"),
      NGX_HTTP_CP_ADMIN|NGX_HTTP_CP_TENANT_MANAGER, NULL,
      "billing.read", "op,user,addr,scope,s0,q:month,role",
      "WITH m AS (SELECT coalesce(to_date($6::text, 'YYYY-MM'),"
      " date_trunc('month', now())::date) AS month"
      " WHERE $6::text IS NULL"
      " OR $6::text ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),"
      " t AS (SELECT t.* FROM tenants t WHERE t.id = $5::bigint"
      " AND t.deleted_at IS NULL AND ($4::bigint IS NULL OR t.id = $4)),"
      " u AS (SELECT coalesce(sum(requests), 0)::bigint AS requests"
      " FROM usage_daily, m, t WHERE usage_daily.tenant_id = t.id"
      " AND date_trunc('month', day::timestamp)::date = m.month),"
      " b AS (SELECT t.id, t.slug, p.name AS plan, m.month, u.requests,"
      " p.price_monthly_cents, p.price_per_1k_cents,"
      " p.price_monthly_cents + (u.requests * p.price_per_1k_cents + 999)"
      " / 1000 AS amount_cents FROM t JOIN plans p ON p.id = t.plan_id,"
      " m, u), "
      CP_AUDIT("billing.read", "tenant", "b.id::text",
               "jsonb_build_object('month', b.month)") "b RETURNING id)"
      " SELECT json_build_object('tenant_id', b.id, 'tenant', b.slug,"
      " 'month', to_char(b.month, 'YYYY-MM'), 'plan', b.plan,"
      " 'requests', b.requests, 'currency', 'USD',"
      " 'amount_cents', b.amount_cents,"
      " 'price_monthly_cents', CASE WHEN $7::text = 'admin'"
      " THEN b.price_monthly_cents END,"
      " 'price_per_1k_cents', CASE WHEN $7::text = 'admin'"
      " THEN b.price_per_1k_cents END,"
      " 'masked', CASE WHEN $7::text = 'admin' THEN '[]'::json ELSE"
      " '[\"price_monthly_cents\",\"price_per_1k_cents\"]'::json END)::text"
      " FROM b, a",
      200, NULL, NULL },

    /* operators */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/operators"),
      NGX_HTTP_CP_ADMIN, NULL,
      "operator.list", "cursor,limit",
      "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY x.id),"
      " '[]'), 'limit', $2::int, 'next_cursor', CASE WHEN count(*) = $2::int"
      " THEN max(x.id)::text END)::text"
      " FROM (SELECT o.id, o.username, o.role, o.tenant_id, o.disabled,"
      " o.locked_until, o.last_login_at, o.created_at FROM operators o"
      " WHERE o.id > $1::bigint ORDER BY o.id LIMIT $2::int) x",
      200, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/api/v1/operators"),
      NGX_HTTP_CP_ADMIN, ngx_http_controlplane_operator_add,
      "operator.create", NULL, NULL, 201,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"required\":[\"username\",\"role\"],\"properties\":{"
      "\"username\":{\"type\":\"string\",\"pattern\":"
                    "\"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$\"},"
      "\"role\":{\"enum\":[\"admin\",\"onboarding\",\"tenant_manager\"]},"
      "\"tenant_id\":{\"type\":\"integer\",\"minimum\":1}}}",
      NULL },

    { NGX_HTTP_PATCH, ngx_string("/api/v1/operators/{}"),
      NGX_HTTP_CP_ADMIN, NULL,
      "operator.update", "op,user,addr,s0,body",
      "WITH b AS (SELECT $5::jsonb AS j),"
      " o AS (UPDATE operators SET disabled = coalesce((j->>'disabled')"
      "::boolean, disabled), failed_logins = CASE WHEN (j->>'unlock')"
      "::boolean THEN 0 ELSE failed_logins END, locked_until = CASE WHEN"
      " (j->>'unlock')::boolean THEN NULL ELSE locked_until END FROM b"
      " WHERE id = $4::bigint RETURNING operators.*),"
      " s AS (UPDATE sessions SET revoked_at = now() FROM o"
      " WHERE sessions.operator_id = o.id AND o.disabled"
      " AND sessions.revoked_at IS NULL RETURNING sessions.id), "
      CP_AUDIT("operator.update", "operator", "o.id::text",
               "(SELECT j FROM b)") "o RETURNING id)"
      " SELECT json_build_object('id', o.id, 'username', o.username,"
      " 'role', o.role, 'disabled', o.disabled,"
      " 'locked_until', o.locked_until)::text FROM o, a",
      200,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"minProperties\":1,\"properties\":{"
      "\"disabled\":{\"type\":\"boolean\"},"
      "\"unlock\":{\"const\":true}}}",
      NULL },

    { NGX_HTTP_DELETE, ngx_string("/api/v1/operators/{}"),
      NGX_HTTP_CP_ADMIN, NULL,
      "operator.delete", "op,user,addr,s0",
      "WITH o AS (DELETE FROM operators WHERE id = $4::bigint"
      " AND id <> $1::bigint RETURNING *), "
      CP_AUDIT("operator.delete", "operator", "o.id::text",
               "jsonb_build_object('username', o.username)") "o RETURNING id)"
      " SELECT json_build_object('id', o.id, 'deleted', true)::text"
      " FROM o, a",
      200, NULL, NULL },

    /* settings */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/settings"),
      NGX_HTTP_CP_ADMIN, NULL,
      "settings.list", "",
      "SELECT coalesce(json_object_agg(key, value ORDER BY key), '{}')::text"
      " FROM settings",
      200, NULL, NULL },

    { NGX_HTTP_PUT, ngx_string("/api/v1/settings/{}"),
      NGX_HTTP_CP_ADMIN, NULL,
      "settings.update", "op,user,addr,key,body",
      "WITH s AS (INSERT INTO settings (key, value, updated_by)"
      " VALUES ($4, ($5::jsonb)->'value', $1::bigint)"
      " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
      " updated_by = EXCLUDED.updated_by, updated_at = now()"
      " RETURNING *), "
      CP_AUDIT("settings.update", "setting", "s.key",
               "jsonb_build_object('value', s.value)") "s RETURNING id)"
      " SELECT json_build_object(s.key, s.value)::text FROM s, a",
      200,
      "{\"type\":\"object\",\"additionalProperties\":false,"
      "\"required\":[\"value\"],\"properties\":{\"value\":true}}",
      NULL },

    /* the audit log */

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/audit"),
      NGX_HTTP_CP_ADMIN, NULL,
      "audit.list", "cursor,limit,q:from,q:to,q:operator,q:action",
      "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY"
      " x.id DESC), '[]'), 'limit', $2::int, 'next_cursor', CASE WHEN"
      " count(*) = $2::int THEN min(x.id)::text END)::text"
      " FROM (SELECT id, at, operator_id, operator_username, action,"
      " target_type, target_id, host(client_addr) AS client_addr, details"
      " FROM audit_log WHERE ($1::bigint = 0 OR id < $1::bigint)"
      " AND ($3::timestamptz IS NULL OR at >= $3::timestamptz)"
      " AND ($4::timestamptz IS NULL OR at < $4::timestamptz)"
      " AND ($5::text IS NULL OR operator_username = $5::text)"
      " AND ($6::text IS NULL OR action = $6::text)"
      " ORDER BY id DESC LIMIT $2::int) x",
      200, NULL, NULL },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_string("/api/v1/audit/verify"),
      NGX_HTTP_CP_ADMIN, NULL,
      "audit.verify", "",
      "SELECT json_build_object('intact', v IS NULL, 'first_broken_id', v,"
      " 'rows', (SELECT count(*) FROM audit_log))::text"
      " FROM audit_verify() v",
      200, NULL, NULL },

    { 0, ngx_null_string, 0, NULL, NULL, NULL, NULL, 0, NULL, NULL }
};


/* the client's address, NUL-terminated for libpq */

char *
ngx_http_controlplane_addr(ngx_http_request_t *r)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, r->connection->addr_text.len + 1);

    if (p) {
        ngx_cpystrn(p, r->connection->addr_text.data,
                    r->connection->addr_text.len + 1);
    }

    return (char *) p;
}


ngx_http_controlplane_route_t *
ngx_http_controlplane_routes_get(void)
{
    return ngx_http_controlplane_routes;
}


/* at exit: the schemas are compiled once per process and kept */

void
ngx_http_controlplane_routes_free(void)
{
    ngx_http_controlplane_route_t  *route;

    for (route = ngx_http_controlplane_routes; route->path.len; route++) {
        if (route->compiled) {
            mealapi_schema_free(route->compiled);
            route->compiled = NULL;
        }
    }
}


/*
 * The routes' body schemas are constants of the module: compiled once
 * per process, at the first configuration (a bad one fails nginx -t), and
 * freed when the process exits.
 */

ngx_int_t
ngx_http_controlplane_routes_init(ngx_conf_t *cf)
{
    json_t                         *doc;
    json_error_t                    jerr;
    ngx_http_controlplane_route_t  *route;
    char                            err[256];

    for (route = ngx_http_controlplane_routes; route->path.len; route++) {

        if (route->schema == NULL || route->compiled) {
            continue;
        }

        doc = json_loads(route->schema, JSON_REJECT_DUPLICATES, &jerr);

        if (doc == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "controlplane: schema of %V: %s",
                               &route->path, jerr.text);
            return NGX_ERROR;
        }

        route->compiled = mealapi_schema_compile(doc, err, sizeof(err));
        json_decref(doc);

        if (route->compiled == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "controlplane: schema of %V: %s",
                               &route->path, err);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the generic handler: parameters from the spec, then the statement */

ngx_int_t
ngx_http_controlplane_run(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                         *p, *last, *comma;
    ngx_int_t                       rc, n;
    ngx_str_t                       token;
    ngx_http_controlplane_route_t  *route;

    route = ctx->route;
    n = 0;

    p = (u_char *) route->params;
    last = p + ngx_strlen(route->params);

    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        token.data = p;
        token.len = comma - p;
        p = comma + 1;

        if (n == NGX_HTTP_CONTROLPLANE_MAX_PARAMS) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_controlplane_param(r, ctx, &token, &ctx->values[n]);

        if (rc != NGX_OK) {
            return ngx_http_controlplane_param_error(r, rc);
        }

        n++;
    }

    return ngx_http_controlplane_query(r, ctx, route->name, route->sql,
                                       (int) n, ngx_http_controlplane_answer);
}


static ngx_int_t
ngx_http_controlplane_param(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, ngx_str_t *token, const char **value)
{
    u_char                            *p, *dst, *src;
    size_t                             i;
    ngx_int_t                          n;
    ngx_str_t                          arg, *seg;
    ngx_http_controlplane_loc_conf_t  *clcf;

#define cp_is(s)  (token->len == sizeof(s) - 1                                \
                   && ngx_strncmp(token->data, s, sizeof(s) - 1) == 0)

    *value = NULL;

    if (cp_is("op") || cp_is("user") || cp_is("role") || cp_is("scope")) {

        if (!ctx->has_operator) {
            return NGX_ERROR;
        }

        if (cp_is("op")) {
            p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_sprintf(p, "%L%Z", ctx->operator.id);
            *value = (char *) p;

        } else if (cp_is("user")) {
            *value = (char *) ctx->operator.username.data;

        } else if (cp_is("role")) {
            *value = (char *) ctx->operator.role.data;

        } else if (ctx->operator.tenant_id.len) {
            *value = (char *) ctx->operator.tenant_id.data;
        }

        return NGX_OK;
    }

    if (cp_is("addr")) {
        *value = ngx_http_controlplane_addr(r);
        return *value ? NGX_OK : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cp_is("s0") || cp_is("s1") || cp_is("key")) {
        seg = &ctx->segments[token->data[0] == 'k' ? 0 : token->data[1] - '0'];

        /* ids are positive integers, setting keys plain names: else 404 */

        for (i = 0; i < seg->len; i++) {
            if (token->data[0] == 'k'
                ? !((seg->data[i] >= 'a' && seg->data[i] <= 'z')
                    || (seg->data[i] >= '0' && seg->data[i] <= '9')
                    || seg->data[i] == '_' || seg->data[i] == '.')
                : !(seg->data[i] >= '0' && seg->data[i] <= '9'))
            {
                break;
            }
        }

        if (i != seg->len || seg->len > 18 || seg->len == 0) {
            return NGX_DECLINED;
        }

        p = ngx_pnalloc(r->pool, seg->len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(p, seg->data, seg->len + 1);
        *value = (char *) p;
        return NGX_OK;
    }

    if (cp_is("body")) {
        *value = (char *) ctx->body_text.data;
        return NGX_OK;
    }

    if (cp_is("limit") || cp_is("cursor")) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

        if (cp_is("limit")) {
            n = clcf->max_page < 50 ? (ngx_int_t) clcf->max_page : 50;

            if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
                n = ngx_atoi(arg.data, arg.len);
                if (n <= 0 || (ngx_uint_t) n > clcf->max_page) {
                    goto invalid;
                }
            }

        } else {
            n = 0;

            if (ngx_http_arg(r, (u_char *) "cursor", 6, &arg) == NGX_OK) {
                n = (arg.len > 18) ? NGX_ERROR : ngx_atoi(arg.data, arg.len);
                if (n == NGX_ERROR) {
                    goto invalid;
                }
            }
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(p, "%i%Z", n);
        *value = (char *) p;
        return NGX_OK;
    }

    if (token->len > 2 && token->data[0] == 'q' && token->data[1] == ':') {

        if (ngx_http_arg(r, token->data + 2, token->len - 2, &arg) != NGX_OK
            || arg.len == 0)
        {
            return NGX_OK;
        }

        if (arg.len > 256) {
            goto invalid;
        }

        dst = ngx_pnalloc(r->pool, arg.len + 1);
        if (dst == NULL) {
            return NGX_ERROR;
        }

        p = dst;
        src = arg.data;
        ngx_unescape_uri(&dst, &src, arg.len, 0);

        /* text parameters end at NUL: refuse rather than truncate */

        if (ngx_strlchr(p, dst, '\0')) {
            goto invalid;
        }

        *dst = '\0';
        *value = (char *) p;
        return NGX_OK;
    }

#undef cp_is

    return NGX_ERROR;

invalid:

    return NGX_ABORT;
}


/*
 * A parameter that cannot be: NGX_DECLINED, a path segment that names
 * nothing (404); NGX_ABORT, a query argument that is invalid (400).
 */

static ngx_int_t
ngx_http_controlplane_param_error(ngx_http_request_t *r, ngx_int_t rc)
{
    switch (rc) {

    case NGX_DECLINED:
        return ngx_nutripro_problem(r, NGX_HTTP_NOT_FOUND, "not-found",
                                    "Not Found", "no such resource", NULL);

    case NGX_ABORT:
        return ngx_http_controlplane_invalid(r, "invalid-parameter",
                                             "a query parameter is invalid",
                                             NULL);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/* one row, one text column: the answer; no row: not found (or scoped) */

static ngx_int_t
ngx_http_controlplane_answer(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    PGresult  *res;

    res = ctx->op.res;

    if (PQntuples(res) == 0) {
        return ngx_nutripro_problem(r, NGX_HTTP_NOT_FOUND, "not-found",
                                    "Not Found", "no such resource", NULL);
    }

    if (PQnfields(res) != 1 || PQgetisnull(res, 0, 0)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_controlplane_send_text(r, ctx->route->status,
                                           (u_char *) PQgetvalue(res, 0, 0),
                                           PQgetlength(res, 0, 0));
}


/*
 * POST /api/v1/tenants/{id}/certificates {"pem": "..."}: parsed with
 * OpenSSL, it must chain to the tenant CA and be valid now; stored by its
 * SHA-256 fingerprint.  Onboarding operators register a tenant's first
 * certificates only (while it has never had one: a tenant whose
 * certificates were all revoked is not theirs to re-register); tenant
 * managers their own tenant's.  The tenant's row is updated, not read:
 * its lock makes two concurrent first registrations one (009_...sql).
 */

ngx_int_t
ngx_http_controlplane_certificate_add(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    int                                rc;
    BIO                               *bio;
    X509                              *cert;
    u_char                            *p;
    json_t                            *pem;
    ngx_uint_t                         i;
    unsigned int                       len;
    X509_STORE_CTX                    *store;
    ngx_http_controlplane_loc_conf_t  *clcf;
    u_char                             md[EVP_MAX_MD_SIZE];

    static ngx_str_t  tokens[] = {
        ngx_string("op"), ngx_string("user"), ngx_string("addr"),
        ngx_string("scope"), ngx_string("s0")
    };

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    if (clcf->tenant_ca == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "controlplane: no \"controlplane_tenant_ca\"");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pem = json_object_get(ctx->body, "pem");

    bio = BIO_new_mem_buf(json_string_value(pem),
                          (int) json_string_length(pem));
    if (bio == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (cert == NULL) {
        ERR_clear_error();
        return ngx_http_controlplane_invalid(r, "invalid-certificate",
                                             "not a PEM certificate", NULL);
    }

    store = X509_STORE_CTX_new();

    if (store == NULL
        || !X509_STORE_CTX_init(store, clcf->tenant_ca, cert, NULL))
    {
        X509_STORE_CTX_free(store);
        X509_free(cert);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    X509_STORE_CTX_set_purpose(store, X509_PURPOSE_SSL_CLIENT);

    rc = X509_verify_cert(store);
    len = (unsigned int) X509_STORE_CTX_get_error(store);
    X509_STORE_CTX_free(store);
    ERR_clear_error();

    if (rc != 1) {
        X509_free(cert);
        return ngx_http_controlplane_invalid(r, "invalid-certificate",
                   len == X509_V_ERR_CERT_HAS_EXPIRED
                   ? "the certificate has expired"
                   : len == X509_V_ERR_CERT_NOT_YET_VALID
                     ? "the certificate is not valid yet"
                     : "the certificate does not chain to the tenant CA",
                   NULL);
    }

    /*
     * $1..$5 op, user, addr, scope, tenant; $6 "onboarding"; $7 subject,
     * $8 serial, $9 not before, $10 not after, $11 fingerprint
     */

    for (i = 0; i < 5; i++) {
        rc = ngx_http_controlplane_param(r, ctx, &tokens[i],
                                         &ctx->values[i]);
        if (rc != NGX_OK) {
            X509_free(cert);
            return ngx_http_controlplane_param_error(r, rc);
        }
    }

    ctx->values[5] = (ctx->operator.role_bit == NGX_HTTP_CP_ONBOARDING)
                     ? "t" : "f";

    p = ngx_pnalloc(r->pool, 512 + 1 + 128 + 1 + 2 * 32 + 2 * 32 + 1);
    if (p == NULL || !X509_digest(cert, EVP_sha256(), md, &len)) {
        X509_free(cert);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->values[6] = (char *) p;
    bio = BIO_new(BIO_s_mem());

    if (bio == NULL
        || X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
                              XN_FLAG_RFC2253) < 0)
    {
        BIO_free(bio);
        X509_free(cert);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = BIO_read(bio, p, 511);
    BIO_free(bio);
    p += rc > 0 ? rc : 0;
    *p++ = '\0';

    ctx->values[7] = (char *) p;
    bio = BIO_new(BIO_s_mem());

    if (bio == NULL
        || i2a_ASN1_INTEGER(bio, X509_get0_serialNumber(cert)) < 0)
    {
        BIO_free(bio);
        X509_free(cert);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = BIO_read(bio, p, 127);
    BIO_free(bio);
    p += rc > 0 ? rc : 0;
    *p++ = '\0';

    ctx->values[8] = (char *) p;

    if (ngx_http_controlplane_cert_time(X509_get0_notBefore(cert), p)
        != NGX_OK)
    {
        X509_free(cert);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p += 32;
    ctx->values[9] = (char *) p;

    if (ngx_http_controlplane_cert_time(X509_get0_notAfter(cert), p)
        != NGX_OK)
    {
        X509_free(cert);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p += 32;
    ctx->values[10] = (char *) p;
    p = ngx_hex_dump(p, md, len);
    *p = '\0';

    X509_free(cert);

    return ngx_http_controlplane_query(r, ctx, "certificate.add",
        "WITH t AS (UPDATE tenants t SET first_certificate_at ="
        " coalesce(t.first_certificate_at, now()) WHERE t.id = $5::bigint"
        " AND t.deleted_at IS NULL AND ($4::bigint IS NULL OR t.id = $4)"
        " AND NOT ($6::boolean AND t.first_certificate_at IS NOT NULL)"
        " RETURNING t.id),"
        " c AS (INSERT INTO tenant_certificates (tenant_id,"
        " fingerprint_sha256, subject, serial, not_before, not_after)"
        " SELECT t.id, decode($11, 'hex'), $7, $8, $9::timestamptz,"
        " $10::timestamptz FROM t RETURNING *), "
        CP_AUDIT("certificate.add", "certificate", "c.id::text",
                 "jsonb_build_object('tenant_id', c.tenant_id,"
                 " 'fingerprint_sha256', encode(c.fingerprint_sha256, 'hex'))")
        "c RETURNING id)"
        " SELECT json_build_object('id', c.id, 'tenant_id', c.tenant_id,"
        " 'fingerprint_sha256', encode(c.fingerprint_sha256, 'hex'),"
        " 'subject', c.subject, 'serial', c.serial, 'not_before',"
        " c.not_before, 'not_after', c.not_after, 'status', c.status)::text"
        " FROM c, a",
        11, ngx_http_controlplane_answer);
}


static ngx_int_t
ngx_http_controlplane_cert_time(const ASN1_TIME *t, u_char *buf)
{
    struct tm  tm;

    if (!ASN1_TIME_to_tm(t, &tm)) {
        return NGX_ERROR;
    }

    ngx_sprintf(buf, "%04d-%02d-%02d %02d:%02d:%02d+00%Z",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);

    return NGX_OK;
}


/*
 * POST /api/v1/operators {"username", "role", "tenant_id"}: the server
 * makes the password and the TOTP secret and shows them once, in the
 * answer; it keeps the password's scrypt hash and the sealed secret.
 */

typedef struct {
    char                           password[40];
    char                           secret32[40];
} ngx_http_controlplane_newop_t;


static ngx_int_t ngx_http_controlplane_operator_hashed(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_operator_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);


ngx_int_t
ngx_http_controlplane_operator_add(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    size_t                             len;
    u_char                            *p;
    ngx_http_controlplane_newop_t     *newop;
    ngx_http_controlplane_loc_conf_t  *clcf;
    u_char                             raw[20], sealed[CP_SEALED_MAX];

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    if (!clcf->has_secret_key) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "controlplane: operators need "
                      "\"controlplane_secret_key\"");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    newop = ngx_pcalloc(r->pool, sizeof(ngx_http_controlplane_newop_t));
    p = ngx_pnalloc(r->pool, 2 * CP_SEALED_MAX + 1);
    if (newop == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a 20-byte password (base32) and a 20-byte TOTP secret */

    if (cp_random(raw, sizeof(raw)) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cp_base32_encode(raw, sizeof(raw), newop->password);

    if (cp_random(raw, sizeof(raw)) != 0
        || cp_secret_seal(clcf->secret_key, raw, sizeof(raw), sealed, &len)
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cp_base32_encode(raw, sizeof(raw), newop->secret32);
    ngx_explicit_memzero(raw, sizeof(raw));

    ctx->values[5] = (char *) p;
    p = ngx_hex_dump(p, sealed, len);
    *p = '\0';

    ctx->data = newop;

    return ngx_http_controlplane_hash_password(r, ctx, newop->password,
                                               ngx_strlen(newop->password),
                                               ngx_http_controlplane_operator_hashed);
}


static ngx_int_t
ngx_http_controlplane_operator_hashed(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    ngx_int_t   rc;
    ngx_str_t   tokens[3];
    json_t     *tenant;
    u_char     *p;
    ngx_uint_t  i;

    if (ngx_http_controlplane_new_hash(ctx) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&tokens[0], "op");
    ngx_str_set(&tokens[1], "user");
    ngx_str_set(&tokens[2], "addr");

    for (i = 0; i < 3; i++) {
        rc = ngx_http_controlplane_param(r, ctx, &tokens[i], &ctx->values[i]);
        if (rc != NGX_OK) {
            return ngx_http_controlplane_param_error(r, rc);
        }
    }

    /* $4 body, $5 hash, $6 sealed secret (set before) */

    ctx->values[3] = (char *) ctx->body_text.data;
    ctx->values[4] = ngx_http_controlplane_new_hash(ctx);

    tenant = json_object_get(ctx->body, "tenant_id");
    ctx->values[6] = NULL;

    if (json_is_integer(tenant)) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_sprintf(p, "%L%Z", (int64_t) json_integer_value(tenant));
        ctx->values[6] = (char *) p;
    }

    return ngx_http_controlplane_query(r, ctx, "operator.create",
        "WITH b AS (SELECT $4::jsonb AS j),"
        " o AS (INSERT INTO operators (username, role, tenant_id,"
        " password_hash, totp_secret_enc) SELECT j->>'username', j->>'role',"
        " (SELECT id FROM tenants WHERE id = $7::bigint"
        " AND deleted_at IS NULL), $5, decode($6, 'hex') FROM b"
        " RETURNING *), "
        CP_AUDIT("operator.create", "operator", "o.id::text",
                 "jsonb_build_object('username', o.username, 'role', o.role,"
                 " 'tenant_id', o.tenant_id)") "o RETURNING id)"
        " SELECT json_build_object('id', o.id, 'username', o.username,"
        " 'role', o.role, 'tenant_id', o.tenant_id)::text FROM o, a",
        7, ngx_http_controlplane_operator_done);
}


static ngx_int_t
ngx_http_controlplane_operator_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    json_t                         *doc, *op;
    json_error_t                    jerr;
    ngx_http_controlplane_newop_t  *newop;
    u_char                          uri[256];

    newop = ctx->data;

    if (PQntuples(ctx->op.res) != 1) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    op = json_loads(PQgetvalue(ctx->op.res, 0, 0), 0, &jerr);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* usernames are [A-Za-z0-9._@-]: nothing to escape but "@" */

    ngx_snprintf(uri, sizeof(uri) - 1,
                 "otpauth://totp/NutriPro:%s?secret=%s&issuer=NutriPro"
                 "&algorithm=SHA1&digits=6&period=30%Z",
                 json_string_value(json_object_get(op, "username")),
                 newop->secret32);
    uri[sizeof(uri) - 1] = '\0';

    doc = json_pack("{s:o, s:s, s:s, s:s}", "operator", op,
                    "password", newop->password,
                    "totp_secret", newop->secret32,
                    "totp_uri", (char *) uri);

    ngx_explicit_memzero(newop, sizeof(ngx_http_controlplane_newop_t));

    return ngx_nutripro_send_json(r, NGX_HTTP_CREATED, doc,
                                  &ngx_http_controlplane_json_type);
}
