
/*
 * The gateway's access phase: identity first (so that an unauthenticated
 * client learns nothing, not even which routes exist), then the route
 * (deny by default) and the plan's scope, then the body, read without
 * blocking the worker, then the signed identity for the backend.
 *
 * On the backend side (mealapi_verify_signature) the same phase checks
 * the signature instead.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mealapi_module.h"


static ngx_uint_t ngx_http_mealapi_path_canonical(ngx_http_request_t *r);
static ngx_int_t ngx_http_mealapi_identify(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf);
static ngx_int_t ngx_http_mealapi_read_body(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf);
static void ngx_http_mealapi_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mealapi_finish(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf);
static ngx_int_t ngx_http_mealapi_park(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx);
static void ngx_http_mealapi_wake(ngx_http_request_t *r);
static ngx_int_t ngx_http_mealapi_not_allowed(ngx_http_request_t *r,
    ngx_uint_t allow, ngx_http_mealapi_ctx_t *ctx);


ngx_int_t
ngx_http_mealapi_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_mealapi_ctx_t       *ctx;
    ngx_http_mealapi_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_mealapi_module);

    if (!mlcf->enable && !mlcf->verify) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_mealapi_module);

    if (ctx) {
        switch (ctx->state) {

        case NGX_HTTP_MEALAPI_READING:
            return NGX_AGAIN;

        case NGX_HTTP_MEALAPI_WAITING:
            goto identify;

        case NGX_HTTP_MEALAPI_BODY:
            ctx->state = NGX_HTTP_MEALAPI_DONE;

            if (ctx->status != NGX_OK) {
                return ctx->status;
            }

            return ngx_http_mealapi_finish(r, ctx, mlcf);

        default: /* NGX_HTTP_MEALAPI_DONE */
            return NGX_DECLINED;
        }
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_mealapi_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_mealapi_module);

    ctx->sent_start = r->connection->sent;

    if (r->err_status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE && mlcf->enable) {

        /* "error_page 413 @...": nginx refused a body over its limit */

        ctx->state = NGX_HTTP_MEALAPI_DONE;
        return ngx_http_mealapi_refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "body-too-large", "Content Too Large",
                                       ctx);
    }

identify:

    if (mlcf->enable) {
        rc = ngx_http_mealapi_identify(r, ctx, mlcf);

        if (rc == NGX_AGAIN) {
            return ngx_http_mealapi_park(r, ctx);
        }

        if (rc != NGX_OK) {

            /* NGX_DONE: refused, and the request may be freed already */

            if (rc != NGX_DONE) {
                ctx->state = NGX_HTTP_MEALAPI_DONE;
            }

            return rc;
        }

        /* only the gateway speaks in the identity header name space */

        if (ngx_http_mealapi_strip_identity(r, &mlcf->prefix) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_mealapi_throttle(r, ctx, mlcf);

        if (rc == NGX_ERROR) {
            ctx->state = NGX_HTTP_MEALAPI_DONE;
            return ngx_http_mealapi_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "throttle-unavailable",
                                           "Service Unavailable", ctx);
        }

        if (rc == NGX_DECLINED) {
            ctx->state = NGX_HTTP_MEALAPI_DONE;
            return ngx_http_mealapi_refuse(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                           ctx->refused
                                           == NGX_HTTP_MEALAPI_REFUSED_RATE
                                           ? "rate-limited"
                                           : "quota-exhausted",
                                           "Too Many Requests", ctx);
        }

        rc = ngx_http_mealapi_validate_query(r, ctx);

        if (rc == NGX_OK) {
            rc = ngx_http_mealapi_validate_type(r, ctx);
        }

        if (rc != NGX_OK) {

            /* NGX_DONE: refused, and the request may be freed already */

            if (rc != NGX_DONE) {
                ctx->state = NGX_HTTP_MEALAPI_DONE;
            }

            return rc;
        }
    }

    return ngx_http_mealapi_read_body(r, ctx, mlcf);
}


/*
 * Routes match nginx's normalized path (r->uri: percent-decoded, dot
 * segments resolved, slashes merged), while proxy_pass sends the backend
 * the client's own request target, and the signature covers it.  A path
 * that normalization changed ("/v1/x/..%2Fsamples", "//v1/samples",
 * "/v1/%73amples") may name one route here and another at the backend: it
 * is refused.  After a rewrite nginx forwards r->uri itself.
 */

static ngx_uint_t
ngx_http_mealapi_path_canonical(ngx_http_request_t *r)
{
    u_char  *q;
    size_t   len;

    if (!r->valid_unparsed_uri) {
        return 1;
    }

    q = ngx_strlchr(r->unparsed_uri.data,
                    r->unparsed_uri.data + r->unparsed_uri.len, '?');

    len = q ? (size_t) (q - r->unparsed_uri.data) : r->unparsed_uri.len;

    return len == r->uri.len
           && ngx_memcmp(r->unparsed_uri.data, r->uri.data, len) == 0;
}


/* NGX_OK, or the refusal already sent (NGX_DONE) */

static ngx_int_t
ngx_http_mealapi_identify(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_http_mealapi_loc_conf_t *mlcf)
{
    long                           verify;
    u_char                        *fp;
    ngx_int_t                      rc;
    ngx_uint_t                     allow, expired;
    const char                    *refusal;
    ngx_http_mealapi_route_t      *route;
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_mealapi_module);

    rc = ngx_http_mealapi_client_cert(r, mmcf->ssl_index, &fp, &verify);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mealapi_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                       "client-certificate-required",
                                       "Unauthorized", ctx);
    }

    expired = (verify == X509_V_ERR_CERT_HAS_EXPIRED
               || verify == X509_V_ERR_CERT_NOT_YET_VALID);

    if (verify != X509_V_OK && !expired) {
        return ngx_http_mealapi_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                       "client-certificate-invalid",
                                       "Unauthorized", ctx);
    }

    if (!ngx_http_mealapi_path_canonical(r)) {
        return ngx_http_mealapi_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       "path-not-canonical", "Bad Request",
                                       ctx);
    }

    route = ngx_http_mealapi_route_match(r, mlcf->routes, &allow);
    ctx->route = route;

    if (mmcf->registry == NULL) {
        return ngx_http_mealapi_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "registry-unavailable",
                                       "Service Unavailable", ctx);
    }

    rc = ngx_http_mealapi_registry_lookup(r, mmcf->registry, fp, route,
                                          &ctx->tenant, &refusal);

    switch (rc) {

    case NGX_ERROR:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    case NGX_BUSY:
        if (ctx->waited < mmcf->registry->startup_wait) {
            return NGX_AGAIN;
        }

        return ngx_http_mealapi_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "registry-unavailable",
                                       "Service Unavailable", ctx);

    case NGX_DECLINED:
        if (expired) {
            /* an expired certificate nobody registered: just invalid */
            return ngx_http_mealapi_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                           "client-certificate-invalid",
                                           "Unauthorized", ctx);
        }

        return ngx_http_mealapi_refuse(r, NGX_HTTP_FORBIDDEN,
                                       "unknown-certificate", "Forbidden",
                                       ctx);
    }

    ctx->has_tenant = 1;

    if (expired && refusal == NULL) {
        refusal = "certificate-expired";
    }

    if (refusal) {
        return ngx_http_mealapi_refuse(r, NGX_HTTP_FORBIDDEN, refusal,
                                       "Forbidden", ctx);
    }

    if (route == NULL) {
        if (allow) {
            return ngx_http_mealapi_not_allowed(r, allow, ctx);
        }

        return ngx_http_mealapi_refuse(r, NGX_HTTP_NOT_FOUND,
                                       "route-not-found", "Not Found", ctx);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mealapi_read_body(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_http_mealapi_loc_conf_t *mlcf)
{
    ngx_int_t  rc;

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        ctx->state = NGX_HTTP_MEALAPI_DONE;
        return ngx_http_mealapi_finish(r, ctx, mlcf);
    }

    if (r->headers_in.content_length_n > mlcf->max_body) {
        ctx->state = NGX_HTTP_MEALAPI_DONE;
        return ngx_http_mealapi_refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "body-too-large",
                                       "Content Too Large", ctx);
    }

    ctx->state = NGX_HTTP_MEALAPI_READING;

    rc = ngx_http_read_client_request_body(r, ngx_http_mealapi_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->state = NGX_HTTP_MEALAPI_DONE;
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


static void
ngx_http_mealapi_body_handler(ngx_http_request_t *r)
{
    ngx_http_mealapi_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_mealapi_module);

    ctx->state = NGX_HTTP_MEALAPI_BODY;
    ctx->status = NGX_OK;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/* the body is here: sign it (gateway) or check its signature (backend) */

static ngx_int_t
ngx_http_mealapi_finish(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_http_mealapi_loc_conf_t *mlcf)
{
    off_t         len;
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    /* a chunked body has no length to check before it is read */

    len = 0;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        len += ngx_buf_size(cl->buf);
    }

    if (len > mlcf->max_body) {
        return ngx_http_mealapi_refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "body-too-large", "Content Too Large",
                                       ctx);
    }

    if (ngx_http_mealapi_body_digest(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (mlcf->enable) {
        rc = ngx_http_mealapi_validate_body(r, ctx, mlcf);

        if (rc != NGX_OK) {
            return rc;
        }

        if (ngx_http_mealapi_sign(r, ctx, mlcf) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->passed = 1;

        return NGX_DECLINED;
    }

    rc = ngx_http_mealapi_verify(r, ctx, mlcf);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mealapi_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                       "signature-invalid", "Unauthorized",
                                       ctx);
    }

    return NGX_DECLINED;
}


/*
 * Right after a start nothing is loaded yet: the request waits for the
 * first load in steps of 50 ms, as limit_req delays, on the write event.
 */

static ngx_int_t
ngx_http_mealapi_park(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx)
{
    ctx->state = NGX_HTTP_MEALAPI_WAITING;
    ctx->waited += 50;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_mealapi_wake;

    r->connection->write->delayed = 1;
    ngx_add_timer(r->connection->write, 50);

    return NGX_AGAIN;
}


static void
ngx_http_mealapi_wake(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


/*
 * Sends the problem document and ends the request: the access phase must
 * not read a sent response as "access granted".
 */

ngx_int_t
ngx_http_mealapi_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *title, ngx_http_mealapi_ctx_t *ctx)
{
    ngx_int_t   rc;
    ngx_uint_t  level;

    /* after ngx_http_finalize_request() neither r nor ctx may be used */

    ctx->state = NGX_HTTP_MEALAPI_DONE;

    level = (status == NGX_HTTP_FORBIDDEN
             || status == NGX_HTTP_SERVICE_UNAVAILABLE
             || status == NGX_HTTP_TOO_MANY_REQUESTS)
            ? NGX_LOG_WARN : NGX_LOG_INFO;

    if (ctx->has_tenant) {
        ngx_log_error(level, r->connection->log, 0,
                      "mealapi: refused %ui %s, tenant \"%V\" (%L)",
                      status, type, &ctx->tenant.slug, ctx->tenant.id);

    } else {
        ngx_log_error(level, r->connection->log, 0,
                      "mealapi: refused %ui %s", status, type);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    /* what the meter counts this refusal as, when the tenant is known */

    if (ctx->refused == 0) {
        switch (status) {

        case NGX_HTTP_FORBIDDEN:
            ctx->refused = ngx_strcmp(type, "route-not-in-plan") == 0
                           ? NGX_HTTP_MEALAPI_REFUSED_ROUTE
                           : NGX_HTTP_MEALAPI_REFUSED_AUTH;
            break;

        case NGX_HTTP_NOT_FOUND:
        case NGX_HTTP_NOT_ALLOWED:
            ctx->refused = NGX_HTTP_MEALAPI_REFUSED_ROUTE;
            break;

        case NGX_HTTP_BAD_REQUEST:
        case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        case 422:
            ctx->refused = NGX_HTTP_MEALAPI_REFUSED_VALID;
            break;
        }
    }

    if (ctx->retry_after == 0 && status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        ctx->retry_after = 1;
    }

    if (ctx->retry_after
        && ngx_nutripro_retry_after(r, ctx->retry_after) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        /* RFC 9110 wants a challenge with 401 */
        r->headers_out.www_authenticate = ngx_list_push(
                                                  &r->headers_out.headers);
        if (r->headers_out.www_authenticate == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->headers_out.www_authenticate->hash = 1;
#if (nginx_version >= 1023000)
        r->headers_out.www_authenticate->next = NULL;
#endif
        ngx_str_set(&r->headers_out.www_authenticate->key,
                    "WWW-Authenticate");
        ngx_str_set(&r->headers_out.www_authenticate->value,
                    "Mutual realm=\"mealapi\"");
    }

    rc = ngx_nutripro_problem(r, status, type, title, NULL,
                              ctx->problem_extra);
    ctx->problem_extra = NULL;

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_mealapi_not_allowed(ngx_http_request_t *r, ngx_uint_t allow,
    ngx_http_mealapi_ctx_t *ctx)
{
    if (ngx_nutripro_allow(r, allow) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mealapi_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                   "method-not-allowed", "Method Not Allowed",
                                   ctx);
}
