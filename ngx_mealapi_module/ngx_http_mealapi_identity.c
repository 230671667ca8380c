
/*
 * Tenant identity: the client certificate's fingerprint (once per TLS
 * connection), removal of client-supplied identity (and request-line
 * override) headers, and the HMAC-SHA256 signature that carries the
 * identity to the backend.
 *
 * Signed string (one "\n" between fields, none at the end):
 *
 *     v1
 *     <unix time>
 *     <METHOD>
 *     <request target as received: path and query>
 *     <tenant id>
 *     <hex SHA-256 of the request body>
 *
 * Signature header: "v1=" + hex HMAC-SHA256(key, signed string).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>

#include "ngx_http_mealapi_module.h"


typedef struct {
    u_char                         fp[NGX_HTTP_MEALAPI_FP_LEN];
    long                           verify;
    unsigned                       has_cert:1;
} ngx_http_mealapi_conn_cert_t;


static EVP_MD      *ngx_http_mealapi_sha256;
static EVP_MD_CTX  *ngx_http_mealapi_md;


static ngx_int_t ngx_http_mealapi_add_header(ngx_http_request_t *r,
    ngx_http_mealapi_header_t *name, u_char *value, size_t len);
static ngx_table_elt_t *ngx_http_mealapi_find_header(ngx_http_request_t *r,
    ngx_str_t *prefix, const char *name);
static ngx_uint_t ngx_http_mealapi_header_is(ngx_str_t *name, ngx_str_t *s,
    ngx_uint_t prefix);
static ngx_uint_t ngx_http_mealapi_strip_header(ngx_str_t *name,
    ngx_str_t *prefix);
static ngx_int_t ngx_http_mealapi_hmac(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx, ngx_http_mealapi_loc_conf_t *mlcf,
    time_t ts, ngx_str_t *tenant, u_char *out);


/*
 * NGX_OK: a certificate, its fingerprint in *fp and OpenSSL's verdict in
 * *verify; NGX_DECLINED: no certificate.  Computed once per connection and
 * kept with the SSL object.
 */

ngx_int_t
ngx_http_mealapi_client_cert(ngx_http_request_t *r, ngx_int_t index,
    u_char **fp, long *verify)
{
    X509                          *cert;
    unsigned int                   len;
    ngx_connection_t              *c;
    ngx_http_mealapi_conn_cert_t  *cc;

    c = r->connection;

    if (c->ssl == NULL || index == -1) {
        return NGX_DECLINED;
    }

    cc = SSL_get_ex_data(c->ssl->connection, index);

    if (cc == NULL) {
        cc = ngx_pcalloc(c->pool, sizeof(ngx_http_mealapi_conn_cert_t));
        if (cc == NULL) {
            return NGX_ERROR;
        }

        cert = SSL_get_peer_certificate(c->ssl->connection);

        if (cert) {
            len = NGX_HTTP_MEALAPI_FP_LEN;

            if (!X509_digest(cert, EVP_sha256(), cc->fp, &len)) {
                X509_free(cert);
                return NGX_ERROR;
            }

            X509_free(cert);
            cc->has_cert = 1;
        }

        cc->verify = SSL_get_verify_result(c->ssl->connection);

        if (SSL_set_ex_data(c->ssl->connection, index, cc) == 0) {
            return NGX_ERROR;
        }
    }

    if (!cc->has_cert) {
        return NGX_DECLINED;
    }

    *fp = cc->fp;
    *verify = cc->verify;

    return NGX_OK;
}


/*
 * Header names compare in any case and with "_" standing for "-": with
 * underscores_in_headers on, "X_Mealapi_Tenant" would reach a CGI-style
 * backend as the same HTTP_X_MEALAPI_TENANT as the gateway's own header.
 * 1: name starts with (prefix) or is (!prefix) s.
 */

static ngx_uint_t
ngx_http_mealapi_header_is(ngx_str_t *name, ngx_str_t *s, ngx_uint_t prefix)
{
    u_char      a, b;
    ngx_uint_t  i;

    if (name->len < s->len || (!prefix && name->len != s->len)) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        a = ngx_tolower(name->data[i]);
        b = ngx_tolower(s->data[i]);

        if (a == '_') {
            a = '-';
        }

        if (b == '_') {
            b = '-';
        }

        if (a != b) {
            return 0;
        }
    }

    return 1;
}


/*
 * Headers that some frameworks take over the request line: the gateway
 * routed, and signed, the method and target of the request line only
 */

static ngx_str_t  ngx_http_mealapi_override_headers[] = {
    ngx_string("X-HTTP-Method-Override"),
    ngx_string("X-HTTP-Method"),
    ngx_string("X-Method-Override"),
    ngx_string("X-Original-URL"),
    ngx_string("X-Rewrite-URL"),
    ngx_null_string
};


static ngx_uint_t
ngx_http_mealapi_strip_header(ngx_str_t *name, ngx_str_t *prefix)
{
    ngx_str_t  *o;

    if (ngx_http_mealapi_header_is(name, prefix, 1)) {
        return 1;
    }

    for (o = ngx_http_mealapi_override_headers; o->len; o++) {
        if (ngx_http_mealapi_header_is(name, o, 0)) {
            return 1;
        }
    }

    return 0;
}


/*
 * Drops every request header whose name starts with the identity prefix
 * (only the gateway speaks in that name space) or that would override the
 * request line.  ngx_list_t cannot delete,
 * so the list is rebuilt, and only when such a header is present.
 */

ngx_int_t
ngx_http_mealapi_strip_identity(ngx_http_request_t *r, ngx_str_t *prefix)
{
    ngx_uint_t        i, found;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    found = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_mealapi_strip_header(&h[i].key, prefix)) {
            found++;
        }
    }

    if (found == 0) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "mealapi: removed %ui client-supplied identity or "
                  "override header%s",
                  found, found == 1 ? "" : "s");

    /* the old parts stay in the pool: iterate them, push into a new list */

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, old.nalloc,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_mealapi_strip_header(&h[i].key, prefix)) {
            continue;
        }

        nh = ngx_list_push(&r->headers_in.headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mealapi_add_header(ngx_http_request_t *r,
    ngx_http_mealapi_header_t *name, u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key = name->key;
    h->lowcase_key = name->lowcase_key;
    h->hash = name->hash;
    h->value.data = value;
    h->value.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* the identity headers' names for a prefix, hashed, at configuration */

ngx_http_mealapi_header_t *
ngx_http_mealapi_header_names(ngx_conf_t *cf, ngx_str_t *prefix)
{
    size_t                      n;
    ngx_uint_t                  i;
    ngx_http_mealapi_header_t  *hdr;

    static char  *names[NGX_HTTP_MEALAPI_NHEADERS] = {
        "Tenant-Id", "Tenant", "Plan", "Timestamp", "Body-SHA256",
        "Signature"
    };

    hdr = ngx_palloc(cf->pool,
                     NGX_HTTP_MEALAPI_NHEADERS
                     * sizeof(ngx_http_mealapi_header_t));
    if (hdr == NULL) {
        return NULL;
    }

    for (i = 0; i < NGX_HTTP_MEALAPI_NHEADERS; i++) {
        n = ngx_strlen(names[i]);

        hdr[i].key.len = prefix->len + n;
        hdr[i].key.data = ngx_pnalloc(cf->pool, 2 * hdr[i].key.len);
        if (hdr[i].key.data == NULL) {
            return NULL;
        }

        ngx_memcpy(ngx_cpymem(hdr[i].key.data, prefix->data, prefix->len),
                   names[i], n);

        hdr[i].lowcase_key = hdr[i].key.data + hdr[i].key.len;
        hdr[i].hash = ngx_hash_strlow(hdr[i].lowcase_key, hdr[i].key.data,
                                      hdr[i].key.len);
    }

    return hdr;
}


/* the identity header prefix + name, when the client sent it once */

static ngx_table_elt_t *
ngx_http_mealapi_find_header(ngx_http_request_t *r, ngx_str_t *prefix,
    const char *name)
{
    ngx_str_t         n;
    ngx_table_elt_t  *h;

    n.data = (u_char *) name;
    n.len = ngx_strlen(name);

    if (ngx_nutripro_header_once(r, prefix, &n, &h) != NGX_OK) {
        return NULL;    /* a repeated header is no identity */
    }

    return h;
}


/* hex SHA-256 of the request body (memory or temporary file) into ctx */

ngx_int_t
ngx_http_mealapi_body_digest(ngx_http_request_t *r,
    ngx_http_mealapi_ctx_t *ctx)
{
    off_t          offset;
    ssize_t        n;
    ngx_int_t      rc;
    ngx_buf_t     *b;
    EVP_MD_CTX    *md;
    ngx_chain_t   *cl;
    unsigned int   len;
    u_char         digest[EVP_MAX_MD_SIZE], buf[4096];

    if (r->request_body == NULL || r->request_body->bufs == NULL) {

        /* no body (most GETs): the SHA-256 of nothing, without hashing */

        ngx_memcpy(ctx->body_sha256, "e3b0c44298fc1c149afbf4c8996fb924"
                   "27ae41e4649b934ca495991b7852b855", 64);
        return NGX_OK;
    }

    /*
     * OpenSSL 3 looks algorithms up by name on every implicit use: the
     * digest and its context are kept for the life of the process.
     */

    if (ngx_http_mealapi_sha256 == NULL) {
        ngx_http_mealapi_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
        ngx_http_mealapi_md = EVP_MD_CTX_new();

        if (ngx_http_mealapi_sha256 == NULL || ngx_http_mealapi_md == NULL) {
            return NGX_ERROR;
        }
    }

    md = ngx_http_mealapi_md;

    if (!EVP_DigestInit_ex(md, ngx_http_mealapi_sha256, NULL)) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (!b->in_file) {
            if (!EVP_DigestUpdate(md, b->pos, b->last - b->pos)) {
                goto failed;
            }

            continue;
        }

        for (offset = b->file_pos; offset < b->file_last; offset += n) {
            n = ngx_read_file(b->file, buf,
                              ngx_min((off_t) sizeof(buf),
                                      b->file_last - offset),
                              offset);

            if (n <= 0 || !EVP_DigestUpdate(md, buf, n)) {
                goto failed;
            }
        }
    }

    if (!EVP_DigestFinal_ex(md, digest, &len)) {
        goto failed;
    }

    ngx_hex_dump(ctx->body_sha256, digest, len);
    rc = NGX_OK;

failed:

    return rc;
}


static ngx_int_t
ngx_http_mealapi_hmac(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_http_mealapi_loc_conf_t *mlcf, time_t ts, ngx_str_t *tenant,
    u_char *out)
{
    u_char      *p, md[SHA256_DIGEST_LENGTH], head[NGX_TIME_T_LEN + 8];
    SHA256_CTX   sha;

    /*
     * SHA-256's own API on copies of the states keyed at startup: no
     * allocation and no provider dispatch per request (EVP_MAC_CTX_dup()
     * and free were half of the signature's cost)
     */

    p = ngx_sprintf(head, "v1\n%T\n", ts);

    sha = mlcf->hmac->inner;

    if (!SHA256_Update(&sha, head, p - head)
        || !SHA256_Update(&sha, r->method_name.data, r->method_name.len)
        || !SHA256_Update(&sha, "\n", 1)
        || !SHA256_Update(&sha, r->unparsed_uri.data, r->unparsed_uri.len)
        || !SHA256_Update(&sha, "\n", 1)
        || !SHA256_Update(&sha, tenant->data, tenant->len)
        || !SHA256_Update(&sha, "\n", 1)
        || !SHA256_Update(&sha, ctx->body_sha256, 64)
        || !SHA256_Final(md, &sha))
    {
        return NGX_ERROR;
    }

    sha = mlcf->hmac->outer;

    if (!SHA256_Update(&sha, md, sizeof(md)) || !SHA256_Final(md, &sha)) {
        return NGX_ERROR;
    }

    ngx_hex_dump(out, md, sizeof(md));

    return NGX_OK;
}


/* the identity headers for the backend, signed */

ngx_int_t
ngx_http_mealapi_sign(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_http_mealapi_loc_conf_t *mlcf)
{
    u_char                     *p;
    ngx_str_t                   id;
    ngx_http_mealapi_header_t  *h;

    h = mlcf->headers;

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + NGX_TIME_T_LEN + 3 + 64);
    if (p == NULL) {
        return NGX_ERROR;
    }

    id.data = p;
    id.len = ngx_sprintf(p, "%L", ctx->tenant.id) - p;
    p += id.len;

    ctx->timestamp = ngx_time();

    if (mlcf->hmac) {
        ctx->signature.data = p;
        p = ngx_cpymem(p, "v1=", 3);

        if (ngx_http_mealapi_hmac(r, ctx, mlcf, ctx->timestamp, &id, p)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->signature.len = 3 + 64;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_mealapi_add_header(r, &h[NGX_HTTP_MEALAPI_H_TENANT_ID],
                                    id.data, id.len) != NGX_OK
        || ngx_http_mealapi_add_header(r, &h[NGX_HTTP_MEALAPI_H_TENANT],
                                       ctx->tenant.slug.data,
                                       ctx->tenant.slug.len) != NGX_OK
        || ngx_http_mealapi_add_header(r, &h[NGX_HTTP_MEALAPI_H_PLAN],
                                       ctx->tenant.plan.data,
                                       ctx->tenant.plan.len) != NGX_OK
        || ngx_http_mealapi_add_header(r, &h[NGX_HTTP_MEALAPI_H_TIMESTAMP], p,
                                       ngx_sprintf(p, "%T", ctx->timestamp)
                                       - p) != NGX_OK
        || ngx_http_mealapi_add_header(r, &h[NGX_HTTP_MEALAPI_H_BODY],
                                       ctx->body_sha256, 64) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->signature.len
        && ngx_http_mealapi_add_header(r, &h[NGX_HTTP_MEALAPI_H_SIGNATURE],
                                       ctx->signature.data,
                                       ctx->signature.len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The backend side (mealapi_verify_signature): NGX_OK when the request
 * carries a valid, fresh signature; ctx->verdict says what was wrong.
 */

ngx_int_t
ngx_http_mealapi_verify(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_http_mealapi_loc_conf_t *mlcf)
{
    time_t            ts, now;
    ngx_table_elt_t  *hts, *hid, *hsig;
    u_char            expect[64];

    hts = ngx_http_mealapi_find_header(r, &mlcf->prefix, "Timestamp");
    hid = ngx_http_mealapi_find_header(r, &mlcf->prefix, "Tenant-Id");
    hsig = ngx_http_mealapi_find_header(r, &mlcf->prefix, "Signature");

    if (hts == NULL || hid == NULL || hsig == NULL) {
        ctx->verdict = "missing";
        return NGX_DECLINED;
    }

    ts = ngx_atotm(hts->value.data, hts->value.len);
    now = ngx_time();

    if (ts == NGX_ERROR || ts + mlcf->max_age < now
        || ts - mlcf->max_age > now)
    {
        ctx->verdict = "stale";
        return NGX_DECLINED;
    }

    if (ngx_http_mealapi_hmac(r, ctx, mlcf, ts, &hid->value, expect)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (hsig->value.len != 3 + 64
        || ngx_strncmp(hsig->value.data, "v1=", 3) != 0
        || CRYPTO_memcmp(hsig->value.data + 3, expect, 64) != 0)
    {
        ctx->verdict = "invalid";
        return NGX_DECLINED;
    }

    ctx->verdict = "valid";

    return NGX_OK;
}


/* HMAC-SHA256 keyed once, at configuration time (RFC 2104, section 2) */

ngx_int_t
ngx_http_mealapi_hmac_key(ngx_http_mealapi_hmac_t *hmac, u_char *key,
    size_t len)
{
    u_char      k[SHA256_CBLOCK], pad[SHA256_CBLOCK];
    ngx_int_t   rc;
    ngx_uint_t  i;

    ngx_memzero(k, sizeof(k));

    if (len > SHA256_CBLOCK) {
        SHA256(key, len, k);

    } else {
        ngx_memcpy(k, key, len);
    }

    for (i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }

    rc = NGX_ERROR;

    if (SHA256_Init(&hmac->inner)
        && SHA256_Update(&hmac->inner, pad, SHA256_CBLOCK))
    {
        for (i = 0; i < SHA256_CBLOCK; i++) {
            pad[i] = k[i] ^ 0x5c;
        }

        if (SHA256_Init(&hmac->outer)
            && SHA256_Update(&hmac->outer, pad, SHA256_CBLOCK))
        {
            rc = NGX_OK;
        }
    }

    ngx_explicit_memzero(k, sizeof(k));
    ngx_explicit_memzero(pad, sizeof(pad));

    return rc;
}
