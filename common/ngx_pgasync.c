
/*
 * Asynchronous PostgreSQL client: connections, queries, the per-worker
 * pool and LISTEN.  libpq owns the socket; nginx only watches it through
 * an ngx_connection_t built around PQsocket().  Every libpq call here is
 * non-blocking (PQsetnonblocking, PQconnectPoll, PQsendQueryParams,
 * PQflush, PQconsumeInput, PQisBusy).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_pgasync.h"


#define NGX_PGASYNC_FREE         0
#define NGX_PGASYNC_CONNECTING   1
#define NGX_PGASYNC_IDLE         2
#define NGX_PGASYNC_QUERY        3
#define NGX_PGASYNC_LISTEN_SETUP 4
#define NGX_PGASYNC_LISTENING    5


static ngx_int_t ngx_pgasync_connect(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_event_handler(ngx_event_t *ev);
static void ngx_pgasync_connect_poll(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_connected(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_send(ngx_pgasync_conn_t *conn, ngx_pgasync_op_t *op);
static ngx_int_t ngx_pgasync_send_statement(ngx_pgasync_conn_t *conn,
    ngx_pgasync_op_t *op);
static ngx_int_t ngx_pgasync_flush(ngx_pgasync_conn_t *conn);
static ngx_int_t ngx_pgasync_consume(ngx_pgasync_conn_t *conn);
static ngx_uint_t ngx_pgasync_pending(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_read(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_idle_read(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_fail(ngx_pgasync_conn_t *conn,
    ngx_pgasync_status_e status);
static void ngx_pgasync_release(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_close(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_free_slot(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_dispatch(ngx_pgasync_db_t *db);
static void ngx_pgasync_finish(ngx_pgasync_op_t *op,
    ngx_pgasync_status_e status);
static void ngx_pgasync_post(ngx_pgasync_op_t *op,
    ngx_pgasync_status_e status);
static void ngx_pgasync_posted_handler(ngx_event_t *ev);
static void ngx_pgasync_wait_timeout(ngx_event_t *ev);
static void ngx_pgasync_listen_read(ngx_pgasync_conn_t *conn);
static void ngx_pgasync_listen_lost(ngx_pgasync_listen_t *ls);
static void ngx_pgasync_listen_timer(ngx_event_t *ev);


static void ngx_pgasync_notice(void *arg, const char *message);


static const char  *ngx_pgasync_status_names[] = {
    "ok",
    "sql",
    "busy",
    "wait_timeout",
    "connect",
    "timeout",
    "connection",
    "internal"
};


const char *
ngx_pgasync_status_text(ngx_pgasync_status_e status)
{
    return ngx_pgasync_status_names[status];
}


/*
 * Errors a client may retry later (503 + Retry-After) as opposed to
 * errors in the statement itself.  SQLSTATE class 57 (operator
 * intervention, e.g. statement_timeout, shutdown) and 08 (connection)
 * are temporary; 53 (insufficient resources) too.
 */

ngx_uint_t
ngx_pgasync_temporary(ngx_pgasync_op_t *op)
{
    switch (op->status) {

    case NGX_PGASYNC_OK:
    case NGX_PGASYNC_ERR_INTERNAL:
        return 0;

    case NGX_PGASYNC_ERR_SQL:
        return ngx_strncmp(op->sqlstate, "57", 2) == 0
               || ngx_strncmp(op->sqlstate, "08", 2) == 0
               || ngx_strncmp(op->sqlstate, "53", 2) == 0
               || ngx_strncmp(op->sqlstate, "40", 2) == 0;

    default:
        return 1;
    }
}


ngx_int_t
ngx_pgasync_init_worker(ngx_pgasync_db_t *db, ngx_cycle_t *cycle)
{
    ngx_uint_t  i;

    db->log = cycle->log;

    db->conns = ngx_pcalloc(cycle->pool,
                            db->max_conns * sizeof(ngx_pgasync_conn_t));
    if (db->conns == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&db->free);
    ngx_queue_init(&db->idle);
    ngx_queue_init(&db->waiting);
    db->nwaiting = 0;
    db->next_server = 0;

    for (i = 0; i < db->max_conns; i++) {
        db->conns[i].db = db;
        ngx_queue_insert_tail(&db->free, &db->conns[i].queue);
    }

    return NGX_OK;
}


void
ngx_pgasync_exit_worker(ngx_pgasync_db_t *db)
{
    ngx_uint_t  i;

    if (db->conns == NULL) {
        return;
    }

    for (i = 0; i < db->max_conns; i++) {
        ngx_pgasync_close(&db->conns[i]);
    }
}


ngx_int_t
ngx_pgasync_init_workers(ngx_array_t *dbs, ngx_cycle_t *cycle)
{
    ngx_uint_t          i;
    ngx_pgasync_db_t  **dbp;

    dbp = dbs->elts;

    for (i = 0; i < dbs->nelts; i++) {
        if (ngx_pgasync_init_worker(dbp[i], cycle) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void
ngx_pgasync_exit_workers(ngx_array_t *dbs)
{
    ngx_uint_t          i;
    ngx_pgasync_db_t  **dbp;

    dbp = dbs->elts;

    for (i = 0; i < dbs->nelts; i++) {
        ngx_pgasync_exit_worker(dbp[i]);
    }
}


ngx_int_t
ngx_pgasync_query(ngx_pgasync_db_t *db, ngx_pgasync_op_t *op)
{
    ngx_queue_t         *q;
    ngx_pgasync_conn_t  *conn;

    op->db = db;
    op->conn = NULL;
    op->status = NGX_PGASYNC_OK;
    op->res = NULL;
    op->sqlstate[0] = '\0';
    op->wait_time = 0;
    op->query_time = 0;
    op->start = ngx_current_msec;
    op->queued = 0;
    op->retried = 0;
    op->active = 1;

    ngx_memzero(&op->timer, sizeof(ngx_event_t));
    op->timer.data = op;
    op->timer.log = op->log;

    if (!ngx_queue_empty(&db->idle)) {

        /* the most recently used connection is the likeliest alive */

        q = ngx_queue_last(&db->idle);
        ngx_queue_remove(q);
        conn = ngx_queue_data(q, ngx_pgasync_conn_t, queue);

        if (conn->c->read->timer_set) {
            ngx_del_timer(conn->c->read);
        }

        ngx_pgasync_send(conn, op);
        return NGX_AGAIN;
    }

    if (!ngx_queue_empty(&db->free)) {
        q = ngx_queue_head(&db->free);
        ngx_queue_remove(q);
        conn = ngx_queue_data(q, ngx_pgasync_conn_t, queue);

        conn->op = op;
        op->conn = conn;

        if (ngx_pgasync_connect(conn) != NGX_OK) {
            conn->op = NULL;
            op->conn = NULL;
            ngx_queue_insert_head(&db->free, &conn->queue);
            ngx_pgasync_post(op, NGX_PGASYNC_ERR_CONNECT);
        }

        return NGX_AGAIN;
    }

    if (db->nwaiting >= db->queue_max) {
        op->active = 0;
        op->status = NGX_PGASYNC_ERR_BUSY;

        ngx_log_error(NGX_LOG_WARN, op->log, 0,
                      "pgasync \"%V\": wait queue full (%ui), "
                      "refusing \"%s\"", &db->name, db->queue_max, op->name);
        return NGX_BUSY;
    }

    ngx_queue_insert_tail(&db->waiting, &op->queue);
    db->nwaiting++;
    op->queued = 1;

    op->timer.handler = ngx_pgasync_wait_timeout;
    ngx_add_timer(&op->timer, db->queue_timeout);

    return NGX_AGAIN;
}


void
ngx_pgasync_cancel(ngx_pgasync_op_t *op)
{
    ngx_pgasync_db_t    *db;
    ngx_pgasync_conn_t  *conn;

    if (!op->active) {
        return;
    }

    op->active = 0;
    db = op->db;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->timer.posted) {
        ngx_delete_posted_event(&op->timer);
    }

    if (op->queued) {
        ngx_queue_remove(&op->queue);
        db->nwaiting--;
        op->queued = 0;
        return;
    }

    conn = op->conn;

    if (conn == NULL) {
        return;
    }

    /*
     * The query is on the wire.  The connection is closed: the server
     * notices within client_connection_check_interval and cancels the
     * statement (PQcancel() would block on a new connection).
     */

    ngx_log_error(NGX_LOG_INFO, op->log, 0,
                  "pgasync \"%V\": \"%s\" cancelled, closing its connection",
                  &db->name, op->name);

    conn->op = NULL;
    op->conn = NULL;

    /* a result may have come before the rest of the answer */

    if (op->res) {
        PQclear(op->res);
        op->res = NULL;
    }

    ngx_pgasync_free_slot(conn);
}


static ngx_int_t
ngx_pgasync_connect(ngx_pgasync_conn_t *conn)
{
    ngx_int_t             rc;
    ngx_uint_t            n;
    ngx_socket_t          fd;
    ngx_event_t          *rev, *wev;
    ngx_connection_t     *c;
    ngx_pgasync_db_t     *db;
    ngx_pgasync_server_t *server;

    db = conn->db;

    n = db->next_server % db->servers.nelts;
    server = db->servers.elts;
    server = &server[n];
    conn->server = n;
    conn->reused = 0;

    conn->pg = PQconnectStartParams(db->keywords[n], db->values[n], 0);

    if (conn->pg == NULL) {
        ngx_log_error(NGX_LOG_ERR, db->log, 0,
                      "pgasync \"%V\": out of memory", &db->name);
        return NGX_ERROR;
    }

    PQsetNoticeProcessor(conn->pg, ngx_pgasync_notice, db);

    if (PQstatus(conn->pg) == CONNECTION_BAD
        || PQsetnonblocking(conn->pg, 1) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, db->log, 0,
                      "pgasync \"%V\": connecting to %V failed: %s",
                      &db->name, &server->name, PQerrorMessage(conn->pg));
        goto failed;
    }

    fd = PQsocket(conn->pg);

    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, db->log, 0,
                      "pgasync \"%V\": no socket for %V",
                      &db->name, &server->name);
        goto failed;
    }

    c = ngx_get_connection(fd, db->log);
    if (c == NULL) {
        goto failed;
    }

    conn->c = c;
    c->data = conn;
    c->log->action = "connecting to PostgreSQL";

    rev = c->read;
    wev = c->write;

    rev->handler = ngx_pgasync_event_handler;
    wev->handler = ngx_pgasync_event_handler;
    rev->log = c->log;
    wev->log = c->log;

    if (ngx_add_conn) {
        rc = ngx_add_conn(c);

    } else {
        rc = ngx_handle_read_event(rev, 0);
        if (rc == NGX_OK) {
            rc = ngx_handle_write_event(wev, 0);
        }
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    conn->state = NGX_PGASYNC_CONNECTING;
    rev->cancelable = conn->listen ? 1 : 0;
    ngx_add_timer(rev, db->connect_timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, db->log, 0,
                   "pgasync \"%V\": connecting, fd:%d", &db->name, fd);

    return NGX_OK;

failed:

    ngx_pgasync_close(conn);
    db->next_server++;

    return NGX_ERROR;
}


/* libpq prints notices to stderr by default; they go to the log */

static void
ngx_pgasync_notice(void *arg, const char *message)
{
    ngx_pgasync_db_t  *db = arg;

    size_t  len;

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == ' ')) {
        len--;
    }

    ngx_log_error(NGX_LOG_INFO, db->log, 0, "pgasync \"%V\": server: %*s",
                  &db->name, len, message);
}


static void
ngx_pgasync_event_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_pgasync_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (ev->timedout) {
        ev->timedout = 0;

        switch (conn->state) {

        case NGX_PGASYNC_CONNECTING:
            ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                          "pgasync \"%V\": connect timed out",
                          &conn->db->name);
            conn->db->next_server++;
            ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECT);
            return;

        case NGX_PGASYNC_QUERY:
            ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                          "pgasync \"%V\": \"%s\" timed out",
                          &conn->db->name,
                          conn->op ? conn->op->name : "?");
            ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_TIMEOUT);
            return;

        case NGX_PGASYNC_LISTEN_SETUP:
            ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                          "pgasync \"%V\": LISTEN %s timed out",
                          &conn->db->name, conn->listen->channel);
            ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_TIMEOUT);
            return;

        default: /* idle */
            ngx_log_debug1(NGX_LOG_DEBUG_EVENT, c->log, 0,
                           "pgasync \"%V\": idle connection closed",
                           &conn->db->name);
            ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECTION);
            return;
        }
    }

    switch (conn->state) {

    case NGX_PGASYNC_CONNECTING:
        ngx_pgasync_connect_poll(conn);
        return;

    case NGX_PGASYNC_QUERY:
    case NGX_PGASYNC_LISTEN_SETUP:
        if (ev->write) {
            if (ngx_pgasync_flush(conn) == NGX_ERROR) {
                ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECTION);
            }
            return;
        }

        if (conn->state == NGX_PGASYNC_QUERY) {
            ngx_pgasync_read(conn);

        } else {
            ngx_pgasync_listen_read(conn);
        }

        return;

    case NGX_PGASYNC_LISTENING:
        if (!ev->write) {
            ngx_pgasync_listen_read(conn);
        }
        return;

    case NGX_PGASYNC_IDLE:
        if (!ev->write) {
            ngx_pgasync_idle_read(conn);
        }
        return;

    default:
        return;
    }
}


static void
ngx_pgasync_connect_poll(ngx_pgasync_conn_t *conn)
{
    ngx_uint_t                  reads;
    ngx_connection_t           *c;
    PostgresPollingStatusType   st;

    c = conn->c;
    reads = 0;

    for ( ;; ) {
        st = PQconnectPoll(conn->pg);

        /*
         * libpq may replace the socket (another address, a retry without
         * SSL); the configuration rules those cases out, so a change here
         * is a failure rather than a socket we silently stop watching.
         */

        if (st != PGRES_POLLING_FAILED && PQsocket(conn->pg) != c->fd) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "pgasync \"%V\": libpq replaced its socket "
                          "while connecting", &conn->db->name);
            st = PGRES_POLLING_FAILED;
        }

        switch (st) {

        case PGRES_POLLING_OK:
            ngx_pgasync_connected(conn);
            return;

        case PGRES_POLLING_FAILED:
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "pgasync \"%V\": connect failed: %s",
                          &conn->db->name, PQerrorMessage(conn->pg));
            conn->db->next_server++;
            ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECT);
            return;

        case PGRES_POLLING_WRITING:

            /*
             * libpq asks to wait for writability after the TCP connect
             * completed, although it is writable already: with
             * edge-triggered events no new event would come.
             */

            if (c->write->ready) {
                c->write->ready = 0;
                continue;
            }

            return;

        default: /* PGRES_POLLING_READING */

            /*
             * PQconnectPoll() reads once, and over TLS one record: another
             * one already here would get no new edge-triggered event.
             */

            if (ngx_pgasync_pending(conn) && ++reads < 64) {
                continue;
            }

            return;
        }
    }
}


static void
ngx_pgasync_connected(ngx_pgasync_conn_t *conn)
{
    ngx_pgasync_op_t  *op;

    if (conn->c->read->timer_set) {
        ngx_del_timer(conn->c->read);
    }

    conn->c->log->action = "talking to PostgreSQL";

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, conn->c->log, 0,
                   "pgasync \"%V\": connected", &conn->db->name);

    if (conn->listen) {
        conn->state = NGX_PGASYNC_LISTEN_SETUP;

        /* channel is a configured identifier, checked at startup */

        if (!PQsendQuery(conn->pg, conn->listen->sql)
            || ngx_pgasync_flush(conn) == NGX_ERROR)
        {
            ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECTION);
            return;
        }

        /* a server that took the connection but does not answer */

        ngx_add_timer(conn->c->read, conn->db->query_timeout);

        return;
    }

    op = conn->op;
    conn->state = NGX_PGASYNC_IDLE;

    if (op == NULL) {
        ngx_pgasync_release(conn);
        return;
    }

    ngx_pgasync_send(conn, op);
}


static void
ngx_pgasync_send(ngx_pgasync_conn_t *conn, ngx_pgasync_op_t *op)
{
    ngx_pgasync_db_t  *db;

    db = conn->db;

    conn->op = op;
    op->conn = conn;

    op->wait_time = ngx_current_msec - op->start;
    op->start = ngx_current_msec;

    conn->state = NGX_PGASYNC_QUERY;

    if (ngx_pgasync_send_statement(conn, op) != NGX_OK
        || ngx_pgasync_flush(conn) == NGX_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, conn->c->log, 0,
                      "pgasync \"%V\": sending \"%s\" failed: %s",
                      &db->name, op->name, PQerrorMessage(conn->pg));

        if (conn->reused && !op->retried) {

            /* a stale keepalive connection: retry once on a new one */

            op->retried = 1;
            conn->op = NULL;
            op->conn = NULL;

            ngx_pgasync_close(conn);

            conn->op = op;
            op->conn = conn;

            if (ngx_pgasync_connect(conn) == NGX_OK) {
                return;
            }

            conn->op = NULL;
            op->conn = NULL;
            ngx_pgasync_post(op, NGX_PGASYNC_ERR_CONNECT);
            ngx_pgasync_free_slot(conn);
            return;
        }

        conn->op = NULL;
        op->conn = NULL;
        ngx_pgasync_post(op, NGX_PGASYNC_ERR_CONNECTION);
        ngx_pgasync_free_slot(conn);
        return;
    }

    conn->c->read->cancelable = 0;
    ngx_add_timer(conn->c->read, db->query_timeout);
}


/*
 * Statements are prepared once per connection and executed by name after:
 * parsing and planning a statement costs the server more than running a
 * short one.  An operation's sql must stay at the same address while the
 * worker lives (a literal, or configuration).  The first use on a
 * connection takes a round trip more; when the cache is full, the
 * statement is sent unnamed.
 */

static ngx_int_t
ngx_pgasync_send_statement(ngx_pgasync_conn_t *conn, ngx_pgasync_op_t *op)
{
    ngx_uint_t  i;
    char        name[NGX_INT_T_LEN + 2];

    for (i = 0; i < conn->nprepared; i++) {
        if (conn->prepared[i] == op->sql) {
            ngx_sprintf((u_char *) name, "p%ui%Z", i);

            return PQsendQueryPrepared(conn->pg, name, op->nparams,
                                       op->values, op->lengths, NULL, 0)
                   ? NGX_OK : NGX_ERROR;
        }
    }

    if (conn->nprepared == NGX_PGASYNC_PREPARED) {
        return PQsendQueryParams(conn->pg, op->sql, op->nparams, NULL,
                                 op->values, op->lengths, NULL, 0)
               ? NGX_OK : NGX_ERROR;
    }

    ngx_sprintf((u_char *) name, "p%ui%Z", conn->nprepared);

    conn->preparing = 1;

    return PQsendPrepare(conn->pg, name, op->sql, op->nparams, NULL)
           ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_pgasync_flush(ngx_pgasync_conn_t *conn)
{
    int  rc;

    rc = PQflush(conn->pg);

    if (rc == -1) {
        return NGX_ERROR;
    }

    if (rc == 1) {
        /* the rest goes out on the next write event */
        return NGX_AGAIN;
    }

    return NGX_OK;
}


/*
 * Reads everything the socket holds: PQconsumeInput() reads one buffer,
 * and with edge-triggered events what it leaves would wait for data that
 * may never come.
 */

static ngx_int_t
ngx_pgasync_consume(ngx_pgasync_conn_t *conn)
{
    for ( ;; ) {
        if (!PQconsumeInput(conn->pg)) {
            return NGX_ERROR;
        }

        if (!ngx_pgasync_pending(conn)) {
            return NGX_OK;
        }
    }
}


/* bytes libpq has not read yet: in OpenSSL's buffer, or in the socket's */

static ngx_uint_t
ngx_pgasync_pending(ngx_pgasync_conn_t *conn)
{
    int    n;
#if (NGX_SSL)
    SSL   *ssl;

    ssl = PQsslStruct(conn->pg, "OpenSSL");

    if (ssl && SSL_pending(ssl) > 0) {
        return 1;
    }
#endif

    return ioctl(conn->c->fd, FIONREAD, &n) == 0 && n > 0;
}


/* collects the results of a query; keeps the first error, else the last */

static void
ngx_pgasync_read(ngx_pgasync_conn_t *conn)
{
    char               *state;
    PGresult           *res;
    PGnotify           *n;
    ngx_pgasync_op_t   *op;
    ExecStatusType      st;

    op = conn->op;

    if (ngx_pgasync_consume(conn) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, conn->c->log, 0,
                      "pgasync \"%V\": connection lost during \"%s\": %s",
                      &conn->db->name, op ? op->name : "?",
                      PQerrorMessage(conn->pg));
        ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECTION);
        return;
    }

    while ((n = PQnotifies(conn->pg)) != NULL) {
        PQfreemem(n);
    }

    for ( ;; ) {
        if (PQisBusy(conn->pg)) {
            if (conn->c->read->pending_eof) {
                ngx_log_error(NGX_LOG_ERR, conn->c->log, 0,
                              "pgasync \"%V\": server closed the connection "
                              "during \"%s\"", &conn->db->name,
                              op ? op->name : "?");
                ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECTION);
            }

            return;
        }

        res = PQgetResult(conn->pg);

        if (res == NULL) {
            break;
        }

        switch (PQresultStatus(res)) {

        case PGRES_COPY_IN:
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:

            /* would give a new result for ever; nothing here does COPY */

            PQclear(res);
            ngx_log_error(NGX_LOG_ERR, conn->c->log, 0,
                          "pgasync \"%V\": \"%s\" started a COPY, "
                          "which is not supported", &conn->db->name,
                          op ? op->name : "?");

            if (op) {
                ngx_cpystrn((u_char *) op->sqlstate, (u_char *) "0A000", 6);
            }

            ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_SQL);
            return;

        default:
            break;
        }

        if (op == NULL) {
            PQclear(res);
            continue;
        }

        if (op->res && PQresultStatus(op->res) == PGRES_FATAL_ERROR) {
            PQclear(res);
            continue;
        }

        if (op->res) {
            PQclear(op->res);
        }

        op->res = res;
    }

    if (conn->preparing) {
        conn->preparing = 0;

        if (op && op->res && PQresultStatus(op->res) == PGRES_COMMAND_OK) {

            /* prepared: now run it, under the same query timer */

            PQclear(op->res);
            op->res = NULL;

            conn->prepared[conn->nprepared++] = op->sql;

            if (ngx_pgasync_send_statement(conn, op) != NGX_OK
                || ngx_pgasync_flush(conn) == NGX_ERROR)
            {
                ngx_log_error(NGX_LOG_ERR, conn->c->log, 0,
                              "pgasync \"%V\": sending \"%s\" failed: %s",
                              &conn->db->name, op->name,
                              PQerrorMessage(conn->pg));
                ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECTION);
            }

            return;
        }

        /* a statement that does not prepare fails as its execution would */
    }

    /* the connection is ready for another query */

    if (conn->c->read->timer_set) {
        ngx_del_timer(conn->c->read);
    }

    conn->op = NULL;
    conn->state = NGX_PGASYNC_IDLE;
    conn->reused = 1;

    if (op == NULL) {
        ngx_pgasync_release(conn);
        return;
    }

    op->conn = NULL;
    op->active = 0;
    op->query_time = ngx_current_msec - op->start;

    st = op->res ? PQresultStatus(op->res) : PGRES_FATAL_ERROR;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        op->status = NGX_PGASYNC_OK;

    } else {
        op->status = NGX_PGASYNC_ERR_SQL;

        state = op->res ? PQresultErrorField(op->res, PG_DIAG_SQLSTATE)
                        : NULL;
        ngx_cpystrn((u_char *) op->sqlstate,
                    (u_char *) (state ? state : "XX000"), 6);

        /* the message may quote parameter values: log the code only */

        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "pgasync \"%V\": \"%s\" failed with SQLSTATE %s",
                      &conn->db->name, op->name, op->sqlstate);

        /*
         * The statement as prepared on this connection may be what fails:
         * "cached plan must not change result type" after a migration, a
         * prepared statement gone.  The connection goes, and its cache.
         */

        if (ngx_strcmp(op->sqlstate, "0A000") == 0
            || ngx_strcmp(op->sqlstate, "26000") == 0)
        {
            ngx_pgasync_free_slot(conn);
            op->handler(op);
            return;
        }
    }

    ngx_pgasync_release(conn);

    op->handler(op);
}


static void
ngx_pgasync_idle_read(ngx_pgasync_conn_t *conn)
{
    PGnotify  *n;

    /*
     * A server going away sends an error and closes in one edge: the
     * close is seen through pending_eof, not a later event.
     */

    if (ngx_pgasync_consume(conn) != NGX_OK
        || PQstatus(conn->pg) == CONNECTION_BAD
        || conn->c->read->pending_eof)
    {
        ngx_log_error(NGX_LOG_INFO, conn->c->log, 0,
                      "pgasync \"%V\": idle connection closed by server",
                      &conn->db->name);
        ngx_pgasync_fail(conn, NGX_PGASYNC_ERR_CONNECTION);
        return;
    }

    while ((n = PQnotifies(conn->pg)) != NULL) {
        PQfreemem(n);
    }
}


/* the connection is unusable: close it and answer its operation */

static void
ngx_pgasync_fail(ngx_pgasync_conn_t *conn, ngx_pgasync_status_e status)
{
    ngx_pgasync_op_t  *op;

    if (conn->listen) {
        ngx_pgasync_listen_lost(conn->listen);
        return;
    }

    op = conn->op;

    if (status == NGX_PGASYNC_ERR_CONNECT && op && !op->retried
        && conn->db->servers.nelts > 1)
    {
        /* the next server, for this same operation (next_server moved) */

        op->retried = 1;
        ngx_pgasync_close(conn);

        if (ngx_pgasync_connect(conn) == NGX_OK) {
            return;
        }
    }

    if (conn->state == NGX_PGASYNC_IDLE && op == NULL) {
        ngx_queue_remove(&conn->queue);
    }

    conn->op = NULL;
    ngx_pgasync_free_slot(conn);

    if (op) {
        op->conn = NULL;
        ngx_pgasync_finish(op, status);
    }
}


/* an idle connection goes to the next waiting operation or to the pool */

static void
ngx_pgasync_release(ngx_pgasync_conn_t *conn)
{
    ngx_queue_t       *q;
    ngx_pgasync_db_t  *db;
    ngx_pgasync_op_t  *op;

    db = conn->db;

    /*
     * The last answer and the server's goodbye (a FATAL notice, then FIN)
     * may come in one read: such a connection goes, not back to the pool
     */

    if (PQstatus(conn->pg) == CONNECTION_BAD || conn->c->read->pending_eof) {
        ngx_log_error(NGX_LOG_INFO, conn->c->log, 0,
                      "pgasync \"%V\": connection closed by server after "
                      "its answer", &db->name);
        ngx_pgasync_free_slot(conn);
        return;
    }

    if (!ngx_queue_empty(&db->waiting)) {
        q = ngx_queue_head(&db->waiting);
        ngx_queue_remove(q);
        db->nwaiting--;

        op = ngx_queue_data(q, ngx_pgasync_op_t, queue);
        op->queued = 0;

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        ngx_pgasync_send(conn, op);
        return;
    }

    /* an idle connection must not hold a worker that is shutting down */

    conn->c->read->cancelable = 1;

    ngx_queue_insert_tail(&db->idle, &conn->queue);
    ngx_add_timer(conn->c->read, db->idle_timeout);
}


/* a slot became free: start a connection for the first waiting operation */

static void
ngx_pgasync_dispatch(ngx_pgasync_db_t *db)
{
    ngx_queue_t         *q;
    ngx_pgasync_op_t    *op;
    ngx_pgasync_conn_t  *conn;

    if (ngx_queue_empty(&db->waiting) || ngx_queue_empty(&db->free)) {
        return;
    }

    q = ngx_queue_head(&db->waiting);
    ngx_queue_remove(q);
    db->nwaiting--;

    op = ngx_queue_data(q, ngx_pgasync_op_t, queue);
    op->queued = 0;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    q = ngx_queue_head(&db->free);
    ngx_queue_remove(q);
    conn = ngx_queue_data(q, ngx_pgasync_conn_t, queue);

    conn->op = op;
    op->conn = conn;

    if (ngx_pgasync_connect(conn) != NGX_OK) {
        conn->op = NULL;
        op->conn = NULL;
        ngx_queue_insert_head(&db->free, &conn->queue);
        ngx_pgasync_post(op, NGX_PGASYNC_ERR_CONNECT);
    }
}


static void
ngx_pgasync_finish(ngx_pgasync_op_t *op, ngx_pgasync_status_e status)
{
    op->active = 0;
    op->status = status;
    op->query_time = ngx_current_msec - op->start;

    op->handler(op);
}


/* answers an operation from the event loop, never from inside the call */

static void
ngx_pgasync_post(ngx_pgasync_op_t *op, ngx_pgasync_status_e status)
{
    op->status = status;
    op->timer.handler = ngx_pgasync_posted_handler;
    ngx_post_event(&op->timer, &ngx_posted_events);
}


static void
ngx_pgasync_posted_handler(ngx_event_t *ev)
{
    ngx_pgasync_op_t  *op;

    op = ev->data;
    ngx_pgasync_finish(op, op->status);
}


static void
ngx_pgasync_wait_timeout(ngx_event_t *ev)
{
    ngx_pgasync_op_t  *op;

    op = ev->data;

    ngx_queue_remove(&op->queue);
    op->db->nwaiting--;
    op->queued = 0;

    ngx_log_error(NGX_LOG_WARN, op->log, 0,
                  "pgasync \"%V\": no connection for \"%s\" within %M ms",
                  &op->db->name, op->name, op->db->queue_timeout);

    op->wait_time = ngx_current_msec - op->start;
    ngx_pgasync_finish(op, NGX_PGASYNC_ERR_WAIT_TIMEOUT);
}


static void
ngx_pgasync_close(ngx_pgasync_conn_t *conn)
{
    ngx_connection_t  *c;

    c = conn->c;

    if (c) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        /* libpq closes the descriptor: only forget it here */

        if (ngx_del_conn) {
            ngx_del_conn(c, NGX_CLOSE_EVENT);

        } else {
            if (c->read->active) {
                ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
            }

            if (c->write->active) {
                ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
            }
        }

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
        conn->c = NULL;
    }

    if (conn->pg) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }

    conn->state = NGX_PGASYNC_FREE;
    conn->reused = 0;
    conn->preparing = 0;
    conn->nprepared = 0;
}


static void
ngx_pgasync_free_slot(ngx_pgasync_conn_t *conn)
{
    ngx_pgasync_close(conn);
    ngx_queue_insert_head(&conn->db->free, &conn->queue);
    ngx_pgasync_dispatch(conn->db);
}


/* LISTEN on a dedicated connection, reconnecting while the worker lives */

ngx_int_t
ngx_pgasync_listen_start(ngx_pgasync_listen_t *ls)
{
    ngx_pgasync_conn_t  *conn;

    conn = &ls->conn;
    conn->db = ls->db;
    conn->listen = ls;

    /* the channel is an identifier checked by the caller at startup */

    if (ngx_strlen(ls->channel) > sizeof(ls->sql) - sizeof("LISTEN \"\"")) {
        return NGX_ERROR;
    }

    ngx_sprintf((u_char *) ls->sql, "LISTEN \"%s\"%Z", ls->channel);

    ls->timer.handler = ngx_pgasync_listen_timer;
    ls->timer.data = ls;
    ls->timer.log = ls->db->log;
    ls->timer.cancelable = 1;
    ls->running = 1;
    ls->checking = 0;
    ls->retry = 0;

    if (ngx_pgasync_connect(conn) != NGX_OK) {
        ngx_pgasync_listen_lost(ls);
    }

    return NGX_OK;
}


void
ngx_pgasync_listen_stop(ngx_pgasync_listen_t *ls)
{
    ls->running = 0;

    if (ls->timer.timer_set) {
        ngx_del_timer(&ls->timer);
    }

    ngx_pgasync_close(&ls->conn);
}


static void
ngx_pgasync_listen_read(ngx_pgasync_conn_t *conn)
{
    PGresult              *res;
    PGnotify              *n;
    ngx_uint_t             ok;
    ngx_pgasync_listen_t  *ls;

    ls = conn->listen;

    if (ngx_pgasync_consume(conn) != NGX_OK
        || PQstatus(conn->pg) == CONNECTION_BAD
        || conn->c->read->pending_eof)
    {
        ngx_log_error(NGX_LOG_WARN, conn->c->log, 0,
                      "pgasync \"%V\": LISTEN connection lost",
                      &conn->db->name);
        ngx_pgasync_listen_lost(ls);
        return;
    }

    if (conn->state == NGX_PGASYNC_LISTEN_SETUP) {
        ok = 1;

        for ( ;; ) {
            if (PQisBusy(conn->pg)) {
                return;
            }

            res = PQgetResult(conn->pg);
            if (res == NULL) {
                break;
            }

            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                ok = 0;
            }

            PQclear(res);
        }

        if (!ok) {
            ngx_log_error(NGX_LOG_ERR, conn->c->log, 0,
                          "pgasync \"%V\": LISTEN %s refused",
                          &conn->db->name, ls->channel);
            ngx_pgasync_listen_lost(ls);
            return;
        }

        /* the backoff restarts only once LISTEN is in force */

        if (conn->c->read->timer_set) {
            ngx_del_timer(conn->c->read);
        }

        conn->state = NGX_PGASYNC_LISTENING;
        conn->c->read->cancelable = 1;
        ngx_add_timer(&ls->timer, conn->db->listen_check);

        if (ls->checking) {
            ls->checking = 0;
            goto notifies;
        }

        ls->retry = 0;

        ngx_log_error(NGX_LOG_INFO, conn->c->log, 0,
                      "pgasync \"%V\": listening on \"%s\"",
                      &conn->db->name, ls->channel);

        ls->ready(ls);

        if (!ls->running || conn->pg == NULL) {
            return;
        }
    }

notifies:

    while ((n = PQnotifies(conn->pg)) != NULL) {
        ls->notify(ls, n->extra);
        PQfreemem(n);

        if (!ls->running || conn->pg == NULL) {
            return;
        }
    }
}


static void
ngx_pgasync_listen_lost(ngx_pgasync_listen_t *ls)
{
    ngx_pgasync_close(&ls->conn);
    ls->checking = 0;

    if (!ls->running || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* 100 ms, doubling up to 2 s: "within a second" after a restart */

    ls->retry = ls->retry ? ngx_min(ls->retry * 2, 2000) : 100;
    ngx_add_timer(&ls->timer, ls->retry);
}


/*
 * Reconnects a lost LISTEN connection; on a live one, a check: a connection
 * that only listens sends nothing and would not notice a server that died
 * silently, so it says LISTEN again (nothing for the server) every
 * listen_check, and an answer must come within query_timeout.
 */

static void
ngx_pgasync_listen_timer(ngx_event_t *ev)
{
    ngx_pgasync_conn_t    *conn;
    ngx_pgasync_listen_t  *ls;

    ls = ev->data;
    conn = &ls->conn;

    if (!ls->running) {
        return;
    }

    if (conn->pg && conn->state == NGX_PGASYNC_LISTENING) {

        if (!PQsendQuery(conn->pg, ls->sql)
            || ngx_pgasync_flush(conn) == NGX_ERROR)
        {
            ngx_log_error(NGX_LOG_WARN, conn->c->log, 0,
                          "pgasync \"%V\": LISTEN connection lost",
                          &conn->db->name);
            ngx_pgasync_listen_lost(ls);
            return;
        }

        conn->state = NGX_PGASYNC_LISTEN_SETUP;
        ls->checking = 1;
        ngx_add_timer(conn->c->read, conn->db->query_timeout);
        return;
    }

    if (ngx_pgasync_connect(conn) != NGX_OK) {
        ngx_pgasync_listen_lost(ls);
    }
}
