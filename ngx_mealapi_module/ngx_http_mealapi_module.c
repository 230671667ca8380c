
/*
 * ngx_mealapi_module: directives, configuration, variables, and the
 * worker hooks of the registry sync.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mealapi_module.h"


static ngx_int_t ngx_http_mealapi_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mealapi_fingerprint_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mealapi_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_mealapi_init(ngx_conf_t *cf);
static void *ngx_http_mealapi_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_mealapi_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_mealapi_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_mealapi_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_mealapi_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mealapi_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_mealapi_init_process(ngx_cycle_t *cycle);
static void ngx_http_mealapi_exit_process(ngx_cycle_t *cycle);


static void ngx_http_mealapi_hmac_cleanup(void *data);
static char *ngx_http_mealapi_clock_offset(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


static ngx_conf_enum_t  ngx_http_mealapi_throttle_modes[] = {
    { ngx_string("off"), NGX_HTTP_MEALAPI_THROTTLE_OFF },
    { ngx_string("on"), NGX_HTTP_MEALAPI_THROTTLE_ON },
    { ngx_string("dry_run"), NGX_HTTP_MEALAPI_THROTTLE_DRY_RUN },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_mealapi_depth_bounds = {
    ngx_conf_check_num_bounds, 1, 256
};

static ngx_conf_num_bounds_t  ngx_http_mealapi_errors_bounds = {
    ngx_conf_check_num_bounds, 1, 100
};


static ngx_command_t  ngx_http_mealapi_commands[] = {

    { ngx_string("mealapi_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_mealapi_database,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi_registry"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_mealapi_registry_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, enable),
      NULL },

    { ngx_string("mealapi_throttle_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mealapi_throttle_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi_throttle"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, throttle),
      &ngx_http_mealapi_throttle_modes },

    { ngx_string("mealapi_usage"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_mealapi_usage_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi_clock_offset"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mealapi_clock_offset,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi_route"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
                        |NGX_CONF_2MORE,
      ngx_http_mealapi_route_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi_query_param"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
                        |NGX_CONF_TAKE3|NGX_CONF_TAKE4,
      ngx_http_mealapi_query_param_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi_json_max_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, max_depth),
      &ngx_http_mealapi_depth_bounds },

    { ngx_string("mealapi_max_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, max_errors),
      &ngx_http_mealapi_errors_bounds },

    { ngx_string("mealapi_signing_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mealapi_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi_identity_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, prefix),
      NULL },

    { ngx_string("mealapi_verify_signature"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, verify),
      NULL },

    { ngx_string("mealapi_signature_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, max_age),
      NULL },

    { ngx_string("mealapi_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, max_body),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mealapi_module_ctx = {
    ngx_http_mealapi_add_variables,         /* preconfiguration */
    ngx_http_mealapi_init,                  /* postconfiguration */

    ngx_http_mealapi_create_main_conf,      /* create main configuration */
    ngx_http_mealapi_init_main_conf,        /* init main configuration */

    NULL,                                   /* create server configuration */
    NULL,                                   /* merge server configuration */

    ngx_http_mealapi_create_loc_conf,       /* create location configuration */
    ngx_http_mealapi_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_mealapi_module = {
    NGX_MODULE_V1,
    &ngx_http_mealapi_module_ctx,           /* module context */
    ngx_http_mealapi_commands,              /* module directives */
    NGX_HTTP_MODULE,                        /* module type */
    NULL,                                   /* init master */
    NULL,                                   /* init module */
    ngx_http_mealapi_init_process,          /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    ngx_http_mealapi_exit_process,          /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


#define NGX_HTTP_MEALAPI_VAR_TENANT_ID    0
#define NGX_HTTP_MEALAPI_VAR_TENANT       1
#define NGX_HTTP_MEALAPI_VAR_TENANT_NAME  2
#define NGX_HTTP_MEALAPI_VAR_PLAN         3
#define NGX_HTTP_MEALAPI_VAR_ROUTE        4
#define NGX_HTTP_MEALAPI_VAR_SIGNATURE    5
#define NGX_HTTP_MEALAPI_VAR_TIMESTAMP    6
#define NGX_HTTP_MEALAPI_VAR_BODY_SHA256  7
#define NGX_HTTP_MEALAPI_VAR_VERDICT      8
#define NGX_HTTP_MEALAPI_VAR_RATELIMIT    9

static ngx_http_variable_t  ngx_http_mealapi_vars[] = {

    { ngx_string("mealapi_cert_fingerprint"), NULL,
      ngx_http_mealapi_fingerprint_variable, 0, 0, 0 },

    { ngx_string("mealapi_tenant_id"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_TENANT_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_tenant"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_TENANT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_tenant_name"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_TENANT_NAME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_plan"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_PLAN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_route"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_ROUTE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_signature"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_SIGNATURE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_timestamp"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_TIMESTAMP, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_body_sha256"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_BODY_SHA256, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_signature_status"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_VERDICT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mealapi_ratelimit"), NULL, ngx_http_mealapi_variable,
      NGX_HTTP_MEALAPI_VAR_RATELIMIT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_mealapi_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    ngx_str_t                s;
    ngx_http_mealapi_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_mealapi_module);

    if (ctx == NULL) {
        goto not_found;
    }

    switch (data) {

    case NGX_HTTP_MEALAPI_VAR_TENANT_ID:
    case NGX_HTTP_MEALAPI_VAR_TIMESTAMP:
        if (!ctx->has_tenant
            || (data == NGX_HTTP_MEALAPI_VAR_TIMESTAMP && !ctx->timestamp))
        {
            goto not_found;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "%L", data == NGX_HTTP_MEALAPI_VAR_TENANT_ID
                                     ? ctx->tenant.id
                                     : (int64_t) ctx->timestamp) - p;
        break;

    case NGX_HTTP_MEALAPI_VAR_TENANT:
        s = ctx->tenant.slug;
        break;

    case NGX_HTTP_MEALAPI_VAR_TENANT_NAME:
        s = ctx->tenant.name;
        break;

    case NGX_HTTP_MEALAPI_VAR_PLAN:
        s = ctx->tenant.plan;
        break;

    case NGX_HTTP_MEALAPI_VAR_ROUTE:
        if (ctx->route == NULL) {
            goto not_found;
        }

        s = ctx->route->name;
        break;

    case NGX_HTTP_MEALAPI_VAR_SIGNATURE:
        s = ctx->signature;
        break;

    case NGX_HTTP_MEALAPI_VAR_BODY_SHA256:
        s.data = ctx->body_sha256;
        s.len = ctx->body_sha256[0] ? 64 : 0;
        break;

    case NGX_HTTP_MEALAPI_VAR_RATELIMIT:
        s = ctx->ratelimit;
        break;

    default: /* NGX_HTTP_MEALAPI_VAR_VERDICT */
        if (ctx->verdict == NULL) {
            goto not_found;
        }

        s.data = (u_char *) ctx->verdict;
        s.len = ngx_strlen(ctx->verdict);
    }

    if (s.len == 0) {
        goto not_found;
    }

    v->data = s.data;
    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;

not_found:

    v->not_found = 1;
    return NGX_OK;
}


static ngx_int_t
ngx_http_mealapi_fingerprint_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    long                           verify;
    u_char                        *fp, *p;
    ngx_int_t                      rc;
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_mealapi_module);

    rc = ngx_http_mealapi_client_cert(r, mmcf->ssl_index, &fp, &verify);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED || verify != X509_V_OK) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 2 * NGX_HTTP_MEALAPI_FP_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_hex_dump(p, fp, NGX_HTTP_MEALAPI_FP_LEN) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mealapi_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_mealapi_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mealapi_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt           *h;
    ngx_http_core_main_conf_t     *cmcf;
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_mealapi_module);

    mmcf->ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (mmcf->ssl_index == -1) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_mealapi_access_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_mealapi_log_handler;

    return ngx_http_mealapi_throttle_init(cf);
}


static void *
ngx_http_mealapi_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mealapi_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mmcf->registry = NULL;
     */

    mmcf->ssl_index = -1;

    if (ngx_array_init(&mmcf->databases, cf->pool, 1,
                       sizeof(ngx_pgasync_db_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return mmcf;
}


static char *
ngx_http_mealapi_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_mealapi_main_conf_t  *mmcf = conf;

    return ngx_pgasync_db_check(cf, &mmcf->databases);
}


static void *
ngx_http_mealapi_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_mealapi_loc_conf_t  *mlcf;

    mlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mealapi_loc_conf_t));
    if (mlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mlcf->routes = NULL;
     *     mlcf->hmac = NULL;
     *     mlcf->prefix = { 0, NULL };
     */

    mlcf->enable = NGX_CONF_UNSET;
    mlcf->verify = NGX_CONF_UNSET;
    mlcf->throttle = NGX_CONF_UNSET_UINT;
    mlcf->max_depth = NGX_CONF_UNSET_UINT;
    mlcf->max_errors = NGX_CONF_UNSET_UINT;
    mlcf->max_age = NGX_CONF_UNSET;
    mlcf->max_body = NGX_CONF_UNSET;

    return mlcf;
}


static char *
ngx_http_mealapi_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mealapi_loc_conf_t  *prev = parent;
    ngx_http_mealapi_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->verify, prev->verify, 0);
    ngx_conf_merge_uint_value(conf->throttle, prev->throttle,
                              NGX_HTTP_MEALAPI_THROTTLE_OFF);
    ngx_conf_merge_sec_value(conf->max_age, prev->max_age, 60);
    ngx_conf_merge_uint_value(conf->max_depth, prev->max_depth, 32);
    ngx_conf_merge_uint_value(conf->max_errors, prev->max_errors, 10);
    ngx_conf_merge_off_value(conf->max_body, prev->max_body, 1024 * 1024);
    if (conf->hmac == NULL) {
        conf->hmac = prev->hmac;
    }
    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "X-Mealapi-");

    if (conf->routes == NULL) {
        conf->routes = prev->routes;
    }

    if (conf->prefix.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mealapi_identity_prefix\" must not be empty");
        return NGX_CONF_ERROR;
    }

    if (conf->headers == NULL) {
        if (prev->headers && prev->prefix.len == conf->prefix.len
            && ngx_strncmp(prev->prefix.data, conf->prefix.data,
                           conf->prefix.len) == 0)
        {
            conf->headers = prev->headers;

        } else {
            conf->headers = ngx_http_mealapi_header_names(cf, &conf->prefix);
            if (conf->headers == NULL) {
                return NGX_CONF_ERROR;
            }
        }
    }

    if (conf->verify && conf->hmac == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mealapi_verify_signature\" needs "
                           "\"mealapi_signing_key\"");
        return NGX_CONF_ERROR;
    }

    if (conf->enable && conf->verify) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mealapi\" and \"mealapi_verify_signature\" "
                           "exclude each other in one location");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mealapi_database(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_main_conf_t  *mmcf = conf;

    return ngx_pgasync_db_block(cf, &mmcf->databases);
}


/* mealapi_signing_key FILE: at least 32 bytes, read once */

static char *
ngx_http_mealapi_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_loc_conf_t  *mlcf = conf;

    ssize_t                   n;
    ngx_fd_t                  fd;
    ngx_int_t                 rc;
    ngx_str_t                *value, name;
    ngx_pool_cleanup_t       *cln;
    ngx_http_mealapi_hmac_t  *hmac;
    u_char                    buf[1024];

    if (mlcf->hmac) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));
    ngx_close_file(fd);

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    if (n < 32) {
        ngx_explicit_memzero(buf, sizeof(buf));
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "signing key \"%V\" is shorter than 32 bytes",
                           &name);
        return NGX_CONF_ERROR;
    }

    hmac = ngx_palloc(cf->pool, sizeof(ngx_http_mealapi_hmac_t));
    if (hmac == NULL) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_CONF_ERROR;
    }

    /* the keyed states are as secret as the key: wiped with the pool */

    cln->handler = ngx_http_mealapi_hmac_cleanup;
    cln->data = hmac;

    rc = ngx_http_mealapi_hmac_key(hmac, buf, n);

    ngx_explicit_memzero(buf, sizeof(buf));

    if (rc != NGX_OK) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0, "HMAC-SHA256 unavailable");
        return NGX_CONF_ERROR;
    }

    mlcf->hmac = hmac;

    return NGX_CONF_OK;
}


static void
ngx_http_mealapi_hmac_cleanup(void *data)
{
    ngx_explicit_memzero(data, sizeof(ngx_http_mealapi_hmac_t));
}


/* tests only: moves the clock of quotas and usage days */

static char *
ngx_http_mealapi_clock_offset(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_main_conf_t  *mmcf = conf;

    ngx_str_t  *value;
    ngx_int_t   sign;
    time_t      t;

    value = cf->args->elts;
    sign = 1;

    if (value[1].len && value[1].data[0] == '-') {
        sign = -1;
        value[1].data++;
        value[1].len--;
    }

    t = ngx_parse_time(&value[1], 1);
    if (t == (time_t) NGX_ERROR) {
        return "has an invalid value";
    }

    mmcf->clock_offset = sign * t;

    ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                       "\"mealapi_clock_offset\" is for tests only");

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mealapi_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_mealapi_module);
    if (mmcf == NULL) {
        return NGX_OK;
    }

    if (ngx_pgasync_init_workers(&mmcf->databases, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (mmcf->registry) {
        return ngx_http_mealapi_registry_init_process(cycle, mmcf->registry);
    }

    return NGX_OK;
}


static void
ngx_http_mealapi_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_mealapi_module);
    if (mmcf == NULL) {
        return;
    }

    if (mmcf->registry) {
        ngx_http_mealapi_registry_exit_process(mmcf->registry);
    }

    ngx_http_mealapi_usage_exit(mmcf, cycle->log);

    ngx_pgasync_exit_workers(&mmcf->databases);
}
