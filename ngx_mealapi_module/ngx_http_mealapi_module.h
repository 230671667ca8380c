
/*
 * ngx_mealapi_module: the API gateway in front of the AI Nutrition-Pro
 * backend.
 */


#ifndef _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_
#define _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_pgasync.h"
#include "ngx_nutripro_problem.h"


#define NGX_HTTP_MEALAPI_FP_LEN      32      /* SHA-256 */
#define NGX_HTTP_MEALAPI_NAME_MAX    128     /* slug, name, plan in shm */
#define NGX_HTTP_MEALAPI_ROUTES_MAX  1024    /* a plan's route list */


/* registry node: starts at the rbtree node's color field (limit_req) */

typedef struct {
    u_char                         color;
    u_char                         cert_revoked;
    u_char                         tenant_suspended;
    u_char                         all_routes;  /* plan.routes IS NULL */
    u_char                         slug_len;
    u_char                         name_len;
    u_char                         plan_len;
    u_char                         pad;
    u_short                        routes_len;
    ngx_queue_t                    queue;       /* every node, for sweeps */
    ngx_uint_t                     generation;
    int64_t                        tenant_id;
    int64_t                        rate_milli;  /* requests/s x 1000 */
    int64_t                        burst;
    int64_t                        quota;       /* -1: unlimited */
    time_t                         not_before;
    time_t                         not_after;
    u_char                         fp[NGX_HTTP_MEALAPI_FP_LEN];
    u_char                         data[1];     /* slug name plan routes */
} ngx_http_mealapi_reg_node_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
    ngx_uint_t                     generation;
    ngx_uint_t                     count;
    ngx_uint_t                     loaded;      /* a load succeeded once */
    time_t                         loaded_at;
    ngx_pid_t                      owner;       /* the syncing worker */
    ngx_msec_t                     lease_until; /* wall clock, ms */
} ngx_http_mealapi_reg_sh_t;


typedef struct {
    ngx_http_mealapi_reg_sh_t     *sh;
    ngx_slab_pool_t               *shpool;
    ngx_shm_zone_t                *shm_zone;
    ngx_pgasync_db_t              *db;
    ngx_msec_t                     resync;
    ngx_msec_t                     startup_wait;
    ngx_str_t                      channel;
} ngx_http_mealapi_registry_t;


/* what a request learns about its tenant, copied out of shared memory */

typedef struct {
    int64_t                        id;
    ngx_str_t                      slug;
    ngx_str_t                      name;
    ngx_str_t                      plan;
    int64_t                        rate_milli;
    int64_t                        burst;
    int64_t                        quota;
} ngx_http_mealapi_tenant_t;


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     method;      /* NGX_HTTP_GET, ... */
    ngx_str_t                      path;        /* "{x}" matches a segment */
    ngx_uint_t                     prefix;      /* path is a prefix */
} ngx_http_mealapi_route_t;


typedef struct {
    ngx_http_mealapi_registry_t   *registry;
    ngx_array_t                    databases;   /* ngx_pgasync_db_t * */
    ngx_int_t                      ssl_index;   /* per-connection cache */
} ngx_http_mealapi_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;
    ngx_array_t                   *routes;      /* ngx_http_mealapi_route_t */
    ngx_str_t                      key;         /* HMAC key */
    ngx_str_t                      prefix;      /* identity header prefix */
    ngx_flag_t                     verify;      /* mealapi_verify_signature */
    time_t                         max_age;
    off_t                          max_body;
} ngx_http_mealapi_loc_conf_t;


#define NGX_HTTP_MEALAPI_START     0
#define NGX_HTTP_MEALAPI_READING   1
#define NGX_HTTP_MEALAPI_BODY      2
#define NGX_HTTP_MEALAPI_DONE      3
#define NGX_HTTP_MEALAPI_WAITING   4

typedef struct {
    ngx_uint_t                     state;
    ngx_int_t                      status;      /* after the body was read */
    ngx_http_mealapi_route_t      *route;
    ngx_http_mealapi_tenant_t      tenant;
    ngx_uint_t                     has_tenant;
    ngx_msec_t                     waited;      /* for a first registry */
    time_t                         timestamp;
    u_char                         body_sha256[64];  /* hex */
    ngx_str_t                      signature;   /* "v1=<hex>" */
    const char                    *verdict;     /* verification result */
} ngx_http_mealapi_ctx_t;


extern ngx_module_t  ngx_mealapi_module;


/* ngx_http_mealapi_registry.c */
char *ngx_http_mealapi_registry_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_mealapi_registry_init_process(ngx_cycle_t *cycle,
    ngx_http_mealapi_registry_t *reg);
void ngx_http_mealapi_registry_exit_process(ngx_http_mealapi_registry_t *reg);
/* NGX_OK: found; NGX_DECLINED: unknown; NGX_BUSY: never loaded */
ngx_int_t ngx_http_mealapi_registry_lookup(ngx_http_request_t *r,
    ngx_http_mealapi_registry_t *reg, u_char *fp,
    ngx_http_mealapi_route_t *route, ngx_http_mealapi_tenant_t *tenant,
    const char **refusal);

/* ngx_http_mealapi_identity.c */
ngx_int_t ngx_http_mealapi_client_cert(ngx_http_request_t *r,
    ngx_int_t index, u_char **fp, long *verify);
ngx_int_t ngx_http_mealapi_strip_identity(ngx_http_request_t *r,
    ngx_str_t *prefix);
ngx_int_t ngx_http_mealapi_sign(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf);
ngx_int_t ngx_http_mealapi_verify(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf);
ngx_int_t ngx_http_mealapi_body_digest(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx);

/* ngx_http_mealapi_routes.c */
char *ngx_http_mealapi_route_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_http_mealapi_route_t *ngx_http_mealapi_route_match(ngx_http_request_t *r,
    ngx_array_t *routes, ngx_uint_t *allow);

/* ngx_http_mealapi_handler.c */
ngx_int_t ngx_http_mealapi_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_mealapi_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *title, ngx_http_mealapi_ctx_t *ctx);


#endif /* _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_ */
