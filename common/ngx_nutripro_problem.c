
/*
 * JSON responses and RFC 9457 problem documents.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_nutripro_problem.h"


static void ngx_nutripro_json_decref(void *data);


static ngx_str_t  ngx_nutripro_problem_type =
    ngx_string("application/problem+json");


ngx_int_t
ngx_nutripro_send_json(ngx_http_request_t *r, ngx_uint_t status, json_t *doc,
    ngx_str_t *content_type)
{
    size_t      len;
    ngx_buf_t  *b;

    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = json_dumpb(doc, NULL, 0, JSON_COMPACT);

    b = ngx_create_temp_buf(r->pool, len + 1);

    if (b == NULL || json_dumpb(doc, (char *) b->last, len, JSON_COMPACT)
                     != len)
    {
        json_decref(doc);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_decref(doc);

    b->last += len;
    *b->last++ = '\n';

    return ngx_nutripro_send_buf(r, status, b, content_type);
}


ngx_int_t
ngx_nutripro_send_buf(ngx_http_request_t *r, ngx_uint_t status, ngx_buf_t *b,
    ngx_str_t *content_type)
{
    ngx_int_t         rc;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = *content_type;
    r->headers_out.content_type_len = content_type->len;
    r->headers_out.content_type_lowcase = NULL;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_nutripro_problem(ngx_http_request_t *r, ngx_uint_t status,
    const char *slug, const char *title, const char *detail, json_t *extra)
{
    char    type[128];
    json_t  *doc;

    ngx_snprintf((u_char *) type, sizeof(type) - 1, "%s%s%Z",
                 NGX_NUTRIPRO_PROBLEM_BASE, slug);
    type[sizeof(type) - 1] = '\0';

    doc = json_pack("{s:s, s:s, s:i}", "type", type, "title", title,
                    "status", (int) status);
    if (doc == NULL) {
        json_decref(extra);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (detail) {
        json_object_set_new(doc, "detail", json_string(detail));
    }

    if (extra) {
        json_object_update(doc, extra);
        json_decref(extra);
    }

    return ngx_nutripro_send_json(r, status, doc, &ngx_nutripro_problem_type);
}


/* Allow: from a mask of NGX_HTTP_GET | NGX_HTTP_POST | ... */

ngx_int_t
ngx_nutripro_allow(ngx_http_request_t *r, ngx_uint_t allow)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PUT, PATCH, DELETE"));
    if (p == NULL) {
        h->hash = 0;
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Allow");
    h->value.data = p;

    if (allow & NGX_HTTP_GET) {
        p = ngx_cpymem(p, "GET, HEAD, ", 11);
    }

    if (allow & NGX_HTTP_POST) {
        p = ngx_cpymem(p, "POST, ", 6);
    }

    if (allow & NGX_HTTP_PUT) {
        p = ngx_cpymem(p, "PUT, ", 5);
    }

    if (allow & NGX_HTTP_PATCH) {
        p = ngx_cpymem(p, "PATCH, ", 7);
    }

    if (allow & NGX_HTTP_DELETE) {
        p = ngx_cpymem(p, "DELETE, ", 8);
    }

    h->value.len = (p == h->value.data) ? 0 : p - h->value.data - 2;

    return NGX_OK;
}


ngx_int_t
ngx_nutripro_retry_after(ngx_http_request_t *r, time_t seconds)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (h->value.data == NULL) {
        h->hash = 0;
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Retry-After");
    h->value.len = ngx_sprintf(h->value.data, "%T", seconds) - h->value.data;

    return NGX_OK;
}


ngx_int_t
ngx_nutripro_body_text(ngx_http_request_t *r, ngx_str_t *text)
{
    off_t         len;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        len += ngx_buf_size(cl->buf);
    }

    text->data = ngx_pnalloc(r->pool, len + 1);
    if (text->data == NULL) {
        return NGX_ERROR;
    }

    p = text->data;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (!b->in_file) {

            /* the last buffer of a chunked body may have no memory at all */

            if (b->last != b->pos) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            return NGX_ERROR;
        }

        p += n;
    }

    *p = '\0';
    text->len = p - text->data;

    return NGX_OK;
}


ngx_int_t
ngx_nutripro_header_once(ngx_http_request_t *r, ngx_str_t *prefix,
    ngx_str_t *name, ngx_table_elt_t **h)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *e;

    *h = NULL;
    part = &r->headers_in.headers.part;
    e = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            e = part->elts;
            i = 0;
        }

        if (e[i].key.len == prefix->len + name->len
            && ngx_strncasecmp(e[i].key.data, prefix->data, prefix->len) == 0
            && ngx_strncasecmp(e[i].key.data + prefix->len, name->data,
                               name->len) == 0)
        {
            if (*h) {
                return NGX_DECLINED;
            }

            *h = &e[i];
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_nutripro_json_cleanup(ngx_pool_t *pool, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        json_decref(json);
        return NGX_ERROR;
    }

    cln->handler = ngx_nutripro_json_decref;
    cln->data = json;

    return NGX_OK;
}


static void
ngx_nutripro_json_decref(void *data)
{
    json_decref(data);
}
