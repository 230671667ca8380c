
/*
 * ngx_mealapi_module: the API gateway in front of the AI Nutrition-Pro
 * backend.
 */


#ifndef _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_
#define _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_pgasync.h"
#include "ngx_nutripro_problem.h"
#include "ngx_http_mealapi_schema.h"


#define NGX_HTTP_MEALAPI_FP_LEN      32      /* SHA-256 */
#define NGX_HTTP_MEALAPI_NAME_MAX    128     /* slug, name, plan in shm */

/* a plan's route list: the control plane allows 64 names of 128 bytes */
#define NGX_HTTP_MEALAPI_ROUTES_MAX  (64 * 129)


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
    int64_t                        cert_id;
    int64_t                        tenant_id;
    int64_t                        plan_id;
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


/* usage counters of one tenant for one day (deltas not yet flushed) */

#define NGX_HTTP_MEALAPI_REQUESTS      0
#define NGX_HTTP_MEALAPI_STATUS_2XX    1    /* .. 3xx, 4xx, 5xx: 2 .. 4 */
#define NGX_HTTP_MEALAPI_REFUSED_AUTH  5
#define NGX_HTTP_MEALAPI_REFUSED_ROUTE 6
#define NGX_HTTP_MEALAPI_REFUSED_RATE  7
#define NGX_HTTP_MEALAPI_REFUSED_QUOTA 8
#define NGX_HTTP_MEALAPI_REFUSED_VALID 9
#define NGX_HTTP_MEALAPI_BYTES_IN      10
#define NGX_HTTP_MEALAPI_BYTES_OUT     11
#define NGX_HTTP_MEALAPI_NCOUNTERS     12

typedef struct {
    uint32_t                       day;         /* days since 1970, 0: none */
    uint64_t                       n[NGX_HTTP_MEALAPI_NCOUNTERS];
} ngx_http_mealapi_usage_t;


/* per-tenant state: limiter, quota, meter; starts at the color field */

typedef struct {
    u_char                         color;
    u_char                         month_loaded;
    u_char                         pad[2];
    uint32_t                       month;       /* year * 12 + month */
    ngx_queue_t                    queue;       /* every node, for flushes */
    int64_t                        tenant_id;
    int64_t                        tat;         /* GCRA, microseconds */
    int64_t                        month_used;  /* quota units this month */
    int64_t                        flushed;     /* of them, acknowledged */
    ngx_pid_t                      flusher;     /* owner of "inflight" */
    int64_t                        batch;       /* inflight's flush id */
    ngx_http_mealapi_usage_t       slot[2];     /* deltas by day */
    ngx_http_mealapi_usage_t       inflight;    /* sent, not acknowledged */
} ngx_http_mealapi_tnode_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
    uint32_t                       month_loaded; /* month of the last load */
} ngx_http_mealapi_tenants_sh_t;


typedef struct {
    ngx_http_mealapi_tenants_sh_t *sh;
    ngx_slab_pool_t               *shpool;
    ngx_shm_zone_t                *shm_zone;
} ngx_http_mealapi_throttle_t;


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
    ngx_regex_t                   *regex;       /* anchored */
    ngx_uint_t                     required;
} ngx_http_mealapi_param_t;


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     method;      /* NGX_HTTP_GET, ... */
    ngx_str_t                      path;        /* "{x}" matches a segment */
    ngx_uint_t                     prefix;      /* path is a prefix */
    ngx_uint_t                     cost;        /* units per request */
    mealapi_schema_t              *schema;      /* for the body */
    ngx_array_t                   *params;      /* ngx_http_mealapi_param_t */
    ngx_uint_t                     query_lenient;
} ngx_http_mealapi_route_t;


typedef struct {
    ngx_http_mealapi_registry_t   *registry;
    ngx_http_mealapi_throttle_t   *throttle;
    ngx_pgasync_db_t              *usage_db;    /* mealapi_usage */
    ngx_msec_t                     usage_flush;
    time_t                         clock_offset; /* tests only */
    ngx_array_t                    databases;   /* ngx_pgasync_db_t * */
    ngx_int_t                      ssl_index;   /* per-connection cache */
} ngx_http_mealapi_main_conf_t;


/* an identity header's name, prefix included, made once per location */

typedef struct {
    ngx_str_t                      key;
    u_char                        *lowcase_key;
    ngx_uint_t                     hash;
} ngx_http_mealapi_header_t;

#define NGX_HTTP_MEALAPI_H_TENANT_ID  0
#define NGX_HTTP_MEALAPI_H_TENANT     1
#define NGX_HTTP_MEALAPI_H_PLAN       2
#define NGX_HTTP_MEALAPI_H_TIMESTAMP  3
#define NGX_HTTP_MEALAPI_H_BODY       4
#define NGX_HTTP_MEALAPI_H_SIGNATURE  5
#define NGX_HTTP_MEALAPI_NHEADERS     6


/*
 * HMAC-SHA256 (RFC 2104) keyed once: the SHA-256 states after the key's
 * inner and outer pad blocks, copied per signature
 */

typedef struct {
    SHA256_CTX                     inner;
    SHA256_CTX                     outer;
} ngx_http_mealapi_hmac_t;


typedef struct {
    ngx_flag_t                     enable;
    ngx_array_t                   *routes;      /* ngx_http_mealapi_route_t */
    ngx_http_mealapi_hmac_t       *hmac;        /* mealapi_signing_key */
    ngx_str_t                      prefix;      /* identity header prefix */
    ngx_http_mealapi_header_t     *headers;     /* the names, with it */
    ngx_flag_t                     verify;      /* mealapi_verify_signature */
    ngx_uint_t                     throttle;    /* off, on, dry_run */
    time_t                         max_age;
    off_t                          max_body;
    ngx_uint_t                     max_depth;   /* of a JSON body */
    ngx_uint_t                     max_errors;  /* listed in a 422 */
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

    ngx_http_mealapi_tnode_t      *tnode;       /* stable: never freed */
    ngx_str_t                      ratelimit_policy;
    ngx_str_t                      ratelimit;
    time_t                         retry_after;
    ngx_int_t                      refused;     /* a REFUSED_* counter */
    off_t                          sent_start;
    json_t                        *problem_extra; /* for the next refusal */
    unsigned                       passed:1;    /* went to the backend */
} ngx_http_mealapi_ctx_t;


#define NGX_HTTP_MEALAPI_THROTTLE_OFF     0
#define NGX_HTTP_MEALAPI_THROTTLE_ON      1
#define NGX_HTTP_MEALAPI_THROTTLE_DRY_RUN 2


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
ngx_int_t ngx_http_mealapi_hmac_key(ngx_http_mealapi_hmac_t *hmac,
    u_char *key, size_t len);
ngx_http_mealapi_header_t *ngx_http_mealapi_header_names(ngx_conf_t *cf,
    ngx_str_t *prefix);

/* ngx_http_mealapi_throttle.c */
char *ngx_http_mealapi_throttle_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_mealapi_throttle_init(ngx_conf_t *cf);
time_t ngx_http_mealapi_now(ngx_http_request_t *r, ngx_msec_t *msec);
/* NGX_OK: pass; NGX_DECLINED: refused, ctx says why; NGX_ERROR */
ngx_int_t ngx_http_mealapi_throttle(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf);
ngx_http_mealapi_tnode_t *ngx_http_mealapi_tnode_get(
    ngx_http_mealapi_throttle_t *th, int64_t tenant_id, uint32_t month);
uint32_t ngx_http_mealapi_month(time_t now);

/* ngx_http_mealapi_usage.c */
char *ngx_http_mealapi_usage_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_mealapi_log_handler(ngx_http_request_t *r);
void ngx_http_mealapi_usage_release(ngx_http_mealapi_main_conf_t *mmcf);
void ngx_http_mealapi_usage_tick(ngx_http_mealapi_main_conf_t *mmcf,
    ngx_log_t *log);
void ngx_http_mealapi_usage_exit(ngx_http_mealapi_main_conf_t *mmcf,
    ngx_log_t *log);
void ngx_http_mealapi_quota_load(ngx_http_mealapi_main_conf_t *mmcf,
    ngx_log_t *log);

/* ngx_http_mealapi_validate.c */
char *ngx_http_mealapi_schema_conf(ngx_conf_t *cf,
    ngx_http_mealapi_route_t *route, ngx_str_t *file);
char *ngx_http_mealapi_query_param_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_mealapi_validate_query(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx);
ngx_int_t ngx_http_mealapi_validate_type(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx);
ngx_int_t ngx_http_mealapi_validate_body(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf);

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
