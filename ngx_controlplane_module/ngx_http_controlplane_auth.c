
/*
 * Operators: sessions (a random token, stored as its SHA-256, sent as a
 * Secure HttpOnly SameSite=Strict cookie or a bearer token), login with
 * password + TOTP, logout.  The password hash (scrypt) runs in an nginx
 * thread pool, off the event loop.  A failed login never says which factor
 * was wrong; repeated failures lock the account for a while; every attempt
 * is audited.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/crypto.h>

#include "ngx_http_controlplane_module.h"
#include "ngx_http_controlplane_crypto.h"


#define NGX_HTTP_CP_COOKIE  "nutripro_session"


typedef struct {
    /* the thread's input and output */
    char                          *password;
    size_t                         password_len;
    char                          *hash;        /* encoded, or to verify */
    int                            result;      /* verify: 1 match */

    /* the operator row, when there is one */
    ngx_uint_t                     found;
    ngx_str_t                      id;
    ngx_str_t                      username;
    ngx_str_t                      role;
    ngx_str_t                      tenant_id;
    u_char                         sealed[CP_SEALED_MAX];
    size_t                         sealed_len;
    int64_t                        last_step;
    ngx_uint_t                     locked;
    ngx_uint_t                     disabled;

    int64_t                        step;        /* accepted TOTP step */
    ngx_event_t                    guard;       /* holds a leaving worker */
    u_char                         token[CP_TOKEN_LEN];
    ngx_http_controlplane_handler_pt  done;     /* after hashing */
} ngx_http_controlplane_login_t;


static ngx_uint_t  ngx_http_controlplane_hashing;   /* tasks in the pool */


static ngx_int_t ngx_http_controlplane_session_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_token(ngx_http_request_t *r,
    u_char *token);
static ngx_int_t ngx_http_controlplane_token_hash(ngx_http_request_t *r,
    u_char *token, const char **hex);
static ngx_int_t ngx_http_controlplane_login_found(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_login_checked(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_login_failed(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_login_refuse(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_login_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_logout_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx);
static ngx_int_t ngx_http_controlplane_set_cookie(ngx_http_request_t *r,
    u_char *value, size_t len, time_t max_age);
static void ngx_http_controlplane_verify_thread(void *data, ngx_log_t *log);
static void ngx_http_controlplane_hash_thread(void *data, ngx_log_t *log);
static void ngx_http_controlplane_thread_done(ngx_event_t *ev);
static void ngx_http_controlplane_guard(ngx_event_t *ev);
static ngx_int_t ngx_http_controlplane_thread(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx,
    void (*handler)(void *data, ngx_log_t *log));
static ngx_str_t ngx_http_controlplane_copy(ngx_http_request_t *r,
    PGresult *res, int col);
static ngx_uint_t ngx_http_controlplane_same_origin(ngx_http_request_t *r);


/*
 * The session behind the request's token, if any.  NGX_DONE: looking it
 * up; the route continues from ngx_http_controlplane_session_done().
 */

ngx_int_t
ngx_http_controlplane_authenticate(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char  token[CP_TOKEN_LEN];

    if (ngx_http_controlplane_token(r, token) != NGX_OK) {
        return ngx_nutripro_problem(r, NGX_HTTP_UNAUTHORIZED,
                                    "unauthenticated", "Unauthorized",
                                    "a valid session is required", NULL);
    }

    if (ngx_http_controlplane_token_hash(r, token, &ctx->values[0])
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_controlplane_query(r, ctx, "session",
        "SELECT o.id, o.username, o.role, o.tenant_id FROM sessions s"
        " JOIN operators o ON o.id = s.operator_id"
        " WHERE s.token_hash = decode($1, 'hex') AND s.revoked_at IS NULL"
        " AND s.expires_at > now() AND NOT o.disabled",
        1, ngx_http_controlplane_session_done);
}


static ngx_int_t
ngx_http_controlplane_session_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    time_t                             retry;
    u_char                            *p;
    PGresult                          *res;
    ngx_http_controlplane_operator_t  *op;
    ngx_http_controlplane_loc_conf_t  *clcf;
    ngx_http_controlplane_main_conf_t *cmcf;
    u_char                             key[NGX_INT64_LEN + 3];

    res = ctx->op.res;

    if (PQntuples(res) != 1) {
        return ngx_nutripro_problem(r, NGX_HTTP_UNAUTHORIZED,
                                    "unauthenticated", "Unauthorized",
                                    "a valid session is required", NULL);
    }

    op = &ctx->operator;

    op->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    op->username = ngx_http_controlplane_copy(r, res, 1);
    op->role = ngx_http_controlplane_copy(r, res, 2);
    op->tenant_id = ngx_http_controlplane_copy(r, res, 3);

    if (op->username.data == NULL || op->role.data == NULL
        || op->tenant_id.data == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    op->role_bit = ngx_strcmp(op->role.data, "admin") == 0
                   ? NGX_HTTP_CP_ADMIN
                   : ngx_strcmp(op->role.data, "onboarding") == 0
                     ? NGX_HTTP_CP_ONBOARDING : NGX_HTTP_CP_TENANT_MANAGER;

    ctx->has_operator = 1;

    /* the operator's own limit, on top of the address's */

    cmcf = ngx_http_get_module_main_conf(r, ngx_controlplane_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    if (cmcf->limit) {
        p = ngx_sprintf(key, "o:%L", op->id);

        switch (ngx_nutripro_limit_take(cmcf->limit, key, p - key,
                                        clcf->api_rate, clcf->api_burst,
                                        &retry))
        {
        case NGX_OK:
            break;

        case NGX_BUSY:
            if (ngx_nutripro_retry_after(r, retry) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_nutripro_problem(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                        "too-many-requests",
                                        "Too Many Requests", NULL, NULL);

        default:
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }

    if (!(ctx->route->roles & op->role_bit)) {
        return ngx_nutripro_problem(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                    "Forbidden",
                                    "the operator's role does not allow this",
                                    NULL);
    }

    if (ctx->route->handler) {
        return ctx->route->handler(r, ctx);
    }

    return ngx_http_controlplane_run(r, ctx);
}


/* a copy, NUL-terminated, of a column ("" for NULL) */

static ngx_str_t
ngx_http_controlplane_copy(ngx_http_request_t *r, PGresult *res, int col)
{
    ngx_str_t  s;

    s.len = PQgetlength(res, 0, col);
    s.data = ngx_pnalloc(r->pool, s.len + 1);

    if (s.data) {
        ngx_memcpy(s.data, PQgetvalue(res, 0, col), s.len);
        s.data[s.len] = '\0';
    }

    return s;
}


/*
 * The request carries no Origin (not a browser's cross-origin request:
 * browsers send it with every one that writes), or the origin of this
 * host: "http(s)://" + Host
 */

static ngx_uint_t
ngx_http_controlplane_same_origin(ngx_http_request_t *r)
{
    u_char           *p, *last;
    ngx_str_t        *host;
    ngx_table_elt_t  *origin;

    static ngx_str_t  none = ngx_null_string;
    static ngx_str_t  name = ngx_string("Origin");

    if (ngx_nutripro_header_once(r, &none, &name, &origin) != NGX_OK) {
        return 0;
    }

    if (origin == NULL) {
        return 1;
    }

    if (r->headers_in.host == NULL) {
        return 0;
    }

    host = &r->headers_in.host->value;
    p = origin->value.data;
    last = p + origin->value.len;

    if (last - p > 8 && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0) {
        p += 8;

    } else if (last - p > 7
               && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0)
    {
        p += 7;

    } else {
        return 0;    /* "null" and the like */
    }

    return (size_t) (last - p) == host->len
           && ngx_strncasecmp(p, host->data, host->len) == 0;
}


/* "Authorization: Bearer <64 hex>" or the session cookie */

static ngx_int_t
ngx_http_controlplane_token(ngx_http_request_t *r, u_char *token)
{
    u_char            *p;
    ngx_str_t          value, name;
    ngx_uint_t         i;
    ngx_int_t          b;
    ngx_table_elt_t   *h;

    h = r->headers_in.authorization;

    if (h && h->value.len > 7
        && ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) == 0)
    {
        value.data = h->value.data + 7;
        value.len = h->value.len - 7;

    } else {

        /*
         * A browser attaches the cookie to any request it sends here; a
         * write is taken on the cookie only from this origin's own pages
         */

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
            && !ngx_http_controlplane_same_origin(r))
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "controlplane: session cookie ignored for a "
                          "write from another origin");
            return NGX_DECLINED;
        }

        ngx_str_set(&name, NGX_HTTP_CP_COOKIE);

#if (nginx_version >= 1023000)
        if (ngx_http_parse_multi_header_lines(r, r->headers_in.cookie, &name,
                                              &value)
            == NULL)
#else
        if (ngx_http_parse_multi_header_lines(&r->headers_in.cookies, &name,
                                              &value)
            == NGX_DECLINED)
#endif
        {
            return NGX_DECLINED;
        }
    }

    if (value.len != 2 * CP_TOKEN_LEN) {
        return NGX_DECLINED;
    }

    p = value.data;

    for (i = 0; i < CP_TOKEN_LEN; i++) {
        b = ngx_hextoi(p + 2 * i, 2);
        if (b == NGX_ERROR) {
            return NGX_DECLINED;
        }

        token[i] = (u_char) b;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_controlplane_token_hash(ngx_http_request_t *r, u_char *token,
    const char **hex)
{
    u_char        *p;
    unsigned int   len;
    u_char         md[EVP_MAX_MD_SIZE];

    if (!EVP_Digest(token, CP_TOKEN_LEN, md, &len, EVP_sha256(), NULL)) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 2 * len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *hex = (char *) p;
    *ngx_hex_dump(p, md, len) = '\0';

    return NGX_OK;
}


/* POST /api/v1/session {"username", "password", "totp"} */

ngx_int_t
ngx_http_controlplane_login(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                             *p;
    time_t                              retry;
    ngx_int_t                           rc;
    ngx_str_t                           user;
    ngx_uint_t                          i;
    ngx_http_controlplane_login_t      *login;
    ngx_http_controlplane_loc_conf_t   *clcf;
    ngx_http_controlplane_main_conf_t  *cmcf;
    u_char                              key[3 + NGX_SOCKADDR_STRLEN + 64];

    cmcf = ngx_http_get_module_main_conf(r, ngx_controlplane_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    if (!clcf->has_secret_key || clcf->thread_pool == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "controlplane: login needs "
                      "\"controlplane_secret_key\"");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    user.data = (u_char *) json_string_value(json_object_get(ctx->body,
                                                             "username"));
    user.len = json_string_length(json_object_get(ctx->body, "username"));

    /* per address, and per name whatever the address: 429 */

    if (cmcf->limit) {
        /* keys of their own: the API limit counts "a:" and "o:" */

        p = ngx_snprintf(key, sizeof(key), "la:%V",
                         &r->connection->addr_text);

        rc = ngx_nutripro_limit_take(cmcf->limit, key, p - key,
                                     clcf->login_rate, clcf->login_burst,
                                     &retry);
        if (rc == NGX_OK) {
            p = ngx_cpymem(key, "lu:", 3);

            for (i = 0; i < user.len && i < 64; i++) {
                *p++ = ngx_tolower(user.data[i]);
            }

            rc = ngx_nutripro_limit_take(cmcf->limit, key, p - key,
                                         clcf->login_rate, clcf->login_burst,
                                         &retry);
            if (rc == NGX_OK) {
                goto allowed;
            }
        }

        if (rc == NGX_ERROR) {
            return ngx_http_controlplane_busy(r);
        }

        if (ngx_nutripro_retry_after(r, retry) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_nutripro_problem(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                    "too-many-requests", "Too Many Requests",
                                    "too many login attempts", NULL);
    }

allowed:

    login = ngx_pcalloc(r->pool, sizeof(ngx_http_controlplane_login_t));
    if (login == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->login = login;

    login->password = (char *) json_string_value(json_object_get(ctx->body,
                                                                 "password"));
    login->password_len = json_string_length(json_object_get(ctx->body,
                                                             "password"));

    ctx->values[0] = (char *) user.data;

    return ngx_http_controlplane_query(r, ctx, "login",
        "SELECT id, username, role, coalesce(tenant_id::text, ''),"
        " password_hash, encode(totp_secret_enc, 'hex'), totp_last_step,"
        " coalesce(locked_until > now(), false), disabled"
        " FROM operators WHERE lower(username) = lower($1)",
        1, ngx_http_controlplane_login_found);
}


static ngx_int_t
ngx_http_controlplane_login_found(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                         *hex;
    size_t                          i, len;
    ngx_int_t                       b;
    PGresult                       *res;
    ngx_str_t                       hash;
    ngx_http_controlplane_login_t  *login;

    login = ctx->login;
    res = ctx->op.res;

    login->hash = NULL;

    if (PQntuples(res) == 1) {
        login->found = 1;
        login->id = ngx_http_controlplane_copy(r, res, 0);
        login->username = ngx_http_controlplane_copy(r, res, 1);
        login->role = ngx_http_controlplane_copy(r, res, 2);
        login->tenant_id = ngx_http_controlplane_copy(r, res, 3);
        hash = ngx_http_controlplane_copy(r, res, 4);

        if (login->id.data == NULL || login->username.data == NULL
            || login->role.data == NULL || login->tenant_id.data == NULL
            || hash.data == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        login->hash = (char *) hash.data;

        hex = (u_char *) PQgetvalue(res, 0, 5);
        len = PQgetlength(res, 0, 5) / 2;

        if (len <= CP_SEALED_MAX) {
            for (i = 0; i < len; i++) {
                b = ngx_hextoi(hex + 2 * i, 2);
                login->sealed[i] = (u_char) (b == NGX_ERROR ? 0 : b);
            }

            login->sealed_len = len;
        }

        login->last_step = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
        login->locked = PQgetvalue(res, 0, 7)[0] == 't';
        login->disabled = PQgetvalue(res, 0, 8)[0] == 't';
    }

    login->done = ngx_http_controlplane_login_checked;

    return ngx_http_controlplane_thread(r, ctx,
                                        ngx_http_controlplane_verify_thread);
}


/* the password was checked off the event loop; now the second factor */

static ngx_int_t
ngx_http_controlplane_login_checked(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                            *p;
    size_t                             len;
    json_t                            *totp;
    ngx_http_controlplane_login_t     *login;
    ngx_http_controlplane_loc_conf_t  *clcf;
    u_char                             secret[CP_SEALED_MAX];

    login = ctx->login;
    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    login->step = -1;

    if (login->found && login->sealed_len
        && cp_secret_open(clcf->secret_key, login->sealed, login->sealed_len,
                          secret, &len) == 0)
    {
        totp = json_object_get(ctx->body, "totp");

        login->step = cp_totp_check(secret, len, ngx_time(),
                                    json_string_value(totp),
                                    json_string_length(totp));

        ngx_explicit_memzero(secret, sizeof(secret));
    }

    if (!login->found || login->result != 1 || login->step < 0
        || login->step <= login->last_step || login->locked
        || login->disabled)
    {
        return ngx_http_controlplane_login_failed(r, ctx);
    }

    /* the session: a random token; the database keeps its hash */

    if (cp_random(login->token, CP_TOKEN_LEN) != 0
        || ngx_http_controlplane_token_hash(r, login->token, &ctx->values[2])
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN + 2);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->values[0] = (char *) login->id.data;
    ctx->values[1] = (char *) p;
    p = ngx_sprintf(p, "%L%Z", login->step);
    ctx->values[3] = (char *) p;
    ngx_sprintf(p, "%T%Z", clcf->session_ttl);
    ctx->values[4] = ngx_http_controlplane_addr(r);

    if (ctx->values[4] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the code is accepted once: totp_last_step only moves forward */

    return ngx_http_controlplane_query(r, ctx, "login_session",
        "WITH o AS (UPDATE operators SET totp_last_step = $2::bigint,"
        " failed_logins = 0, locked_until = NULL, last_login_at = now()"
        " WHERE id = $1::bigint AND totp_last_step < $2::bigint"
        " AND NOT disabled AND (locked_until IS NULL OR locked_until <= now())"
        " RETURNING id, username, role, tenant_id),"
        " s AS (INSERT INTO sessions (operator_id, token_hash, expires_at,"
        " client_addr) SELECT id, decode($3, 'hex'),"
        " now() + make_interval(secs => $4::int), $5::inet FROM o"
        " RETURNING id, expires_at),"
        " a AS (INSERT INTO audit_log (operator_id, operator_username,"
        " action, target_type, target_id, client_addr, details)"
        " SELECT o.id, o.username, 'auth.login', 'session', s.id::text,"
        " $5::inet, '{}'::jsonb FROM o, s RETURNING id)"
        " SELECT json_build_object('id', o.id, 'username', o.username,"
        " 'role', o.role, 'tenant_id', o.tenant_id)::text,"
        " extract(epoch FROM s.expires_at)::bigint FROM o, s, a",
        5, ngx_http_controlplane_login_done);
}


static ngx_int_t
ngx_http_controlplane_login_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                            *p;
    size_t                             len;
    ngx_buf_t                         *b;
    PGresult                          *res;
    ngx_http_controlplane_login_t     *login;
    ngx_http_controlplane_loc_conf_t  *clcf;
    u_char                             hex[2 * CP_TOKEN_LEN];

    login = ctx->login;
    res = ctx->op.res;

    if (PQntuples(res) != 1) {
        /* the code was used meanwhile (replay), or the account locked */
        return ngx_http_controlplane_login_failed(r, ctx);
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    ngx_hex_dump(hex, login->token, CP_TOKEN_LEN);
    ngx_explicit_memzero(login->token, CP_TOKEN_LEN);

    if (ngx_http_controlplane_set_cookie(r, hex, sizeof(hex),
                                         clcf->session_ttl)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"token\":\"\",\"token_type\":\"Bearer\","
                 "\"expires_at\":,\"operator\":}\n")
          + sizeof(hex) + PQgetlength(res, 0, 1) + PQgetlength(res, 0, 0);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->last, "{\"token\":\"", 10);
    p = ngx_cpymem(p, hex, sizeof(hex));
    p = ngx_sprintf(p, "\",\"token_type\":\"Bearer\",\"expires_at\":%s,"
                    "\"operator\":%s}\n", PQgetvalue(res, 0, 1),
                    PQgetvalue(res, 0, 0));
    b->last = p;

    ngx_explicit_memzero(hex, sizeof(hex));

    return ngx_nutripro_send_buf(r, NGX_HTTP_CREATED, b,
                                 &ngx_http_controlplane_json_type);
}


/* counted, locked past the bound, audited; the answer says nothing more */

static ngx_int_t
ngx_http_controlplane_login_failed(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char                            *p;
    const char                        *reason;
    ngx_http_controlplane_login_t     *login;
    ngx_http_controlplane_loc_conf_t  *clcf;

    login = ctx->login;
    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    reason = !login->found ? "unknown_user"
             : login->disabled ? "disabled"
             : login->locked ? "locked"
             : login->result != 1 ? "password"
             : login->step < 0 ? "totp"
             : "totp_reused";

    p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN + 2);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->values[0] = login->found ? (char *) login->id.data : NULL;
    ctx->values[1] = json_string_value(json_object_get(ctx->body,
                                                       "username"));
    ctx->values[2] = ngx_http_controlplane_addr(r);
    ctx->values[3] = reason;
    ctx->values[4] = (char *) p;
    p = ngx_sprintf(p, "%ui%Z", clcf->lockout_after);
    ctx->values[5] = (char *) p;
    ngx_sprintf(p, "%T%Z", clcf->lockout_time);

    /*
     * A failure while locked is audited only; after a lock the count
     * starts again.  The count is computed in SET, from the row as locked:
     * concurrent failures all count.
     */

    return ngx_http_controlplane_query(r, ctx, "login_failed",
        "WITH o AS (UPDATE operators SET"
        " failed_logins = CASE WHEN locked_until <= now() THEN 1"
        " ELSE failed_logins + 1 END,"
        " locked_until = CASE WHEN CASE WHEN locked_until <= now() THEN 1"
        " ELSE failed_logins + 1 END >= $5::int"
        " THEN now() + make_interval(secs => $6::int) END"
        " WHERE id = $1::bigint"
        " AND (locked_until IS NULL OR locked_until <= now()) RETURNING id)"
        " INSERT INTO audit_log (operator_id, operator_username, action,"
        " target_type, target_id, client_addr, details)"
        " VALUES ($1::bigint, left($2, 64), 'auth.login_failed', 'operator',"
        " $1::text, $3::inet, jsonb_build_object('reason', $4::text))"
        " RETURNING id",
        6, ngx_http_controlplane_login_refuse);
}


static ngx_int_t
ngx_http_controlplane_login_refuse(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    return ngx_nutripro_problem(r, NGX_HTTP_UNAUTHORIZED,
                                "invalid-credentials", "Unauthorized",
                                "the username, password or code is wrong, "
                                "or the account is locked", NULL);
}


/* DELETE /api/v1/session: this session ends */

ngx_int_t
ngx_http_controlplane_logout(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    u_char  *p, token[CP_TOKEN_LEN];

    if (ngx_http_controlplane_token(r, token) != NGX_OK
        || ngx_http_controlplane_token_hash(r, token, &ctx->values[3])
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(p, "%L%Z", ctx->operator.id);

    ctx->values[0] = (char *) p;
    ctx->values[1] = (char *) ctx->operator.username.data;
    ctx->values[2] = ngx_http_controlplane_addr(r);

    if (ctx->values[2] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_controlplane_query(r, ctx, "logout",
        "WITH s AS (UPDATE sessions SET revoked_at = now()"
        " WHERE token_hash = decode($4, 'hex') AND revoked_at IS NULL"
        " RETURNING id),"
        " a AS (INSERT INTO audit_log (operator_id, operator_username,"
        " action, target_type, target_id, client_addr, details)"
        " SELECT $1::bigint, $2, 'auth.logout', 'session', s.id::text,"
        " $3::inet, '{}'::jsonb FROM s RETURNING id)"
        " SELECT s.id FROM s, a",
        4, ngx_http_controlplane_logout_done);
}


static ngx_int_t
ngx_http_controlplane_logout_done(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    static u_char  ended[] = "{\"session\":\"ended\"}";

    if (ngx_http_controlplane_set_cookie(r, (u_char *) "", 0, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_controlplane_send_text(r, NGX_HTTP_OK, ended,
                                           sizeof(ended) - 1);
}


/* GET /api/v1/session: who am I */

ngx_int_t
ngx_http_controlplane_whoami(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx)
{
    json_t  *doc;

    doc = json_pack("{s:I, s:s, s:s, s:o}",
                    "id", (json_int_t) ctx->operator.id,
                    "username", ctx->operator.username.data,
                    "role", ctx->operator.role.data,
                    "tenant_id", ctx->operator.tenant_id.len
                                 ? json_integer(strtoll((char *)
                                       ctx->operator.tenant_id.data, NULL, 10))
                                 : json_null());

    return ngx_nutripro_send_json(r, NGX_HTTP_OK, doc,
                                  &ngx_http_controlplane_json_type);
}


static ngx_int_t
ngx_http_controlplane_set_cookie(ngx_http_request_t *r, u_char *value,
    size_t len, time_t max_age)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, sizeof(NGX_HTTP_CP_COOKIE "=; Path=/api/;"
                                    " Max-Age=; Secure; HttpOnly;"
                                    " SameSite=Strict")
                             + len + NGX_TIME_T_LEN);
    if (p == NULL) {
        h->hash = 0;
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;

    p = ngx_cpymem(p, NGX_HTTP_CP_COOKIE "=", sizeof(NGX_HTTP_CP_COOKIE));
    p = ngx_cpymem(p, value, len);
    p = ngx_sprintf(p, "; Path=/api/; Max-Age=%T; Secure; HttpOnly;"
                    " SameSite=Strict", max_age);

    h->value.len = p - h->value.data;

    return NGX_OK;
}


/*
 * The scrypt of a new password (operator creation), in the thread pool;
 * login->hash receives the encoded hash, then done() runs.
 */

ngx_int_t
ngx_http_controlplane_hash_password(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx, const char *password, size_t len,
    ngx_http_controlplane_handler_pt done)
{
    ngx_http_controlplane_login_t  *login;

    login = ngx_pcalloc(r->pool, sizeof(ngx_http_controlplane_login_t));
    if (login == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    login->hash = ngx_pnalloc(r->pool, CP_PASSWORD_HASH_MAX);
    if (login->hash == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    login->password = (char *) password;
    login->password_len = len;
    login->done = done;

    ctx->login = login;

    return ngx_http_controlplane_thread(r, ctx,
                                        ngx_http_controlplane_hash_thread);
}


const char *
ngx_http_controlplane_new_hash(ngx_http_controlplane_ctx_t *ctx)
{
    ngx_http_controlplane_login_t  *login = ctx->login;

    return login->result == 0 ? login->hash : NULL;
}


/* a task past a minute: the pool is stuck; the request still waits */

static void
ngx_http_controlplane_guard(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                  "controlplane: password hashing takes over a minute");
}


/* in a thread: no nginx calls but logging */

static void
ngx_http_controlplane_verify_thread(void *data, ngx_log_t *log)
{
    ngx_http_controlplane_login_t  *login = data;

    char  scratch[CP_PASSWORD_HASH_MAX];

    if (login->hash == NULL) {

        /* an unknown user costs the time of a known one */

        (void) cp_password_hash(login->password, login->password_len,
                                scratch, sizeof(scratch));
        login->result = 0;
        return;
    }

    login->result = cp_password_verify(login->password, login->password_len,
                                       login->hash);
}


static void
ngx_http_controlplane_hash_thread(void *data, ngx_log_t *log)
{
    ngx_http_controlplane_login_t  *login = data;

    login->result = cp_password_hash(login->password, login->password_len,
                                     login->hash, CP_PASSWORD_HASH_MAX);
}


/*
 * Runs handler in the thread pool.  The request is held (count) and
 * "blocked", so that it is not freed while the thread uses its memory.
 */

static ngx_int_t
ngx_http_controlplane_thread(ngx_http_request_t *r,
    ngx_http_controlplane_ctx_t *ctx,
    void (*handler)(void *data, ngx_log_t *log))
{
    ngx_thread_task_t                 *task;
    ngx_http_controlplane_login_t     *login;
    ngx_http_controlplane_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_controlplane_module);

    /*
     * Each hash takes its time and memory (scrypt: 32 MiB) in the pool:
     * past the bound, a client is told to come back rather than queued
     * behind everybody else's (unknown user names are hashed too)
     */

    if (ngx_http_controlplane_hashing >= clcf->hashing_max) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "controlplane: %ui password hashes in progress, "
                      "refusing another (controlplane_login_concurrency)",
                      ngx_http_controlplane_hashing);

        return ngx_http_controlplane_busy(r);
    }

    task = ngx_thread_task_alloc(r->pool, 0);
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->ctx = ctx->login;
    task->handler = handler;
    task->event.data = r;
    task->event.handler = ngx_http_controlplane_thread_done;

    if (ngx_thread_task_post(clcf->thread_pool, task) != NGX_OK) {
        return ngx_http_controlplane_busy(r);
    }

    ngx_http_controlplane_hashing++;

    r->main->blocked++;
    r->aio = 1;
    r->main->count++;

    /*
     * A worker leaving (reload, shutdown) waits for its timers, not for
     * its thread tasks: a timer that cannot be cancelled keeps it until
     * the task is done and the request answered.
     */

    login = ctx->login;
    login->guard.handler = ngx_http_controlplane_guard;
    login->guard.data = r;
    login->guard.log = r->connection->log;
    login->guard.cancelable = 0;
    ngx_add_timer(&login->guard, 60000);

    return NGX_DONE;
}


static void
ngx_http_controlplane_thread_done(ngx_event_t *ev)
{
    ngx_int_t                       rc;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_controlplane_ctx_t    *ctx;
    ngx_http_controlplane_login_t  *login;

    r = ev->data;
    c = r->connection;

    ngx_http_controlplane_hashing--;

    r->main->blocked--;
    r->aio = 0;

    ctx = ngx_http_get_module_ctx(r, ngx_controlplane_module);
    login = ctx->login;

    if (login->guard.timer_set) {
        ngx_del_timer(&login->guard);
    }

    if (c->error) {
        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    rc = login->done(r, ctx);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
