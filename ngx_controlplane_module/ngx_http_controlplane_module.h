
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


#define NGX_HTTP_CONTROLPLANE_MAX_PARAMS  16


typedef struct ngx_http_controlplane_ctx_s  ngx_http_controlplane_ctx_t;

/* a route's handler; and what runs when its query has answered */
typedef ngx_int_t (*ngx_http_controlplane_handler_pt)(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);


typedef struct {
    ngx_array_t                    databases;   /* ngx_pgasync_db_t * */
} ngx_http_controlplane_main_conf_t;


typedef struct {
    ngx_pgasync_db_t              *db;          /* controlplane_api */

    /* controlplane_query */
    ngx_pgasync_db_t              *query_db;
    ngx_str_t                      query_sql;
    ngx_array_t                   *query_args;  /* ngx_http_complex_value_t */

    ngx_uint_t                     max_page;    /* controlplane_page_limit */
} ngx_http_controlplane_loc_conf_t;


typedef struct {
    ngx_uint_t                     methods;     /* NGX_HTTP_GET | ... */
    ngx_str_t                      path;        /* "{}" matches a segment */
    ngx_http_controlplane_handler_pt  handler;
} ngx_http_controlplane_route_t;


struct ngx_http_controlplane_ctx_s {
    ngx_pgasync_op_t               op;
    ngx_http_controlplane_handler_pt  done;     /* answers the query */
    ngx_str_t                      segments[4]; /* "{}" parts of the path */
    const char                    *values[NGX_HTTP_CONTROLPLANE_MAX_PARAMS];
    ngx_int_t                      limit;       /* page size asked for */
    unsigned                       waiting:1;
};


extern ngx_module_t  ngx_controlplane_module;


ngx_int_t ngx_http_controlplane_query(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, const char *name, const char *sql,
    int nparams, ngx_http_controlplane_handler_pt done);
json_t *ngx_http_controlplane_rows(PGresult *res, int nrows);

ngx_int_t ngx_http_controlplane_health(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_plans_list(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
ngx_int_t ngx_http_controlplane_fixed_query(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);


#endif /* _NGX_HTTP_CONTROLPLANE_MODULE_H_INCLUDED_ */
