
/*
 * The named database block shared by both modules:
 *
 *     <module>_database NAME {
 *         server 127.0.0.1:5432;              # several: tried in turn
 *         server unix:/run/postgresql/.s.PGSQL.5432;
 *         dbname nutripro;
 *         user nutripro_controlplane;
 *         password_file /etc/nutripro/db.pass;
 *         ssl_mode verify-full;               # disable|require|verify-*
 *         ssl_root_cert /etc/nutripro/pg-ca.pem;
 *         ssl_cert ...; ssl_key ...; ssl_crl ...;
 *         max_connections 8;  queue 64;  queue_timeout 2s;
 *         connect_timeout 3s; query_timeout 10s; statement_timeout 5s;
 *         idle_timeout 60s;   retry_after 1;
 *     }
 *
 * Host names are resolved here, at configuration time, and handed to
 * libpq as "hostaddr", so libpq never resolves a name in a worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_pgasync.h"


static char *ngx_pgasync_db_directive(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static char *ngx_pgasync_db_server(ngx_conf_t *cf, ngx_pgasync_db_t *db,
    ngx_str_t *value);
static ngx_int_t ngx_pgasync_db_build(ngx_conf_t *cf, ngx_pgasync_db_t *db);


typedef struct {
    ngx_str_t     name;
    char         *keyword;     /* libpq keyword, or NULL for our own */
    ngx_uint_t    path;        /* a file name: made absolute */
} ngx_pgasync_param_t;


static ngx_pgasync_param_t  ngx_pgasync_params[] = {
    { ngx_string("dbname"), "dbname", 0 },
    { ngx_string("user"), "user", 0 },
    { ngx_string("password_file"), NULL, 1 },
    { ngx_string("ssl_mode"), "sslmode", 0 },
    { ngx_string("ssl_root_cert"), "sslrootcert", 1 },
    { ngx_string("ssl_cert"), "sslcert", 1 },
    { ngx_string("ssl_key"), "sslkey", 1 },
    { ngx_string("ssl_crl"), "sslcrl", 1 },
    { ngx_string("application_name"), "application_name", 0 },
    { ngx_null_string, NULL, 0 }
};


ngx_pgasync_db_t *
ngx_pgasync_db_get(ngx_conf_t *cf, ngx_array_t *dbs, ngx_str_t *name)
{
    ngx_uint_t          i;
    ngx_pgasync_db_t  **dbp, *db;

    dbp = dbs->elts;

    for (i = 0; i < dbs->nelts; i++) {
        if (dbp[i]->name.len == name->len
            && ngx_strncmp(dbp[i]->name.data, name->data, name->len) == 0)
        {
            return dbp[i];
        }
    }

    db = ngx_pcalloc(cf->pool, sizeof(ngx_pgasync_db_t));
    if (db == NULL) {
        return NULL;
    }

    dbp = ngx_array_push(dbs);
    if (dbp == NULL) {
        return NULL;
    }

    *dbp = db;

    db->name = *name;
    db->file = cf->conf_file->file.name.data;
    db->line = cf->conf_file->line;

    if (ngx_array_init(&db->servers, cf->pool, 2,
                       sizeof(ngx_pgasync_server_t))
        != NGX_OK
        || ngx_array_init(&db->params, cf->pool, 8, sizeof(ngx_keyval_t))
           != NGX_OK)
    {
        return NULL;
    }

    db->max_conns = NGX_CONF_UNSET_UINT;
    db->queue_max = NGX_CONF_UNSET_UINT;
    db->queue_timeout = NGX_CONF_UNSET_MSEC;
    db->connect_timeout = NGX_CONF_UNSET_MSEC;
    db->query_timeout = NGX_CONF_UNSET_MSEC;
    db->idle_timeout = NGX_CONF_UNSET_MSEC;
    db->statement_timeout = NGX_CONF_UNSET_MSEC;
    db->listen_check = NGX_CONF_UNSET_MSEC;
    db->retry_after = NGX_CONF_UNSET;

    return db;
}


char *
ngx_pgasync_db_block(ngx_conf_t *cf, ngx_array_t *dbs)
{
    char              *rv;
    ngx_str_t         *value;
    ngx_conf_t         save;
    ngx_pgasync_db_t  *db;

    value = cf->args->elts;

    db = ngx_pgasync_db_get(cf, dbs, &value[1]);
    if (db == NULL) {
        return NGX_CONF_ERROR;
    }

    if (db->defined) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate database \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    db->defined = 1;

    save = *cf;
    cf->handler = ngx_pgasync_db_directive;
    cf->handler_conf = (char *) db;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (db->servers.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"server\" in database \"%V\"", &db->name);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(db->max_conns, 8);
    ngx_conf_init_uint_value(db->queue_max, 128);
    ngx_conf_init_msec_value(db->queue_timeout, 2000);
    ngx_conf_init_msec_value(db->connect_timeout, 3000);
    ngx_conf_init_msec_value(db->query_timeout, 10000);
    ngx_conf_init_msec_value(db->idle_timeout, 60000);
    ngx_conf_init_msec_value(db->statement_timeout, 5000);
    ngx_conf_init_msec_value(db->listen_check, 10000);
    ngx_conf_init_value(db->retry_after, 1);

    if (db->max_conns == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"max_connections\" must be at least 1 in "
                           "database \"%V\"", &db->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_pgasync_db_build(cf, db) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* every referenced database must have been defined */

char *
ngx_pgasync_db_check(ngx_conf_t *cf, ngx_array_t *dbs)
{
    ngx_uint_t          i;
    ngx_pgasync_db_t  **dbp;

    dbp = dbs->elts;

    for (i = 0; i < dbs->nelts; i++) {
        if (!dbp[i]->defined) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown database \"%V\" in %s:%ui",
                          &dbp[i]->name, dbp[i]->file, dbp[i]->line);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_pgasync_db_directive(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_pgasync_db_t  *db = conf;

    ngx_int_t             n;
    ngx_str_t            *value, *name;
    ngx_msec_t           *msp, ms;
    ngx_uint_t           *up;
    ngx_keyval_t         *kv;
    ngx_pgasync_param_t  *p;

    value = cf->args->elts;
    name = &value[0];

    if (cf->args->nelts != 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of arguments in \"%V\"", name);
        return NGX_CONF_ERROR;
    }

    if (ngx_strcmp(name->data, "server") == 0) {
        return ngx_pgasync_db_server(cf, db, &value[1]);
    }

    up = NULL;
    msp = NULL;

    if (ngx_strcmp(name->data, "max_connections") == 0) {
        up = &db->max_conns;

    } else if (ngx_strcmp(name->data, "queue") == 0) {
        up = &db->queue_max;

    } else if (ngx_strcmp(name->data, "queue_timeout") == 0) {
        msp = &db->queue_timeout;

    } else if (ngx_strcmp(name->data, "connect_timeout") == 0) {
        msp = &db->connect_timeout;

    } else if (ngx_strcmp(name->data, "query_timeout") == 0) {
        msp = &db->query_timeout;

    } else if (ngx_strcmp(name->data, "idle_timeout") == 0) {
        msp = &db->idle_timeout;

    } else if (ngx_strcmp(name->data, "statement_timeout") == 0) {
        msp = &db->statement_timeout;

    } else if (ngx_strcmp(name->data, "listen_check") == 0) {
        msp = &db->listen_check;

    } else if (ngx_strcmp(name->data, "retry_after") == 0) {
        if (db->retry_after != NGX_CONF_UNSET) {
            return "is duplicate";
        }

        db->retry_after = ngx_parse_time(&value[1], 1);
        if (db->retry_after == (time_t) NGX_ERROR || db->retry_after == 0) {
            return "has an invalid value";
        }

        return NGX_CONF_OK;
    }

    if (up) {
        if (*up != NGX_CONF_UNSET_UINT) {
            return "is duplicate";
        }

        n = ngx_atoi(value[1].data, value[1].len);
        if (n == NGX_ERROR || n > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\"",
                               &value[1], name);
            return NGX_CONF_ERROR;
        }

        *up = n;
        return NGX_CONF_OK;
    }

    if (msp) {
        if (*msp != NGX_CONF_UNSET_MSEC) {
            return "is duplicate";
        }

        ms = ngx_parse_time(&value[1], 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\"",
                               &value[1], name);
            return NGX_CONF_ERROR;
        }

        *msp = ms;
        return NGX_CONF_OK;
    }

    for (p = ngx_pgasync_params; p->name.len; p++) {
        if (p->name.len == name->len
            && ngx_strncmp(p->name.data, name->data, name->len) == 0)
        {
            break;
        }
    }

    if (p->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown directive \"%V\" in database \"%V\"",
                           name, &db->name);
        return NGX_CONF_ERROR;
    }

    kv = db->params.elts;

    for (n = 0; n < (ngx_int_t) db->params.nelts; n++) {
        if (kv[n].key.len == name->len
            && ngx_strncmp(kv[n].key.data, name->data, name->len) == 0)
        {
            return "is duplicate";
        }
    }

    if (p->path && ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_strcmp(name->data, "ssl_mode") == 0
        && ngx_strcmp(value[1].data, "disable") != 0
        && ngx_strcmp(value[1].data, "require") != 0
        && ngx_strcmp(value[1].data, "verify-ca") != 0
        && ngx_strcmp(value[1].data, "verify-full") != 0)
    {
        /* "allow" and "prefer" reconnect on a new socket: not supported */

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ssl_mode\" must be disable, require, "
                           "verify-ca or verify-full");
        return NGX_CONF_ERROR;
    }

    kv = ngx_array_push(&db->params);
    if (kv == NULL) {
        return NGX_CONF_ERROR;
    }

    kv->key = *name;
    kv->value = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_pgasync_db_server(ngx_conf_t *cf, ngx_pgasync_db_t *db, ngx_str_t *value)
{
    u_char                *p, *last;
    size_t                 len;
    ngx_url_t              u;
    ngx_uint_t             i;
    ngx_pgasync_server_t  *s;
    u_char                 text[NGX_SOCKADDR_STRLEN];

    if (ngx_strncmp(value->data, "unix:", 5) == 0) {

        /* libpq wants the directory and the port of ".s.PGSQL.<port>" */

        p = value->data + 5;
        last = value->data + value->len;

        len = sizeof("/.s.PGSQL.") - 1;

        for (i = value->len - 5; i > len; i--) {
            if (ngx_strncmp(p + i - len, "/.s.PGSQL.", len) == 0) {
                break;
            }
        }

        if (i <= len || p + i == last || *p != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"server %V\": a unix socket must be an "
                               "absolute path ending in \"/.s.PGSQL.<port>\"",
                               value);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(&db->servers);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        s->name = *value;
        s->host = ngx_pnalloc(cf->pool, i - len + 1);
        s->port = ngx_pnalloc(cf->pool, last - (p + i) + 1);
        if (s->host == NULL || s->port == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn((u_char *) s->host, p, i - len + 1);
        ngx_cpystrn((u_char *) s->port, p + i, last - (p + i) + 1);
        s->hostaddr = NULL;

        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = 5432;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"server %V\"", u.err, value);
        }

        return NGX_CONF_ERROR;
    }

    /* a name with several addresses becomes several servers */

    for (i = 0; i < u.naddrs; i++) {
        s = ngx_array_push(&db->servers);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        s->name = u.addrs[i].name;

        len = ngx_sock_ntop(u.addrs[i].sockaddr, u.addrs[i].socklen,
                            text, NGX_SOCKADDR_STRLEN, 0);

        s->hostaddr = ngx_pnalloc(cf->pool, len + 1);
        s->host = ngx_pnalloc(cf->pool, u.host.len + 1);
        s->port = ngx_pnalloc(cf->pool, NGX_INT_T_LEN + 1);
        if (s->hostaddr == NULL || s->host == NULL || s->port == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn((u_char *) s->hostaddr, text, len + 1);
        ngx_cpystrn((u_char *) s->host, u.host.data, u.host.len + 1);
        ngx_sprintf((u_char *) s->port, "%d%Z", (int) u.port);
    }

    return NGX_CONF_OK;
}


/* the libpq keyword/value arrays, one set per server */

static ngx_int_t
ngx_pgasync_db_build(ngx_conf_t *cf, ngx_pgasync_db_t *db)
{
    ssize_t                n;
    ngx_fd_t               fd;
    ngx_uint_t             i, j, k, nkw;
    ngx_str_t              password;
    ngx_keyval_t          *kv;
    const char           **kw, **vals;
    ngx_pgasync_server_t  *s;
    ngx_pgasync_param_t   *pp;
    char                  *options, *ctimeout;

    ngx_str_null(&password);

    kv = db->params.elts;

    for (i = 0; i < db->params.nelts; i++) {
        if (ngx_strcmp(kv[i].key.data, "password_file") != 0) {
            continue;
        }

        fd = ngx_open_file(kv[i].value.data, NGX_FILE_RDONLY,
                           NGX_FILE_OPEN, 0);
        if (fd == NGX_INVALID_FILE) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               ngx_open_file_n " \"%V\" failed",
                               &kv[i].value);
            return NGX_ERROR;
        }

        password.data = ngx_pnalloc(cf->pool, 1024);
        if (password.data == NULL) {
            ngx_close_file(fd);
            return NGX_ERROR;
        }

        n = ngx_read_fd(fd, password.data, 1023);
        ngx_close_file(fd);

        if (n <= 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "cannot read password from \"%V\"",
                               &kv[i].value);
            return NGX_ERROR;
        }

        while (n && (password.data[n - 1] == '\n'
                     || password.data[n - 1] == '\r'))
        {
            n--;
        }

        password.data[n] = '\0';
        password.len = n;
    }

    options = ngx_pnalloc(cf->pool, 128);
    if (options == NULL) {
        return NGX_ERROR;
    }

    /*
     * client_connection_check_interval lets the server notice a closed
     * connection, which is how a cancelled query is stopped.
     */

    ngx_sprintf((u_char *) options,
                "-c statement_timeout=%M -c client_connection_check_interval"
                "=1000%Z", db->statement_timeout);

    /* libpq honours it only in blocking connects (a worker's last flush) */

    ctimeout = ngx_pnalloc(cf->pool, NGX_INT_T_LEN + 1);
    if (ctimeout == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf((u_char *) ctimeout, "%M%Z",
                ngx_max((db->connect_timeout + 999) / 1000, 2));

    nkw = 11 + db->params.nelts;

    db->keywords = ngx_pcalloc(cf->pool, db->servers.nelts * sizeof(char **));
    db->values = ngx_pcalloc(cf->pool, db->servers.nelts * sizeof(char **));
    if (db->keywords == NULL || db->values == NULL) {
        return NGX_ERROR;
    }

    s = db->servers.elts;

    for (i = 0; i < db->servers.nelts; i++) {
        kw = ngx_pcalloc(cf->pool, (nkw + 1) * sizeof(char *));
        vals = ngx_pcalloc(cf->pool, (nkw + 1) * sizeof(char *));
        if (kw == NULL || vals == NULL) {
            return NGX_ERROR;
        }

        k = 0;

        kw[k] = "host"; vals[k++] = s[i].host;
        if (s[i].hostaddr) {
            kw[k] = "hostaddr"; vals[k++] = s[i].hostaddr;
        }
        kw[k] = "port"; vals[k++] = s[i].port;
        kw[k] = "options"; vals[k++] = options;
        kw[k] = "client_encoding"; vals[k++] = "UTF8";
        kw[k] = "gssencmode"; vals[k++] = "disable";
        kw[k] = "fallback_application_name"; vals[k++] = "nutripro";
        kw[k] = "connect_timeout"; vals[k++] = ctimeout;

        if (password.len) {
            kw[k] = "password"; vals[k++] = (char *) password.data;
        }

        for (j = 0; j < db->params.nelts; j++) {
            for (pp = ngx_pgasync_params; pp->name.len; pp++) {
                if (pp->keyword
                    && ngx_strcmp(pp->name.data, kv[j].key.data) == 0)
                {
                    kw[k] = pp->keyword;
                    vals[k++] = (char *) kv[j].value.data;
                    break;
                }
            }
        }

        /* libpq's default sslmode "prefer" may reconnect: be explicit */

        for (j = 0; j < k; j++) {
            if (ngx_strcmp(kw[j], "sslmode") == 0) {
                break;
            }
        }

        if (j == k) {
            kw[k] = "sslmode"; vals[k++] = "disable";
        }

        db->keywords[i] = kw;
        db->values[i] = vals;
    }

    return NGX_OK;
}
