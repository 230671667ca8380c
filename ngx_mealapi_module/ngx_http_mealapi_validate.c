
/*
 * Input validation for an authenticated request within its limits:
 * query parameters against the route's declarations, then the body's
 * media type, syntax and schema.
 *
 *     mealapi_route NAME METHOD PATH ... [schema=FILE] [query=strict|lenient];
 *     mealapi_query_param ROUTE NAME REGEX [required];
 *     mealapi_json_max_depth N;     mealapi_max_errors N;
 *
 * Error documents name the parameter or the JSON pointer and the rule
 * that failed; they never echo a submitted value.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mealapi_module.h"
#include "ngx_http_mealapi_schema.h"


static ngx_int_t ngx_http_mealapi_bad_query(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_str_t *param, const char *keyword);
static ngx_int_t ngx_http_mealapi_utf8_ok(u_char *p, size_t len);
static void ngx_http_mealapi_schema_cleanup(void *data);


static ngx_str_t  ngx_http_mealapi_json_type = ngx_string("application/json");


/* schema=FILE on mealapi_route: compiled now, failing "nginx -t" */

char *
ngx_http_mealapi_schema_conf(ngx_conf_t *cf, ngx_http_mealapi_route_t *route,
    ngx_str_t *file)
{
    char                *err;
    ngx_str_t            name;
    ngx_pool_cleanup_t  *cln;

    name = *file;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    err = ngx_pnalloc(cf->pool, 512);
    if (err == NULL) {
        return NGX_CONF_ERROR;
    }

    route->schema = mealapi_schema_load((char *) name.data, err, 512);

    if (route->schema == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid schema \"%V\": %s", &name, err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        mealapi_schema_free(route->schema);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_mealapi_schema_cleanup;
    cln->data = route->schema;

    return NGX_CONF_OK;
}


static void
ngx_http_mealapi_schema_cleanup(void *data)
{
    mealapi_schema_free(data);
}


/* mealapi_query_param ROUTE NAME REGEX [required]; */

char *
ngx_http_mealapi_query_param_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mealapi_loc_conf_t  *mlcf = conf;

    u_char                       *p;
    ngx_str_t                    *value;
    ngx_uint_t                    i;
    ngx_regex_compile_t           rc;
    ngx_http_mealapi_param_t     *param;
    ngx_http_mealapi_route_t     *route;
    u_char                        errstr[NGX_MAX_CONF_ERRSTR];

    value = cf->args->elts;
    route = NULL;

    if (mlcf->routes) {
        route = mlcf->routes->elts;

        for (i = 0; i < mlcf->routes->nelts; i++) {
            if (route[i].name.len == value[1].len
                && ngx_strncmp(route[i].name.data, value[1].data,
                               value[1].len) == 0)
            {
                break;
            }
        }

        route = (i < mlcf->routes->nelts) ? &route[i] : NULL;
    }

    if (route == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown route \"%V\" (declare it first, in the "
                           "same block)", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (route->params == NULL) {
        route->params = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_http_mealapi_param_t));
        if (route->params == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (route->params->nelts == 32) {
        return "allows at most 32 parameters per route";
    }

    param = ngx_array_push(route->params);
    if (param == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(param, sizeof(ngx_http_mealapi_param_t));
    param->name = value[2];

    /*
     * the whole value must match: \z, since $ also matches before a final
     * newline, which a client can send percent-encoded
     */

    p = ngx_pnalloc(cf->pool, value[3].len + sizeof("^(?:)\\z"));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern.data = p;
    rc.pattern.len = ngx_sprintf(p, "^(?:%V)\\z", &value[3]) - p;
    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &rc.err);
        return NGX_CONF_ERROR;
    }

    param->regex = rc.regex;

    if (cf->args->nelts == 5) {
        if (ngx_strcmp(value[4].data, "required") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[4]);
            return NGX_CONF_ERROR;
        }

        param->required = 1;
    }

    return NGX_CONF_OK;
}


/*
 * The query string against the route's parameters.  NGX_OK, or a refusal
 * already sent (NGX_DONE).
 */

ngx_int_t
ngx_http_mealapi_validate_query(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx)
{
    u_char                    *p, *last, *amp, *eq, *dst;
    uint32_t                   seen;
    ngx_str_t                  name, value;
    ngx_uint_t                 i, n;
    ngx_http_mealapi_param_t  *param;
    ngx_http_mealapi_route_t  *route;

    route = ctx->route;
    param = route->params ? route->params->elts : NULL;
    n = route->params ? route->params->nelts : 0;

    if (r->args.len == 0) {
        goto required;
    }

    /* decoded names and values go into one buffer */

    dst = ngx_pnalloc(r->pool, r->args.len);
    if (dst == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    seen = 0;
    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {
        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        if (amp == p) {
            p++;
            continue;
        }

        eq = ngx_strlchr(p, amp, '=');

        name.data = dst;
        ngx_unescape_uri(&dst, &p, (eq ? eq : amp) - p, 0);
        name.len = dst - name.data;

        value.data = dst;

        if (eq) {
            p = eq + 1;
            ngx_unescape_uri(&dst, &p, amp - p, 0);
        }

        value.len = dst - value.data;
        p = amp + 1;

        for (i = 0; i < n; i++) {
            if (param[i].name.len == name.len
                && ngx_strncmp(param[i].name.data, name.data, name.len) == 0)
            {
                break;
            }
        }

        if (i == n) {
            if (route->query_lenient) {
                continue;
            }

            return ngx_http_mealapi_bad_query(r, ctx, NULL,
                                              "unknown-parameter");
        }

        /* lenient routes let a declared name repeat, never unchecked */

        if ((seen & (1u << i)) && !route->query_lenient) {
            return ngx_http_mealapi_bad_query(r, ctx, &param[i].name,
                                              "repeated-parameter");
        }

        seen |= 1u << i;

        if (ngx_strlchr(value.data, value.data + value.len, '\0')
            || !ngx_http_mealapi_utf8_ok(value.data, value.len)
            || ngx_regex_exec(param[i].regex, &value, NULL, 0) < 0)
        {
            return ngx_http_mealapi_bad_query(r, ctx, &param[i].name,
                                              "pattern");
        }
    }

    for (i = 0; i < n; i++) {
        if (param[i].required && !(seen & (1u << i))) {
            return ngx_http_mealapi_bad_query(r, ctx, &param[i].name,
                                              "required");
        }
    }

    return NGX_OK;

required:

    for (i = 0; i < n; i++) {
        if (param[i].required) {
            return ngx_http_mealapi_bad_query(r, ctx, &param[i].name,
                                              "required");
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mealapi_bad_query(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_str_t *param, const char *keyword)
{
    json_t  *errors, *e;

    errors = json_array();
    e = json_object();

    if (errors == NULL || e == NULL || json_array_append_new(errors, e) != 0) {
        json_decref(errors);
        json_decref(e);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a declared name is ours to repeat; an unknown one is not */

    if (param) {
        json_object_set_new(e, "parameter",
                            json_stringn((char *) param->data, param->len));
    }

    json_object_set_new(e, "keyword", json_string(keyword));

    ctx->problem_extra = json_pack("{s:o}", "errors", errors);

    return ngx_http_mealapi_refuse(r, NGX_HTTP_BAD_REQUEST, "invalid-query",
                                   "Bad Request", ctx);
}


/* UTF-8 that decodes: no stray, truncated or overlong sequences */

static ngx_int_t
ngx_http_mealapi_utf8_ok(u_char *p, size_t len)
{
    u_char  *last;

    last = p + len;

    while (p < last) {
        if (*p < 0x80) {
            p++;
            continue;
        }

        if (ngx_utf8_decode(&p, last - p) > 0x10ffff) {
            return 0;
        }
    }

    return 1;
}


/* before the body is read: a schema wants JSON */

ngx_int_t
ngx_http_mealapi_validate_type(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx)
{
    u_char     *p, *last;
    ngx_str_t  *type;

    if (ctx->route == NULL || ctx->route->schema == NULL) {
        return NGX_OK;
    }

    if (r->headers_in.content_type == NULL) {
        goto unsupported;
    }

    type = &r->headers_in.content_type->value;

    /* "application/json", optionally with parameters such as charset */

    p = type->data;
    last = p + type->len;

    if (type->len < ngx_http_mealapi_json_type.len
        || ngx_strncasecmp(p, ngx_http_mealapi_json_type.data,
                           ngx_http_mealapi_json_type.len) != 0)
    {
        goto unsupported;
    }

    p += ngx_http_mealapi_json_type.len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p == last || *p == ';') {
        return NGX_OK;
    }

unsupported:

    return ngx_http_mealapi_refuse(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                   "unsupported-media-type",
                                   "Unsupported Media Type", ctx);
}


/*
 * The body, read completely, against the route's schema.  NGX_OK, or a
 * refusal already sent (NGX_DONE).
 */

ngx_int_t
ngx_http_mealapi_validate_body(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf)
{
    int                   i, n, max;
    json_t               *doc, *errors, *e;
    ngx_str_t             text;
    json_error_t          jerr;
    mealapi_violation_t  *v;

    if (ctx->route == NULL || ctx->route->schema == NULL) {
        return NGX_OK;
    }

    if (ngx_nutripro_body_text(r, &text) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    doc = json_loadb((char *) text.data, text.len, JSON_REJECT_DUPLICATES,
                     &jerr);

    if (doc == NULL) {

        /* the position only: jansson's text may quote the input */

        ctx->problem_extra = json_pack("{s:i, s:i}", "line", jerr.line,
                                       "column", jerr.column);

        return ngx_http_mealapi_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       "invalid-json", "Bad Request", ctx);
    }

    if (mealapi_json_depth(doc) > (int) mlcf->max_depth) {
        json_decref(doc);
        return ngx_http_mealapi_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       "json-too-deep", "Bad Request", ctx);
    }

    max = (int) mlcf->max_errors;

    v = ngx_palloc(r->pool, (max + 1) * sizeof(mealapi_violation_t));
    if (v == NULL) {
        json_decref(doc);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = mealapi_schema_validate(ctx->route->schema, doc, v, max);

    json_decref(doc);

    if (n == 0) {
        return NGX_OK;
    }

    errors = json_array();
    if (errors == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n && i < max; i++) {
        e = json_pack("{s:s, s:s}", "pointer", v[i].pointer,
                      "keyword", v[i].keyword);

        if (e == NULL || json_array_append_new(errors, e) != 0) {
            json_decref(errors);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->problem_extra = json_pack("{s:o, s:b}", "errors", errors,
                                   "truncated", n > max);

    return ngx_http_mealapi_refuse(r, 422, "validation-failed",
                                   "Unprocessable Content", ctx);
}
