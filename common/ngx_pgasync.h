
/*
 * Asynchronous PostgreSQL client driven by the nginx event loop.
 *
 * A database is a named configuration block (see ngx_pgasync_conf.c).
 * Each worker keeps its own pool of libpq connections for it; a query is
 * an ngx_pgasync_op_t owned by the caller, handed to ngx_pgasync_query()
 * and answered through op->handler, never synchronously.
 *
 * This code is compiled into both modules of the suite.  nginx loads
 * modules with RTLD_GLOBAL, so every symbol here is hidden: each .so keeps
 * its own copy and its own state.
 */


#ifndef _NGX_PGASYNC_H_INCLUDED_
#define _NGX_PGASYNC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


#pragma GCC visibility push(hidden)


typedef enum {
    NGX_PGASYNC_OK = 0,
    NGX_PGASYNC_ERR_SQL,            /* the server refused: see op->sqlstate */
    NGX_PGASYNC_ERR_BUSY,           /* wait queue full */
    NGX_PGASYNC_ERR_WAIT_TIMEOUT,   /* no connection within queue_timeout */
    NGX_PGASYNC_ERR_CONNECT,        /* could not connect */
    NGX_PGASYNC_ERR_TIMEOUT,        /* query_timeout expired */
    NGX_PGASYNC_ERR_CONNECTION,     /* connection lost during the query */
    NGX_PGASYNC_ERR_INTERNAL        /* out of memory and the like */
} ngx_pgasync_status_e;


typedef struct ngx_pgasync_db_s      ngx_pgasync_db_t;
typedef struct ngx_pgasync_conn_s    ngx_pgasync_conn_t;
typedef struct ngx_pgasync_op_s      ngx_pgasync_op_t;
typedef struct ngx_pgasync_listen_s  ngx_pgasync_listen_t;

typedef void (*ngx_pgasync_handler_pt)(ngx_pgasync_op_t *op);


typedef struct {
    ngx_str_t                 name;        /* as configured, for logs */
    char                     *host;        /* "host" for libpq */
    char                     *hostaddr;    /* resolved address, or NULL */
    char                     *port;
} ngx_pgasync_server_t;


struct ngx_pgasync_db_s {
    ngx_str_t                 name;
    ngx_uint_t                defined;     /* the block was seen */
    u_char                   *file;        /* where it was first referenced */
    ngx_uint_t                line;

    ngx_array_t               servers;     /* ngx_pgasync_server_t */
    ngx_array_t               params;      /* ngx_keyval_t: libpq keywords */

    /* libpq keyword/value arrays, NULL-terminated, one set per server */
    const char *const       **keywords;
    const char *const       **values;

    ngx_uint_t                max_conns;
    ngx_uint_t                queue_max;
    ngx_msec_t                queue_timeout;
    ngx_msec_t                connect_timeout;
    ngx_msec_t                query_timeout;
    ngx_msec_t                idle_timeout;
    ngx_msec_t                statement_timeout;
    ngx_msec_t                listen_check;
    time_t                    retry_after;

    /* per-worker state, set up by ngx_pgasync_init_worker() */
    ngx_log_t                *log;
    ngx_pgasync_conn_t       *conns;
    ngx_queue_t               free;        /* unused connection slots */
    ngx_queue_t               idle;        /* connected, no query */
    ngx_queue_t               waiting;     /* ops waiting for a connection */
    ngx_uint_t                nwaiting;
    ngx_uint_t                next_server;
};


#define NGX_PGASYNC_PREPARED  32


struct ngx_pgasync_conn_s {
    ngx_queue_t               queue;
    ngx_pgasync_db_t         *db;
    PGconn                   *pg;
    ngx_connection_t         *c;
    ngx_pgasync_op_t         *op;
    ngx_pgasync_listen_t     *listen;
    ngx_uint_t                server;
    ngx_uint_t                state;

    /* statements prepared on this connection: "p<index>" is sql */
    const char               *prepared[NGX_PGASYNC_PREPARED];
    ngx_uint_t                nprepared;
    unsigned                  preparing:1;
    unsigned                  reused:1;
};


struct ngx_pgasync_op_s {
    /* set by the caller */
    const char               *name;        /* statement name for logs */
    const char               *sql;
    int                       nparams;
    const char *const        *values;      /* must live, unchanged, until
                                              the answer: a statement is
                                              prepared first, then sent */
    const int                *lengths;
    ngx_pgasync_handler_pt    handler;
    void                     *data;
    ngx_log_t                *log;

    /* the answer, valid in the handler */
    ngx_pgasync_status_e      status;
    PGresult                 *res;         /* freed after the handler
                                              unless set to NULL there */
    char                      sqlstate[6];
    ngx_msec_t                wait_time;   /* queued for a connection */
    ngx_msec_t                query_time;  /* sent until answered */

    /* private */
    ngx_queue_t               queue;
    ngx_event_t               timer;
    ngx_pgasync_db_t         *db;
    ngx_pgasync_conn_t       *conn;
    ngx_msec_t                start;
    unsigned                  queued:1;
    unsigned                  active:1;
    unsigned                  retried:1;
};


typedef void (*ngx_pgasync_notify_pt)(ngx_pgasync_listen_t *ls,
    const char *payload);
typedef void (*ngx_pgasync_ready_pt)(ngx_pgasync_listen_t *ls);

struct ngx_pgasync_listen_s {
    ngx_pgasync_db_t         *db;
    const char               *channel;     /* a plain identifier */
    ngx_pgasync_ready_pt      ready;       /* LISTEN is in force (again) */
    ngx_pgasync_notify_pt     notify;
    void                     *data;
    ngx_msec_t                retry;       /* reconnect delay */
    char                      sql[80];     /* LISTEN "channel" */

    ngx_pgasync_conn_t        conn;
    ngx_event_t               timer;       /* reconnect, or check */
    unsigned                  running:1;
    unsigned                  checking:1;  /* LISTEN again, as a check */
};


ngx_int_t ngx_pgasync_init_worker(ngx_pgasync_db_t *db, ngx_cycle_t *cycle);
void ngx_pgasync_exit_worker(ngx_pgasync_db_t *db);

/* every database of an array of ngx_pgasync_db_t * */
ngx_int_t ngx_pgasync_init_workers(ngx_array_t *dbs, ngx_cycle_t *cycle);
void ngx_pgasync_exit_workers(ngx_array_t *dbs);

/* NGX_AGAIN: the handler will be called; NGX_BUSY: queue full, not queued */
ngx_int_t ngx_pgasync_query(ngx_pgasync_db_t *db, ngx_pgasync_op_t *op);
void ngx_pgasync_cancel(ngx_pgasync_op_t *op);

const char *ngx_pgasync_status_text(ngx_pgasync_status_e status);
ngx_uint_t ngx_pgasync_temporary(ngx_pgasync_op_t *op);

ngx_int_t ngx_pgasync_listen_start(ngx_pgasync_listen_t *ls);
void ngx_pgasync_listen_stop(ngx_pgasync_listen_t *ls);


/* configuration: ngx_pgasync_conf.c */

ngx_pgasync_db_t *ngx_pgasync_db_get(ngx_conf_t *cf, ngx_array_t *dbs,
    ngx_str_t *name);
char *ngx_pgasync_db_block(ngx_conf_t *cf, ngx_array_t *dbs);
char *ngx_pgasync_db_check(ngx_conf_t *cf, ngx_array_t *dbs);


#pragma GCC visibility pop


#endif /* _NGX_PGASYNC_H_INCLUDED_ */
