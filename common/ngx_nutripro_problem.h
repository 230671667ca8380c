
/*
 * JSON responses and RFC 9457 problem documents, shared by both modules.
 * Hidden symbols: see ngx_pgasync.h.
 */


#ifndef _NGX_NUTRIPRO_PROBLEM_H_INCLUDED_
#define _NGX_NUTRIPRO_PROBLEM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


#pragma GCC visibility push(hidden)


#define NGX_NUTRIPRO_PROBLEM_BASE  "https://nutripro.example/problems/"


/* sends doc (a reference is stolen) with the status; returns for a handler */
ngx_int_t ngx_nutripro_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *doc, ngx_str_t *content_type);

/* sends a complete body in b */
ngx_int_t ngx_nutripro_send_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b, ngx_str_t *content_type);

/*
 * Sends a problem document: type is NGX_NUTRIPRO_PROBLEM_BASE + slug;
 * extra (stolen, may be NULL) adds members such as "errors".
 */
ngx_int_t ngx_nutripro_problem(ngx_http_request_t *r, ngx_uint_t status,
    const char *slug, const char *title, const char *detail, json_t *extra);

/* Allow: from a mask of NGX_HTTP_GET | NGX_HTTP_POST | ... */
ngx_int_t ngx_nutripro_allow(ngx_http_request_t *r, ngx_uint_t allow);

/* Retry-After: seconds */
ngx_int_t ngx_nutripro_retry_after(ngx_http_request_t *r, time_t seconds);

/*
 * The request body read so far (memory buffers or a temporary file) as one
 * NUL-terminated buffer from the request pool.
 */
ngx_int_t ngx_nutripro_body_text(ngx_http_request_t *r, ngx_str_t *text);

/*
 * The request header named prefix + name (in any case): NGX_OK with *h,
 * or NULL when absent; NGX_DECLINED when there are several.
 */
ngx_int_t ngx_nutripro_header_once(ngx_http_request_t *r, ngx_str_t *prefix,
    ngx_str_t *name, ngx_table_elt_t **h);

/* json_t released with the request pool */
ngx_int_t ngx_nutripro_json_cleanup(ngx_pool_t *pool, json_t *json);


#pragma GCC visibility pop


#endif /* _NGX_NUTRIPRO_PROBLEM_H_INCLUDED_ */
