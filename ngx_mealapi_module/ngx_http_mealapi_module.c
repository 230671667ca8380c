
/*
 * ngx_mealapi_module: directives, configuration and variables.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mealapi_module.h"


static ngx_int_t ngx_http_mealapi_fingerprint_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mealapi_add_variables(ngx_conf_t *cf);
static void *ngx_http_mealapi_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_mealapi_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_mealapi_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_mealapi_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_mealapi_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_mealapi_commands[] = {

    { ngx_string("mealapi_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_mealapi_database,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mealapi"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mealapi_loc_conf_t, enable),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mealapi_module_ctx = {
    ngx_http_mealapi_add_variables,         /* preconfiguration */
    NULL,                                   /* postconfiguration */

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
    NULL,                                   /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    NULL,                                   /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_mealapi_vars[] = {

    { ngx_string("mealapi_cert_fingerprint"), NULL,
      ngx_http_mealapi_fingerprint_variable, 0, 0, 0 },

      ngx_http_null_variable
};


/* SHA-256 of the verified client certificate, lower-case hex */

ngx_int_t
ngx_http_mealapi_fingerprint(ngx_http_request_t *r, ngx_str_t *hex)
{
#if (NGX_HTTP_SSL)
    X509          *cert;
    unsigned int   len;
    u_char         md[EVP_MAX_MD_SIZE];

    if (r->connection->ssl == NULL
        || SSL_get_verify_result(r->connection->ssl->connection) != X509_V_OK)
    {
        return NGX_DECLINED;
    }

    cert = SSL_get_peer_certificate(r->connection->ssl->connection);
    if (cert == NULL) {
        return NGX_DECLINED;
    }

    if (!X509_digest(cert, EVP_sha256(), md, &len)) {
        X509_free(cert);
        return NGX_ERROR;
    }

    X509_free(cert);

    hex->data = ngx_pnalloc(r->pool, 2 * len);
    if (hex->data == NULL) {
        return NGX_ERROR;
    }

    hex->len = ngx_hex_dump(hex->data, md, len) - hex->data;

    return NGX_OK;
#else
    return NGX_DECLINED;
#endif
}


static ngx_int_t
ngx_http_mealapi_fingerprint_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_int_t  rc;
    ngx_str_t  hex;

    rc = ngx_http_mealapi_fingerprint(r, &hex);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = hex.data;
    v->len = hex.len;
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


static void *
ngx_http_mealapi_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mealapi_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

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

    mlcf->enable = NGX_CONF_UNSET;

    return mlcf;
}


static char *
ngx_http_mealapi_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mealapi_loc_conf_t  *prev = parent;
    ngx_http_mealapi_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    return NGX_CONF_OK;
}


static char *
ngx_http_mealapi_database(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_main_conf_t  *mmcf = conf;

    return ngx_pgasync_db_block(cf, &mmcf->databases);
}
