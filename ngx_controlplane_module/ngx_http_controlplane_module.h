
/*
 * ngx_controlplane_module: the Web Control Plane's REST API.
 */


#ifndef _NGX_HTTP_CONTROLPLANE_MODULE_H_INCLUDED_
#define _NGX_HTTP_CONTROLPLANE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_pgasync.h"
#include "ngx_nutripro_problem.h"
#include "ngx_nutripro_limit.h"
#include "ngx_http_mealapi_schema.h"


#define NGX_HTTP_CONTROLPLANE_MAX_PARAMS  16


typedef struct ngx_http_controlplane_ctx_s  ngx_http_controlplane_ctx_t;

/* a route's handler; and what runs when its query has answered */
typedef ngx_int_t (*ngx_http_controlplane_handler_pt)(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);


#define NGX_HTTP_CP_PUBLIC          0x01   /* no session needed */
#define NGX_HTTP_CP_ADMIN           0x02
#define NGX_HTTP_CP_ONBOARDING      0x04
#define NGX_HTTP_CP_TENANT_MANAGER  0x08
#define NGX_HTTP_CP_ANY             0x0e   /* every role */


typedef struct {
    ngx_array_t                    databases;   /* ngx_pgasync_db_t * */
    ngx_nutripro_limit_t          *limit;       /* controlplane_limit_zone */
} ngx_http_controlplane_main_conf_t;


typedef struct {
    ngx_pgasync_db_t              *db;          /* controlplane_api */

    /* controlplane_query */
    ngx_pgasync_db_t              *query_db;
    ngx_str_t                      query_sql;
    ngx_array_t                   *query_args;  /* ngx_http_complex_value_t */

    ngx_uint_t                     max_page;    /* controlplane_page_limit */

    u_char                         secret_key[32];  /* TOTP secrets */
    ngx_uint_t                     has_secret_key;
    ngx_thread_pool_t             *thread_pool; /* password hashing */
    X509_STORE                    *tenant_ca;   /* certificates must chain */
    time_t                         session_ttl;
    ngx_uint_t                     login_rate;  /* per address, milli r/s */
    ngx_uint_t                     login_burst;
    ngx_uint_t                     api_rate;    /* per operator and address */
    ngx_uint_t                     api_burst;
    ngx_uint_t                     lockout_after; /* failed logins */
    time_t                         lockout_time;
    ngx_uint_t                     hashing_max; /* per worker, in the pool */
} ngx_http_controlplane_loc_conf_t;


typedef struct {
    ngx_uint_t                     methods;     /* NGX_HTTP_GET | ... */
    ngx_str_t                      path;        /* "{}" matches a segment */
    ngx_uint_t                     roles;       /* NGX_HTTP_CP_* */
    ngx_http_controlplane_handler_pt  handler;  /* or the generic one */

    /* the generic handler: one statement, its JSON text answers */
    const char                    *name;        /* also the audit action */
    const char                    *params;      /* "op,user,addr,s0,body" */
    const char                    *sql;
    ngx_uint_t                     status;      /* on success */
    const char                    *schema;      /* for a JSON body */
    mealapi_schema_t              *compiled;
} ngx_http_controlplane_route_t;


typedef struct {
    int64_t                        id;
    ngx_str_t                      username;
    ngx_str_t                      role;
    ngx_uint_t                     role_bit;    /* NGX_HTTP_CP_* */
    ngx_str_t                      tenant_id;   /* "" unless tenant manager */
} ngx_http_controlplane_operator_t;


struct ngx_http_controlplane_ctx_s {
    ngx_pgasync_op_t               op;
    ngx_http_controlplane_handler_pt  done;     /* answers the query */
    ngx_str_t                      segments[4]; /* "{}" parts of the path */
    const char                    *values[NGX_HTTP_CONTROLPLANE_MAX_PARAMS];
    ngx_int_t                      limit;       /* page size asked for */
    ngx_http_controlplane_route_t *route;
    ngx_http_controlplane_operator_t  operator;
    json_t                        *body;        /* parsed request body */
    ngx_str_t                      body_text;
    void                          *login;       /* login state */
    void                          *data;        /* a handler's own */
    unsigned                       waiting:1;
    unsigned                       has_operator:1;
};


extern ngx_module_t  ngx_controlplane_module;


extern ngx_str_t  ngx_http_controlplane_json_type;


/* ngx_http_controlplane_module.c */
ngx_int_t ngx_http_controlplane_busy(ngx_http_request_t *r);
ngx_int_t ngx_http_controlplane_query(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, const char *name, const char *sql,
    int nparams, ngx_http_controlplane_handler_pt done);
json_t *ngx_http_controlplane_rows(PGresult *res, int nrows);

ngx_int_t ngx_http_controlplane_send_text(ngx_http_request_t *r,
    ngx_uint_t status, u_char *text, size_t len);
ngx_int_t ngx_http_controlplane_invalid(ngx_http_request_t *r,
    const char *type, const char *detail, json_t *errors);

/* ngx_http_controlplane_api.c */
char *ngx_http_controlplane_addr(ngx_http_request_t *r);
ngx_http_controlplane_route_t *ngx_http_controlplane_routes_get(void);
ngx_int_t ngx_http_controlplane_routes_init(ngx_conf_t *cf);
void ngx_http_controlplane_routes_free(void);
ngx_int_t ngx_http_controlplane_run(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_certificate_add(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_operator_add(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);

/* ngx_http_controlplane_auth.c */
ngx_int_t ngx_http_controlplane_authenticate(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_login(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_logout(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_whoami(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_hash_password(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, const char *password, size_t len,
    ngx_http_controlplane_handler_pt done);
const char *ngx_http_controlplane_new_hash(ngx_http_controlplane_ctx_t *ctx);

/* ngx_http_controlplane_handlers.c */
ngx_int_t ngx_http_controlplane_health(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_plans_list(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_fixed_query(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);


#endif /* _NGX_HTTP_CONTROLPLANE_MODULE_H_INCLUDED_ */
