
/*
 * ngx_controlplane_module: directives, the route table, and the glue
 * between a request and an asynchronous PostgreSQL query.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_controlplane_module.h"
#include "ngx_http_controlplane_crypto.h"


static ngx_int_t ngx_http_controlplane_handler(ngx_http_request_t *r);
static void ngx_http_controlplane_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_controlplane_parse_body(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, ngx_int_t *rc);
static ngx_int_t ngx_http_controlplane_dispatch(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_http_controlplane_route_t *ngx_http_controlplane_route(
    ngx_http_request_t *r, ngx_http_controlplane_ctx_t *ctx,
    ngx_uint_t *allow);
static ngx_int_t ngx_http_controlplane_not_allowed(ngx_http_request_t *r,
    ngx_uint_t allow);
static void ngx_http_controlplane_answered(ngx_pgasync_op_t *op);
static void ngx_http_controlplane_cleanup(void *data);
static void ngx_http_controlplane_pqclear(void *data);
static ngx_int_t ngx_http_controlplane_db_error(ngx_http_request_t *r,
    ngx_pgasync_op_t *op);

static ngx_int_t ngx_http_controlplane_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_controlplane_add_variables(ngx_conf_t *cf);
static void *ngx_http_controlplane_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_controlplane_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_controlplane_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_controlplane_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_controlplane_database(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_controlplane_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_controlplane_query_cmd(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_controlplane_secret_key(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_controlplane_tenant_ca(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_controlplane_limit_zone(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_controlplane_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_controlplane_lockout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_controlplane_store_cleanup(void *data);
static ngx_int_t ngx_http_controlplane_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_controlplane_init_process(ngx_cycle_t *cycle);
static void ngx_http_controlplane_exit_process(ngx_cycle_t *cycle);
static void ngx_http_controlplane_exit_master(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_controlplane_page_bounds = {
    ngx_conf_check_num_bounds, 1, 1000
};


static ngx_conf_num_bounds_t  ngx_http_controlplane_hashing_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};


static ngx_command_t  ngx_http_controlplane_commands[] = {

    { ngx_string("controlplane_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_controlplane_database,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("controlplane_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_controlplane_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("controlplane_query"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_controlplane_query_cmd,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("controlplane_secret_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_controlplane_secret_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("controlplane_tenant_ca"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_controlplane_tenant_ca,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("controlplane_session_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_controlplane_loc_conf_t, session_ttl),
      NULL },

    { ngx_string("controlplane_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_controlplane_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("controlplane_login_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_controlplane_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_controlplane_loc_conf_t, login_rate),
      NULL },

    { ngx_string("controlplane_api_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_controlplane_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_controlplane_loc_conf_t, api_rate),
      NULL },

    { ngx_string("controlplane_login_concurrency"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_controlplane_loc_conf_t, hashing_max),
      &ngx_http_controlplane_hashing_bounds },

    { ngx_string("controlplane_lockout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_controlplane_lockout,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("controlplane_page_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_controlplane_loc_conf_t, max_page),
      &ngx_http_controlplane_page_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_controlplane_module_ctx = {
    ngx_http_controlplane_add_variables,    /* preconfiguration */
    ngx_http_controlplane_init,             /* postconfiguration */

    ngx_http_controlplane_create_main_conf, /* create main configuration */
    ngx_http_controlplane_init_main_conf,   /* init main configuration */

    NULL,                                   /* create server configuration */
    NULL,                                   /* merge server configuration */

    ngx_http_controlplane_create_loc_conf,  /* create location configuration */
    ngx_http_controlplane_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_controlplane_module = {
    NGX_MODULE_V1,
    &ngx_http_controlplane_module_ctx,      /* module context */
    ngx_http_controlplane_commands,         /* module directives */
    NGX_HTTP_MODULE,                        /* module type */
    NULL,                                   /* init master */
    NULL,                                   /* init module */
    ngx_http_controlplane_init_process,     /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    ngx_http_controlplane_exit_process,     /* exit process */
    ngx_http_controlplane_exit_master,      /* exit master */
    NGX_MODULE_V1_PADDING
};


#define NGX_HTTP_CONTROLPLANE_VAR_WAIT    0
#define NGX_HTTP_CONTROLPLANE_VAR_TIME    1
#define NGX_HTTP_CONTROLPLANE_VAR_STATUS  2

static ngx_http_variable_t  ngx_http_controlplane_vars[] = {

    { ngx_string("controlplane_db_wait"), NULL,
      ngx_http_controlplane_variable, NGX_HTTP_CONTROLPLANE_VAR_WAIT,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("controlplane_db_time"), NULL,
      ngx_http_controlplane_variable, NGX_HTTP_CONTROLPLANE_VAR_TIME,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("controlplane_db_status"), NULL,
      ngx_http_controlplane_variable, NGX_HTTP_CONTROLPLANE_VAR_STATUS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_str_t  ngx_http_controlplane_json_type = ngx_string("application/json");


static ngx_int_t
ngx_http_controlplane_handler(ngx_http_request_t *r)
{
    time_t                              retry;
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_uint_t                          allow;
    ngx_http_controlplane_ctx_t        *ctx;
    ngx_http_controlplane_route_t      *route;
    ngx_http_controlplane_loc_conf_t   *clcf;
    ngx_http_controlplane_main_conf_t  *cmcf;
    u_char                              key[NGX_SOCKADDR_STRLEN + 3];

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_controlplane_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_controlplane_module);

    if (r->err_status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {

        /* "error_page 413 @...": nginx refused a body over its limit */

        return ngx_nutripro_problem(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    "body-too-large", "Content Too Large",
                                    "the body is larger than allowed", NULL);
    }

    if (clcf->query_db) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_controlplane_fixed_query(r, ctx);
    }

    route = ngx_http_controlplane_route(r, ctx, &allow);

    if (route == NULL) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (allow) {
            return ngx_http_controlplane_not_allowed(r, allow);
        }

        return ngx_nutripro_problem(r, NGX_HTTP_NOT_FOUND, "not-found",
                                    "Not Found", "no such resource", NULL);
    }

    ctx->route = route;

    /* every request counts against its address */

    cmcf = ngx_http_get_module_main_conf(r, ngx_controlplane_module);

    if (cmcf->limit) {
        p = ngx_snprintf(key, sizeof(key), "a:%V", &r->connection->addr_text);

        switch (ngx_nutripro_limit_take(cmcf->limit, key, p - key,
                                        clcf->api_rate, clcf->api_burst,
                                        &retry))
        {
        case NGX_OK:
            break;

        case NGX_BUSY:
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                r->keepalive = 0;
            }

            if (ngx_nutripro_retry_after(r, retry) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_nutripro_problem(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                        "too-many-requests",
                                        "Too Many Requests", NULL, NULL);

        default:
            return ngx_http_controlplane_busy(r);
        }
    }

    if (route->compiled == NULL) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_controlplane_dispatch(r, ctx);
    }

    /* a JSON body, bounded by client_max_body_size, read in one buffer */

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_controlplane_body);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {

        /* Content-Length over client_max_body_size: said at once */

        r->keepalive = 0;

        return ngx_nutripro_problem(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    "body-too-large", "Content Too Large",
                                    "the body is larger than allowed", NULL);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_controlplane_body(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_controlplane_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_controlplane_module);

    /* NGX_OK: a valid body; else the refusal was sent, rc finalizes it */

    if (ngx_http_controlplane_parse_body(r, ctx, &rc) == NGX_OK) {
        rc = ngx_http_controlplane_dispatch(r, ctx);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_controlplane_parse_body(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, ngx_int_t *rc)
{
    int                   i, n;
    json_t               *doc, *errors, *e;
    ngx_str_t            *type;
    json_error_t          jerr;
    mealapi_violation_t   v[10];

    type = r->headers_in.content_type ? &r->headers_in.content_type->value
                                      : NULL;

    if (type == NULL || type->len < 16
        || ngx_strncasecmp(type->data, (u_char *) "application/json", 16)
           != 0
        || (type->len > 16 && type->data[16] != ';' && type->data[16] != ' '))
    {
        *rc = ngx_nutripro_problem(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                    "unsupported-media-type",
                                    "Unsupported Media Type",
                                    "the body must be application/json",
                                    NULL);
        return NGX_DECLINED;
    }

    if (ngx_nutripro_body_text(r, &ctx->body_text) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    doc = json_loadb((char *) ctx->body_text.data, ctx->body_text.len,
                     JSON_REJECT_DUPLICATES, &jerr);

    if (doc == NULL) {
        *rc = ngx_nutripro_problem(r, NGX_HTTP_BAD_REQUEST, "invalid-json",
                                    "Bad Request",
                                    "the body is not valid JSON (UTF-8, no "
                                    "duplicate keys, nothing after it)",
                                    json_pack("{s:i, s:i}", "line", jerr.line,
                                              "column", jerr.column));
        return NGX_DECLINED;
    }

    if (ngx_nutripro_json_cleanup(r->pool, doc) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    if (mealapi_json_depth(doc) > 8) {
        *rc = ngx_nutripro_problem(r, NGX_HTTP_BAD_REQUEST, "json-too-deep",
                                    "Bad Request", "the body nests too deep",
                                    NULL);
        return NGX_DECLINED;
    }

    n = mealapi_schema_validate(ctx->route->compiled, doc, v, 10);

    if (n) {
        errors = json_array();
        if (errors == NULL) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }

        for (i = 0; i < n && i < 10; i++) {
            e = json_pack("{s:s, s:s}", "pointer", v[i].pointer,
                          "keyword", v[i].keyword);
            if (e == NULL || json_array_append_new(errors, e) != 0) {
                json_decref(errors);
                *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
                return NGX_DECLINED;
            }
        }

        *rc = ngx_http_controlplane_invalid(r, "validation-failed",
                                             "the body does not match "
                                             "the resource's schema",
                                             errors);
        return NGX_DECLINED;
    }

    ctx->body = doc;

    return NGX_OK;
}


/* public routes run; the others first find their session */

static ngx_int_t
ngx_http_controlplane_dispatch(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    if (!(ctx->route->roles & NGX_HTTP_CP_PUBLIC)) {
        return ngx_http_controlplane_authenticate(r, ctx);
    }

    if (ctx->route->handler) {
        return ctx->route->handler(r, ctx);
    }

    return ngx_http_controlplane_run(r, ctx);
}


/* 400 (a value), 415, 422 (a body against its schema): a problem */

ngx_int_t
ngx_http_controlplane_invalid(ngx_http_request_t *r, const char *type,
    const char *detail, json_t *errors)
{
    ngx_uint_t  status;

    status = errors ? 422 : NGX_HTTP_BAD_REQUEST;

    return ngx_nutripro_problem(r, status, type,
                                status == 422 ? "Unprocessable Content"
                                              : "Bad Request",
                                detail,
                                errors ? json_pack("{s:o}", "errors", errors)
                                       : NULL);
}


ngx_int_t
ngx_http_controlplane_busy(ngx_http_request_t *r)
{
    if (ngx_nutripro_retry_after(r, 1) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_nutripro_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE, "busy",
                                "Service Unavailable", "try again", NULL);
}


ngx_int_t
ngx_http_controlplane_send_text(ngx_http_request_t *r, ngx_uint_t status,
    u_char *text, size_t len)
{
    ngx_buf_t  *b;

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, text, len);
    *b->last++ = '\n';

    return ngx_nutripro_send_buf(r, status, b,
                                 &ngx_http_controlplane_json_type);
}


/* method + path -> route; "{}" in a route matches one non-empty segment */

static ngx_http_controlplane_route_t *
ngx_http_controlplane_route(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, ngx_uint_t *allow)
{
    u_char                         *p, *last, *s, *send;
    ngx_uint_t                      nseg;
    ngx_http_controlplane_route_t  *route;

    *allow = 0;

    for (route = ngx_http_controlplane_routes_get(); route->path.len; route++)
    {
        p = route->path.data;
        last = p + route->path.len;
        s = r->uri.data;
        send = s + r->uri.len;
        nseg = 0;

        while (p < last && s < send) {
            if (p + 1 < last && p[0] == '{' && p[1] == '}') {
                if (nseg == 4) {
                    break;
                }

                ctx->segments[nseg].data = s;

                while (s < send && *s != '/') {
                    s++;
                }

                ctx->segments[nseg].len = s - ctx->segments[nseg].data;

                if (ctx->segments[nseg].len == 0) {
                    break;
                }

                nseg++;
                p += 2;
                continue;
            }

            if (*p != *s) {
                break;
            }

            p++;
            s++;
        }

        if (p != last || s != send) {
            continue;
        }

        if (route->methods & r->method) {
            return route;
        }

        *allow |= route->methods;
    }

    return NULL;
}


static ngx_int_t
ngx_http_controlplane_not_allowed(ngx_http_request_t *r, ngx_uint_t allow)
{
    if (ngx_nutripro_allow(r, allow) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_nutripro_problem(r, NGX_HTTP_NOT_ALLOWED, "method-not-allowed",
                                "Method Not Allowed",
                                "the resource does not support this method",
                                NULL);
}


/*
 * Runs a parameterised statement for the request; ctx->values hold the
 * parameters.  The request sleeps (NGX_DONE) until the answer, which
 * ctx->done turns into a response.  A client that goes away cancels the
 * query.
 */

ngx_int_t
ngx_http_controlplane_query(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, const char *name, const char *sql,
    int nparams, ngx_http_controlplane_handler_pt done)
{
    ngx_pgasync_op_t                  *op;
    ngx_http_cleanup_t                *cln;
    ngx_http_controlplane_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    op = &ctx->op;

    op->name = name;
    op->sql = sql;
    op->nparams = nparams;
    op->values = ctx->values;
    op->lengths = NULL;
    op->handler = ngx_http_controlplane_answered;
    op->data = r;
    op->log = r->connection->log;

    ctx->done = done;

    if (!ctx->waiting) {
        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_controlplane_cleanup;
        cln->data = ctx;
    }

    if (ngx_pgasync_query(clcf->query_db ? clcf->query_db : clcf->db, op)
        == NGX_BUSY)
    {
        return ngx_http_controlplane_db_error(r, op);
    }

    ctx->waiting = 1;

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_DONE;
}


static void
ngx_http_controlplane_answered(ngx_pgasync_op_t *op)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_pool_cleanup_t           *cln;
    ngx_http_request_t           *r;
    ngx_http_controlplane_ctx_t  *ctx;

    r = op->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_controlplane_module);

    ctx->waiting = 0;

    if (op->res) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            PQclear(op->res);
            op->res = NULL;
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            goto done;
        }

        cln->handler = ngx_http_controlplane_pqclear;
        cln->data = op->res;
    }

    if (op->status != NGX_PGASYNC_OK) {
        rc = ngx_http_controlplane_db_error(r, op);
        goto done;
    }

    rc = ctx->done(r, ctx);

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_controlplane_cleanup(void *data)
{
    ngx_http_controlplane_ctx_t  *ctx = data;

    if (ctx->waiting) {
        ctx->waiting = 0;
        ngx_pgasync_cancel(&ctx->op);
    }
}


static void
ngx_http_controlplane_pqclear(void *data)
{
    PQclear(data);
}


static ngx_int_t
ngx_http_controlplane_db_error(ngx_http_request_t *r, ngx_pgasync_op_t *op)
{
    ngx_http_controlplane_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    if (op->status == NGX_PGASYNC_ERR_SQL) {

        if (ngx_strncmp(op->sqlstate, "22", 2) == 0) {

            /* data exception: the client's value did not fit */

            return ngx_nutripro_problem(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid-parameter", "Bad Request",
                                        "a parameter has an invalid value",
                                        NULL);
        }

        if (ngx_strcmp(op->sqlstate, "23505") == 0
            || ngx_strcmp(op->sqlstate, "23503") == 0
            || ngx_strcmp(op->sqlstate, "P0001") == 0)
        {
            /* unique, reference, or a guard of the schema */

            return ngx_nutripro_problem(r, NGX_HTTP_CONFLICT, "conflict",
                                        "Conflict",
                                        "the change conflicts with the "
                                        "current state", NULL);
        }

        if (ngx_strcmp(op->sqlstate, "23502") == 0
            || ngx_strcmp(op->sqlstate, "23514") == 0)
        {
            return ngx_nutripro_problem(r, 422, "constraint-violation",
                                        "Unprocessable Content",
                                        "a value breaks a rule of the "
                                        "resource", NULL);
        }
    }

    if (!ngx_pgasync_temporary(op)) {
        return ngx_nutripro_problem(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    "database-error", "Internal Server Error",
                                    "the database refused the request", NULL);
    }

    if (ngx_nutripro_retry_after(r, (clcf->query_db ? clcf->query_db
                                                    : clcf->db)->retry_after)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (op->status == NGX_PGASYNC_ERR_BUSY
        || op->status == NGX_PGASYNC_ERR_WAIT_TIMEOUT)
    {
        return ngx_nutripro_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "database-busy", "Service Unavailable",
                                    "all database connections are busy",
                                    NULL);
    }

    return ngx_nutripro_problem(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "database-unavailable", "Service Unavailable",
                                "the database is not reachable", NULL);
}


static ngx_int_t
ngx_http_controlplane_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p;
    ngx_pgasync_op_t             *op;
    ngx_http_controlplane_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_controlplane_module);

    if (ctx == NULL || ctx->op.db == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    op = &ctx->op;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + sizeof("sql:XXXXX"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    switch (data) {

    case NGX_HTTP_CONTROLPLANE_VAR_WAIT:
        p = ngx_sprintf(p, "%M", op->wait_time);
        break;

    case NGX_HTTP_CONTROLPLANE_VAR_TIME:
        p = ngx_sprintf(p, "%M", op->query_time);
        break;

    default: /* NGX_HTTP_CONTROLPLANE_VAR_STATUS */
        if (op->status == NGX_PGASYNC_ERR_SQL) {
            p = ngx_sprintf(p, "sql:%s", op->sqlstate);

        } else {
            p = ngx_sprintf(p, "%s", ngx_pgasync_status_text(op->status));
        }
    }

    v->len = p - v->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_controlplane_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_controlplane_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_controlplane_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_controlplane_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_controlplane_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->databases, cf->pool, 2,
                       sizeof(ngx_pgasync_db_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return cmcf;
}


static char *
ngx_http_controlplane_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_controlplane_main_conf_t  *cmcf = conf;

    return ngx_pgasync_db_check(cf, &cmcf->databases);
}


static void *
ngx_http_controlplane_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_controlplane_loc_conf_t  *clcf;

    clcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_controlplane_loc_conf_t));
    if (clcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     clcf->db = NULL;
     *     clcf->query_db = NULL;
     *     clcf->query_sql = { 0, NULL };
     *     clcf->query_args = NULL;
     */

    clcf->max_page = NGX_CONF_UNSET_UINT;
    clcf->tenant_ca = NGX_CONF_UNSET_PTR;
    clcf->session_ttl = NGX_CONF_UNSET;
    clcf->login_rate = NGX_CONF_UNSET_UINT;
    clcf->login_burst = NGX_CONF_UNSET_UINT;
    clcf->api_rate = NGX_CONF_UNSET_UINT;
    clcf->api_burst = NGX_CONF_UNSET_UINT;
    clcf->lockout_after = NGX_CONF_UNSET_UINT;
    clcf->lockout_time = NGX_CONF_UNSET;
    clcf->hashing_max = NGX_CONF_UNSET_UINT;

    return clcf;
}


static char *
ngx_http_controlplane_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_controlplane_loc_conf_t  *prev = parent;
    ngx_http_controlplane_loc_conf_t  *conf = child;

    ngx_conf_merge_uint_value(conf->max_page, prev->max_page, 100);
    ngx_conf_merge_ptr_value(conf->tenant_ca, prev->tenant_ca, NULL);
    ngx_conf_merge_sec_value(conf->session_ttl, prev->session_ttl, 8 * 3600);
    ngx_conf_merge_uint_value(conf->login_rate, prev->login_rate,
                              10 * 1000 / 60);
    ngx_conf_merge_uint_value(conf->login_burst, prev->login_burst, 5);
    ngx_conf_merge_uint_value(conf->api_rate, prev->api_rate, 20 * 1000);
    ngx_conf_merge_uint_value(conf->api_burst, prev->api_burst, 40);
    ngx_conf_merge_uint_value(conf->lockout_after, prev->lockout_after, 5);
    ngx_conf_merge_sec_value(conf->lockout_time, prev->lockout_time, 900);
    ngx_conf_merge_uint_value(conf->hashing_max, prev->hashing_max, 8);

    if (!conf->has_secret_key && prev->has_secret_key) {
        ngx_memcpy(conf->secret_key, prev->secret_key, CP_KEY_LEN);
        conf->has_secret_key = 1;
    }

    if (conf->db && conf->thread_pool == NULL) {

        /* password hashing runs in the "default" pool (32 threads) */

        conf->thread_pool = ngx_thread_pool_add(cf, NULL);
        if (conf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_controlplane_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_controlplane_main_conf_t  *cmcf = conf;

    return ngx_pgasync_db_block(cf, &cmcf->databases);
}


static char *
ngx_http_controlplane_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_controlplane_loc_conf_t  *clcf = conf;

    ngx_str_t                          *value;
    ngx_http_core_loc_conf_t           *core;
    ngx_http_controlplane_main_conf_t  *cmcf;

    if (clcf->db || clcf->query_db) {
        return "is duplicate";
    }

    value = cf->args->elts;
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_controlplane_module);

    clcf->db = ngx_pgasync_db_get(cf, &cmcf->databases, &value[1]);
    if (clcf->db == NULL) {
        return NGX_CONF_ERROR;
    }

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    core->handler = ngx_http_controlplane_handler;

    return NGX_CONF_OK;
}


/* controlplane_query DATABASE "SQL with $1 .." [value ...]; */

static char *
ngx_http_controlplane_query_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_controlplane_loc_conf_t  *clcf = conf;

    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_complex_value_t           *cv;
    ngx_http_core_loc_conf_t           *core;
    ngx_http_controlplane_main_conf_t  *cmcf;
    ngx_http_compile_complex_value_t    ccv;

    if (clcf->db || clcf->query_db) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts - 3 > NGX_HTTP_CONTROLPLANE_MAX_PARAMS) {
        return "has too many parameters";
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_controlplane_module);

    clcf->query_db = ngx_pgasync_db_get(cf, &cmcf->databases, &value[1]);
    if (clcf->query_db == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf->query_sql = value[2];

    clcf->query_args = ngx_array_create(cf->pool, cf->args->nelts - 2,
                                        sizeof(ngx_http_complex_value_t));
    if (clcf->query_args == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {
        cv = ngx_array_push(clcf->query_args);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    core->handler = ngx_http_controlplane_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_controlplane_secret_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_controlplane_loc_conf_t  *clcf = conf;

    ngx_str_t  *value, name;

    if (clcf->has_secret_key) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cp_key_load((char *) name.data, clcf->secret_key) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold 64 hex digits", &name);
        return NGX_CONF_ERROR;
    }

    clcf->has_secret_key = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_controlplane_tenant_ca(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_controlplane_loc_conf_t  *clcf = conf;

    ngx_str_t           *value, name;
    ngx_pool_cleanup_t  *cln;

    if (clcf->tenant_ca != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf->tenant_ca = X509_STORE_new();
    if (clcf->tenant_ca == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        X509_STORE_free(clcf->tenant_ca);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_controlplane_store_cleanup;
    cln->data = clcf->tenant_ca;

    if (!X509_STORE_load_file(clcf->tenant_ca, (char *) name.data)) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "cannot load the tenant CA \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_controlplane_store_cleanup(void *data)
{
    X509_STORE_free(data);
}


/* controlplane_limit_zone NAME:SIZE; */

static char *
ngx_http_controlplane_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_controlplane_main_conf_t  *cmcf = conf;

    u_char     *p;
    ssize_t     size;
    ngx_str_t  *value, name, s;

    if (cmcf->limit) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');
    if (p == NULL) {
        return "needs NAME:SIZE";
    }

    name.data = value[1].data;
    name.len = p - name.data;
    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);
    if (name.len == 0 || size == NGX_ERROR) {
        return "needs NAME:SIZE";
    }

    cmcf->limit = ngx_nutripro_limit_zone(cf, &name, size,
                                          &ngx_controlplane_module);

    return cmcf->limit ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/* controlplane_login_limit | controlplane_api_limit RATE BURST */

static char *
ngx_http_controlplane_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char      *p;
    size_t       len;
    ngx_int_t    rate, scale, burst;
    ngx_str_t   *value;
    ngx_uint_t  *fields;

    fields = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (fields[0] != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    p = value[1].data;
    len = value[1].len;
    scale = 1;

    if (len > 3 && ngx_strncmp(p + len - 3, "r/s", 3) == 0) {
        len -= 3;

    } else if (len > 3 && ngx_strncmp(p + len - 3, "r/m", 3) == 0) {
        len -= 3;
        scale = 60;

    } else {
        return "needs a rate like \"10r/s\" or \"5r/m\"";
    }

    rate = ngx_atoi(p, len);
    burst = ngx_atoi(value[2].data, value[2].len);

    if (rate <= 0 || burst <= 0) {
        return "has an invalid rate or burst";
    }

    fields[0] = rate * 1000 / scale;    /* rate_milli */
    fields[1] = burst;                  /* the burst field follows */

    return NGX_CONF_OK;
}


/* controlplane_lockout FAILURES TIME; */

static char *
ngx_http_controlplane_lockout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_controlplane_loc_conf_t  *clcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (clcf->lockout_after != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    clcf->lockout_time = ngx_parse_time(&value[2], 1);

    if (n <= 0 || clcf->lockout_time == (time_t) NGX_ERROR) {
        return "has an invalid value";
    }

    clcf->lockout_after = n;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_controlplane_init(ngx_conf_t *cf)
{
    return ngx_http_controlplane_routes_init(cf);
}


static ngx_int_t
ngx_http_controlplane_init_process(ngx_cycle_t *cycle)
{
    ngx_http_controlplane_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_controlplane_module);
    if (cmcf == NULL) {
        return NGX_OK;
    }

    return ngx_pgasync_init_workers(&cmcf->databases, cycle);
}


static void
ngx_http_controlplane_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_controlplane_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_controlplane_module);
    if (cmcf != NULL) {
        ngx_pgasync_exit_workers(&cmcf->databases);
    }

    ngx_http_controlplane_routes_free();
}


static void
ngx_http_controlplane_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_controlplane_routes_free();
}
