
/*
 * Control plane resources: health, plans, and configured queries.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_controlplane_module.h"


static ngx_int_t ngx_http_controlplane_health_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_plans_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_fixed_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_page(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);


ngx_int_t
ngx_http_controlplane_health(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    return ngx_http_controlplane_query(r, ctx, "health", "SELECT 1", 0,
                                       ngx_http_controlplane_health_done);
}


static ngx_int_t
ngx_http_controlplane_health_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    json_t  *doc;

    doc = json_pack("{s:s, s:{s:s%, s:b, s:I, s:I}}",
                    "status", "ok",
                    "database",
                    "name", ctx->op.db->name.data, ctx->op.db->name.len,
                    "reachable", 1,
                    "round_trip_ms", (json_int_t) ctx->op.query_time,
                    "wait_ms", (json_int_t) ctx->op.wait_time);

    return ngx_nutripro_send_json(r, NGX_HTTP_OK, doc,
                                  &ngx_http_controlplane_json_type);
}


/*
 * ?limit=N&cursor=C: keyset pagination.  ctx->values[0] is the cursor
 * (the last id seen, "0" for the first page), ctx->values[1] the limit.
 */

static ngx_int_t
ngx_http_controlplane_page(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                            *p;
    ngx_int_t                          n;
    ngx_str_t                          arg;
    ngx_http_controlplane_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    n = clcf->max_page < 50 ? clcf->max_page : 50;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        n = ngx_atoi(arg.data, arg.len);

        if (n <= 0 || (ngx_uint_t) n > clcf->max_page) {
            return NGX_DECLINED;
        }
    }

    ctx->limit = n;

    p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->values[1] = (char *) p;
    p = ngx_sprintf(p, "%i%Z", n);

    ctx->values[0] = "0";

    if (ngx_http_arg(r, (u_char *) "cursor", 6, &arg) == NGX_OK) {
        if (arg.len > 18 || ngx_atoi(arg.data, arg.len) == NGX_ERROR) {
            return NGX_DECLINED;
        }

        ctx->values[0] = (char *) p;
        ngx_cpystrn(p, arg.data, arg.len + 1);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_controlplane_plans_list(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_controlplane_page(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_nutripro_problem(r, NGX_HTTP_BAD_REQUEST,
                                    "invalid-pagination", "Bad Request",
                                    "limit must be 1..page limit and cursor "
                                    "a value from next_cursor", NULL);
    }

    /*
     * PostgreSQL builds the JSON page; the module only frames it.  The
     * catalogue is public: unit prices and route scopes, which billing
     * shows to admins only, are not in it.
     */

    return ngx_http_controlplane_query(r, ctx, "plans_list",
        "SELECT '[' || coalesce(string_agg(row_to_json(p)::text, ','"
            " ORDER BY p.id), '') || ']', count(*), max(p.id)"
        " FROM (SELECT id, name, description, rate_per_sec, burst,"
            " monthly_quota"
            " FROM plans WHERE id > $1::bigint ORDER BY id LIMIT $2::int) p",
        2, ngx_http_controlplane_plans_done);
}


static ngx_int_t
ngx_http_controlplane_plans_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    size_t      len;
    ngx_buf_t  *b;
    ngx_int_t   count;
    ngx_str_t   items, last;
    PGresult   *res;

    res = ctx->op.res;

    if (PQntuples(res) != 1 || PQnfields(res) != 3) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    items.data = (u_char *) PQgetvalue(res, 0, 0);
    items.len = PQgetlength(res, 0, 0);
    count = ngx_atoi((u_char *) PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1));
    last.data = (u_char *) PQgetvalue(res, 0, 2);
    last.len = PQgetlength(res, 0, 2);

    len = sizeof("{\"items\":,\"limit\":,\"next_cursor\":\"\"}\n")
          + items.len + NGX_INT_T_LEN + last.len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"items\":%V,\"limit\":%i,", &items,
                          ctx->limit);

    if (count == ctx->limit) {
        b->last = ngx_sprintf(b->last, "\"next_cursor\":\"%V\"}\n", &last);

    } else {
        b->last = ngx_sprintf(b->last, "\"next_cursor\":null}\n");
    }

    return ngx_nutripro_send_buf(r, NGX_HTTP_OK, b,
                                 &ngx_http_controlplane_json_type);
}


/* controlplane_query: the configured statement with variable parameters */

ngx_int_t
ngx_http_controlplane_fixed_query(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                            *p;
    ngx_str_t                          value;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_controlplane_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    cv = clcf->query_args->elts;

    for (i = 0; i < clcf->query_args->nelts; i++) {
        if (ngx_http_complex_value(r, &cv[i], &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* text parameters end at NUL: refuse rather than truncate */

        if (ngx_strlchr(value.data, value.data + value.len, '\0')) {
            return ngx_nutripro_problem(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid-parameter", "Bad Request",
                                        "a parameter contains a NUL byte",
                                        NULL);
        }

        p = ngx_pnalloc(r->pool, value.len + 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_cpystrn(p, value.data, value.len + 1);
        ctx->values[i] = (char *) p;
    }

    return ngx_http_controlplane_query(r, ctx, "controlplane_query",
                                       (char *) clcf->query_sql.data,
                                       (int) clcf->query_args->nelts,
                                       ngx_http_controlplane_fixed_done);
}


static ngx_int_t
ngx_http_controlplane_fixed_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    json_t  *rows;

    rows = ngx_http_controlplane_rows(ctx->op.res, PQntuples(ctx->op.res));

    return ngx_nutripro_send_json(r, NGX_HTTP_OK, rows,
                                  &ngx_http_controlplane_json_type);
}


/* rows as an array of objects; numbers, booleans and json keep their type */

json_t *
ngx_http_controlplane_rows(PGresult *res, int nrows)
{
    int      i, j, nf;
    Oid      type;
    char    *v;
    json_t  *rows, *row, *val;

    rows = json_array();
    if (rows == NULL) {
        return NULL;
    }

    nf = PQnfields(res);

    for (i = 0; i < nrows; i++) {
        row = json_object();
        if (row == NULL || json_array_append_new(rows, row) != 0) {
            json_decref(rows);
            return NULL;
        }

        for (j = 0; j < nf; j++) {
            if (PQgetisnull(res, i, j)) {
                val = json_null();

            } else {
                v = PQgetvalue(res, i, j);
                type = PQftype(res, j);

                switch (type) {

                case 16:    /* bool */
                    val = json_boolean(v[0] == 't');
                    break;

                case 20:    /* int8 */
                case 21:    /* int2 */
                case 23:    /* int4 */
                    val = json_integer(strtoll(v, NULL, 10));
                    break;

                case 700:   /* float4 */
                case 701:   /* float8 */
                case 1700:  /* numeric */
                    val = json_real(strtod(v, NULL));
                    break;

                case 114:   /* json */
                case 3802:  /* jsonb */
                    val = json_loadb(v, PQgetlength(res, i, j),
                                     JSON_DECODE_ANY, NULL);
                    break;

                default:
                    val = json_stringn(v, PQgetlength(res, i, j));
                }
            }

            if (val == NULL) {
                /* NaN, Infinity, 1e400, "\u0000" in json: as text */
                val = json_stringn(PQgetvalue(res, i, j),
                                   PQgetlength(res, i, j));
            }

            if (val == NULL
                || json_object_set_new(row, PQfname(res, j), val) != 0)
            {
                json_decref(rows);
                return NULL;
            }
        }
    }

    return rows;
}
