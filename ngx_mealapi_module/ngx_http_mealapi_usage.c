
/*
 * Usage metering: per tenant per day, counted in the log phase into the
 * tenant's node of the throttle zone, and flushed to usage_daily.
 *
 *     mealapi_usage database=DB [flush=5s];
 *
 * The worker that syncs the registry flushes every "flush": it moves each
 * tenant's oldest day of deltas to "inflight", owned by its pid, sends them
 * all in one upsert, and clears them when the database acknowledged.  On
 * failure they stay inflight and are sent again: nothing is lost while the
 * database is away, and a reload keeps them (the zone survives).  A worker
 * that died leaves its inflight deltas to the next flusher.  Every worker
 * leaving (reload, shutdown) flushes what is left, synchronously, since it
 * serves nothing any more.
 *
 * The month's quota count is loaded from gateway_usage_month once per zone
 * and month; what this zone flushed before that is not counted twice.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>
#include <poll.h>

#include "ngx_http_mealapi_module.h"


#define NGX_HTTP_MEALAPI_FLUSH_PARAMS  (3 + NGX_HTTP_MEALAPI_NCOUNTERS)


typedef struct {
    ngx_pool_t                    *pool;
    ngx_pgasync_op_t               op;
    ngx_pgasync_op_t               quota_op;
    ngx_msec_t                     next;
    ngx_msec_t                     quota_next;  /* after a failed load */
    char                          *values[NGX_HTTP_MEALAPI_FLUSH_PARAMS];
    char                          *quota_values[1];   /* its own: both
                                                         may be in flight */
    char                           month[16];
    uint32_t                       quota_month;
    unsigned                       flushing:1;
    unsigned                       loading:1;
} ngx_http_mealapi_flush_t;


static ngx_int_t ngx_http_mealapi_usage_collect(
    ngx_http_mealapi_main_conf_t *mmcf, ngx_pool_t *pool, char **values,
    ngx_log_t *log);
static void ngx_http_mealapi_usage_done(ngx_pgasync_op_t *op);
static void ngx_http_mealapi_usage_clear(ngx_http_mealapi_throttle_t *th);
static void ngx_http_mealapi_quota_done(ngx_pgasync_op_t *op);


static ngx_http_mealapi_flush_t  ngx_http_mealapi_flush;



/*
 * Rows are added only if their batch id is new (011_usage_flush_batches):
 * a flush sent again after its answer was lost is applied once.
 */

static const char  ngx_http_mealapi_flush_sql[] =
    "WITH v AS (SELECT * FROM unnest($1::bigint[], $2::date[], $3::bigint[],"
    " $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],"
    " $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],"
    " $13::bigint[], $14::bigint[], $15::bigint[]) AS v(tenant_id, day,"
    " requests, s2, s3, s4, s5, ra, rr, rl, rq, rv, bi, bo, batch)"
    " WHERE v.tenant_id IN (SELECT tenant_id FROM gateway_tenant_ids)),"
    " b AS (INSERT INTO usage_flush_batches (batch)"
    " SELECT DISTINCT batch FROM v ON CONFLICT DO NOTHING RETURNING batch),"
    " o AS (DELETE FROM usage_flush_batches"
    " WHERE flushed_at < now() - interval '7 days')"
    " INSERT INTO usage_daily AS u (tenant_id, day, requests, status_2xx,"
    " status_3xx, status_4xx, status_5xx, refused_auth, refused_route,"
    " refused_rate, refused_quota, refused_validation, bytes_in, bytes_out)"
    " SELECT v.tenant_id, v.day, v.requests, v.s2, v.s3, v.s4, v.s5, v.ra,"
    " v.rr, v.rl, v.rq, v.rv, v.bi, v.bo FROM v JOIN b ON b.batch = v.batch"
    " ON CONFLICT (tenant_id, day) DO UPDATE SET"
    " requests = u.requests + EXCLUDED.requests,"
    " status_2xx = u.status_2xx + EXCLUDED.status_2xx,"
    " status_3xx = u.status_3xx + EXCLUDED.status_3xx,"
    " status_4xx = u.status_4xx + EXCLUDED.status_4xx,"
    " status_5xx = u.status_5xx + EXCLUDED.status_5xx,"
    " refused_auth = u.refused_auth + EXCLUDED.refused_auth,"
    " refused_route = u.refused_route + EXCLUDED.refused_route,"
    " refused_rate = u.refused_rate + EXCLUDED.refused_rate,"
    " refused_quota = u.refused_quota + EXCLUDED.refused_quota,"
    " refused_validation = u.refused_validation"
    " + EXCLUDED.refused_validation,"
    " bytes_in = u.bytes_in + EXCLUDED.bytes_in,"
    " bytes_out = u.bytes_out + EXCLUDED.bytes_out";


char *
ngx_http_mealapi_usage_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_main_conf_t  *mmcf = conf;

    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (mmcf->usage_db) {
        return "is duplicate";
    }

    value = cf->args->elts;
    mmcf->usage_flush = 5000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "database=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            mmcf->usage_db = ngx_pgasync_db_get(cf, &mmcf->databases, &s);
            if (mmcf->usage_db == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "flush=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            mmcf->usage_flush = ngx_parse_time(&s, 0);
            if (mmcf->usage_flush == (ngx_msec_t) NGX_ERROR
                || mmcf->usage_flush == 0)
            {
                return "has an invalid flush interval";
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (mmcf->usage_db == NULL) {
        return "needs database=";
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_mealapi_log_handler(ngx_http_request_t *r)
{
    off_t                          sent;
    time_t                         now;
    uint32_t                       day;
    ngx_uint_t                     status, i;
    ngx_http_mealapi_ctx_t        *ctx;
    ngx_http_mealapi_usage_t      *u;
    ngx_http_mealapi_tnode_t      *tn;
    ngx_http_mealapi_throttle_t   *th;
    ngx_http_mealapi_main_conf_t  *mmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_mealapi_module);

    if (ctx == NULL || !ctx->has_tenant || r != r->main) {
        return NGX_OK;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_mealapi_module);
    th = mmcf->throttle;

    if (th == NULL) {
        return NGX_OK;
    }

    now = ngx_http_mealapi_now(r, NULL);
    day = (uint32_t) (now / 86400);
    sent = r->connection->sent - ctx->sent_start;

    ngx_shmtx_lock(&th->shpool->mutex);

    tn = ctx->tnode;

    if (tn == NULL) {
        /* refused before the throttle: route, plan scope, revoked, ... */
        tn = ngx_http_mealapi_tnode_get(th, ctx->tenant.id,
                                        ngx_http_mealapi_month(now));
        if (tn == NULL) {
            ngx_shmtx_unlock(&th->shpool->mutex);
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "mealapi: throttle zone \"%V\" is full, "
                          "usage not counted", &th->shm_zone->shm.name);
            return NGX_OK;
        }
    }

    /* today's slot; a free one; or, if two older days wait, the newer */

    for (i = 0; i < 2; i++) {
        if (tn->slot[i].day == day) {
            break;
        }
    }

    if (i == 2) {
        for (i = 0; i < 2; i++) {
            if (tn->slot[i].day == 0) {
                tn->slot[i].day = day;
                break;
            }
        }
    }

    if (i == 2) {
        i = (tn->slot[0].day > tn->slot[1].day) ? 0 : 1;
    }

    u = &tn->slot[i];

    if (ctx->passed) {
        u->n[NGX_HTTP_MEALAPI_REQUESTS] += ctx->route ? ctx->route->cost : 1;

        status = r->headers_out.status / 100;

        if (status >= 2 && status <= 5) {
            u->n[NGX_HTTP_MEALAPI_STATUS_2XX + status - 2]++;
        }

    } else if (ctx->refused) {
        u->n[ctx->refused]++;
    }

    u->n[NGX_HTTP_MEALAPI_BYTES_IN] += (uint64_t) r->request_length;
    u->n[NGX_HTTP_MEALAPI_BYTES_OUT] += (uint64_t) (sent > 0 ? sent : 0);

    ngx_shmtx_unlock(&th->shpool->mutex);

    return NGX_OK;
}


/*
 * Claims what this worker will send and prints it as the statement's
 * array parameters.  Returns the number of rows.
 */

static ngx_int_t
ngx_http_mealapi_usage_collect(ngx_http_mealapi_main_conf_t *mmcf,
    ngx_pool_t *pool, char **values, ngx_log_t *log)
{
    u_char                       *p[NGX_HTTP_MEALAPI_FLUSH_PARAMS];
    size_t                        size;
    int64_t                       batch;
    ngx_tm_t                      tm;
    ngx_int_t                     rows;
    ngx_uint_t                    i, k, n;
    ngx_queue_t                  *q;
    ngx_http_mealapi_usage_t     *u;
    ngx_http_mealapi_tnode_t     *tn;
    ngx_http_mealapi_throttle_t  *th;

    th = mmcf->throttle;

    /*
     * the id of the deltas this collect moves in flight: random, positive,
     * never reused across workers and restarts in practice
     */

    if (RAND_bytes((u_char *) &batch, sizeof(batch)) != 1) {
        return NGX_ERROR;
    }

    batch &= 0x7fffffffffffffffLL;

    ngx_shmtx_lock(&th->shpool->mutex);

    n = 0;

    for (q = ngx_queue_head(&th->sh->queue);
         q != ngx_queue_sentinel(&th->sh->queue);
         q = ngx_queue_next(q))
    {
        tn = ngx_queue_data(q, ngx_http_mealapi_tnode_t, queue);

        if (tn->inflight.day) {

            /* a dead worker's inflight deltas are ours to send now */

            if (tn->flusher != ngx_pid && tn->flusher != 0
                && (kill(tn->flusher, 0) == 0 || ngx_errno != NGX_ESRCH))
            {
                continue;
            }

        } else {
            k = (tn->slot[0].day && (!tn->slot[1].day
                                     || tn->slot[0].day < tn->slot[1].day))
                ? 0 : 1;

            if (tn->slot[k].day == 0) {
                continue;
            }

            tn->inflight = tn->slot[k];
            tn->batch = batch;
            ngx_memzero(&tn->slot[k], sizeof(ngx_http_mealapi_usage_t));
        }

        tn->flusher = ngx_pid;
        n++;
    }

    rows = 0;

    if (n == 0) {
        goto done;
    }

    size = n * (NGX_INT64_LEN + 2) + 2;

    for (i = 0; i < NGX_HTTP_MEALAPI_FLUSH_PARAMS; i++) {
        p[i] = ngx_pnalloc(pool, size);
        if (p[i] == NULL) {
            rows = NGX_ERROR;
            goto done;
        }

        values[i] = (char *) p[i];
        *p[i]++ = '{';
    }

    for (q = ngx_queue_head(&th->sh->queue);
         q != ngx_queue_sentinel(&th->sh->queue) && (ngx_uint_t) rows < n;
         q = ngx_queue_next(q))
    {
        tn = ngx_queue_data(q, ngx_http_mealapi_tnode_t, queue);

        if (tn->flusher != ngx_pid || tn->inflight.day == 0) {
            continue;
        }

        u = &tn->inflight;
        ngx_gmtime((time_t) u->day * 86400, &tm);

        p[0] = ngx_sprintf(p[0], "%s%L", rows ? "," : "", tn->tenant_id);
        p[1] = ngx_sprintf(p[1], "%s%04d-%02d-%02d", rows ? "," : "",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday);

        for (i = 0; i < NGX_HTTP_MEALAPI_NCOUNTERS; i++) {
            p[2 + i] = ngx_sprintf(p[2 + i], "%s%uL", rows ? "," : "",
                                   u->n[i]);
        }

        p[2 + i] = ngx_sprintf(p[2 + i], "%s%L", rows ? "," : "",
                               tn->batch);

        rows++;
    }

    for (i = 0; i < NGX_HTTP_MEALAPI_FLUSH_PARAMS; i++) {
        *p[i]++ = '}';
        *p[i] = '\0';
    }

done:

    ngx_shmtx_unlock(&th->shpool->mutex);

    if (rows > 0) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "mealapi usage: flushing %i rows", rows);
    }

    return rows;
}


/* the database acknowledged: this worker's inflight deltas are done */

static void
ngx_http_mealapi_usage_clear(ngx_http_mealapi_throttle_t *th)
{
    ngx_queue_t               *q;
    ngx_http_mealapi_tnode_t  *tn;

    ngx_shmtx_lock(&th->shpool->mutex);

    for (q = ngx_queue_head(&th->sh->queue);
         q != ngx_queue_sentinel(&th->sh->queue);
         q = ngx_queue_next(q))
    {
        tn = ngx_queue_data(q, ngx_http_mealapi_tnode_t, queue);

        if (tn->flusher == ngx_pid && tn->inflight.day) {

            if (ngx_http_mealapi_month((time_t) tn->inflight.day * 86400)
                == tn->month)
            {
                tn->flushed += tn->inflight.n[NGX_HTTP_MEALAPI_REQUESTS];
            }

            ngx_memzero(&tn->inflight, sizeof(ngx_http_mealapi_usage_t));
            tn->flusher = 0;
        }
    }

    ngx_shmtx_unlock(&th->shpool->mutex);
}


/*
 * This worker lost the registry lease and flushes no more: its inflight
 * deltas (of a flush that failed, or is still running) go to the next
 * flusher with their batch ids, rather than wait for this worker's exit.
 * Should both flushes reach the database, the batch ids apply them once.
 */

void
ngx_http_mealapi_usage_release(ngx_http_mealapi_main_conf_t *mmcf)
{
    ngx_queue_t                  *q;
    ngx_http_mealapi_tnode_t     *tn;
    ngx_http_mealapi_throttle_t  *th;

    th = mmcf->throttle;

    if (mmcf->usage_db == NULL || th == NULL) {
        return;
    }

    ngx_shmtx_lock(&th->shpool->mutex);

    for (q = ngx_queue_head(&th->sh->queue);
         q != ngx_queue_sentinel(&th->sh->queue);
         q = ngx_queue_next(q))
    {
        tn = ngx_queue_data(q, ngx_http_mealapi_tnode_t, queue);

        if (tn->flusher == ngx_pid) {
            tn->flusher = 0;
        }
    }

    ngx_shmtx_unlock(&th->shpool->mutex);
}


/* called by the worker holding the registry lease, every tick */

void
ngx_http_mealapi_usage_tick(ngx_http_mealapi_main_conf_t *mmcf,
    ngx_log_t *log)
{
    ngx_int_t                  rows;
    ngx_http_mealapi_flush_t  *fl;

    fl = &ngx_http_mealapi_flush;
    if (mmcf->usage_db == NULL || mmcf->throttle == NULL || fl->flushing
        || (ngx_msec_int_t) (ngx_current_msec - fl->next) < 0)
    {
        return;
    }

    ngx_http_mealapi_quota_load(mmcf, log);

    if (fl->loading) {
        /* the flush waits for the quota load (above), a tick at most */
        return;
    }

    fl->next = ngx_current_msec + mmcf->usage_flush;

    fl->pool = ngx_create_pool(4096, log);
    if (fl->pool == NULL) {
        return;
    }

    rows = ngx_http_mealapi_usage_collect(mmcf, fl->pool, fl->values, log);

    if (rows <= 0) {
        ngx_destroy_pool(fl->pool);
        fl->pool = NULL;
        return;
    }

    fl->op.name = "usage_flush";
    fl->op.sql = ngx_http_mealapi_flush_sql;
    fl->op.nparams = NGX_HTTP_MEALAPI_FLUSH_PARAMS;
    fl->op.values = (const char *const *) fl->values;
    fl->op.lengths = NULL;
    fl->op.handler = ngx_http_mealapi_usage_done;
    fl->op.data = mmcf;
    fl->op.log = log;

    if (ngx_pgasync_query(mmcf->usage_db, &fl->op) == NGX_BUSY) {
        ngx_destroy_pool(fl->pool);
        fl->pool = NULL;
        return;
    }

    fl->flushing = 1;
}


static void
ngx_http_mealapi_usage_done(ngx_pgasync_op_t *op)
{
    ngx_http_mealapi_flush_t      *fl;
    ngx_http_mealapi_main_conf_t  *mmcf;

    fl = &ngx_http_mealapi_flush;
    mmcf = op->data;

    fl->flushing = 0;

    if (op->status == NGX_PGASYNC_OK) {
        ngx_http_mealapi_usage_clear(mmcf->throttle);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                       "mealapi usage: flushed in %M ms", op->query_time);

    } else {
        ngx_log_error(NGX_LOG_WARN, op->log, 0,
                      "mealapi usage: flush failed (%s), deltas kept",
                      ngx_pgasync_status_text(op->status));

        /* try again soon, not only after a full interval */
        fl->next = ngx_current_msec + 1000;
    }

    if (op->res) {
        PQclear(op->res);
        op->res = NULL;
    }

    ngx_destroy_pool(fl->pool);
    fl->pool = NULL;
}


/* this month's quota use per tenant, from what earlier runs flushed */

void
ngx_http_mealapi_quota_load(ngx_http_mealapi_main_conf_t *mmcf,
    ngx_log_t *log)
{
    time_t                     now;
    ngx_tm_t                   tm;
    ngx_http_mealapi_flush_t  *fl;

    fl = &ngx_http_mealapi_flush;

    /*
     * Not beside a flush: one committed while this query runs could be in
     * its snapshot and not yet in "flushed", and count twice
     */

    if (mmcf->usage_db == NULL || mmcf->throttle == NULL || fl->loading
        || fl->flushing
        || (ngx_msec_int_t) (ngx_current_msec - fl->quota_next) < 0)
    {
        return;
    }

    now = ngx_time() + mmcf->clock_offset;
    fl->quota_month = ngx_http_mealapi_month(now);

    if (mmcf->throttle->sh->month_loaded == fl->quota_month) {
        return;
    }

    ngx_gmtime(now, &tm);
    ngx_sprintf((u_char *) fl->month, "%04d-%02d-01%Z", tm.ngx_tm_year,
                tm.ngx_tm_mon);

    fl->quota_values[0] = fl->month;

    fl->quota_op.name = "quota_load";
    fl->quota_op.sql = "SELECT tenant_id, requests FROM gateway_usage_month"
                       " WHERE month = $1::date";
    fl->quota_op.nparams = 1;
    fl->quota_op.values = (const char *const *) fl->quota_values;
    fl->quota_op.lengths = NULL;
    fl->quota_op.handler = ngx_http_mealapi_quota_done;
    fl->quota_op.data = mmcf;
    fl->quota_op.log = log;

    if (ngx_pgasync_query(mmcf->usage_db, &fl->quota_op) != NGX_BUSY) {
        fl->loading = 1;
    }
}


static void
ngx_http_mealapi_quota_done(ngx_pgasync_op_t *op)
{
    int                            i, n;
    int64_t                        tenant, used;
    ngx_queue_t                   *q;
    ngx_http_mealapi_flush_t      *fl;
    ngx_http_mealapi_tnode_t      *tn;
    ngx_http_mealapi_throttle_t   *th;
    ngx_http_mealapi_main_conf_t  *mmcf;

    fl = &ngx_http_mealapi_flush;
    mmcf = op->data;
    th = mmcf->throttle;

    fl->loading = 0;

    if (op->status != NGX_PGASYNC_OK) {
        ngx_log_error(NGX_LOG_WARN, op->log, 0,
                      "mealapi usage: loading quota use failed (%s)",
                      ngx_pgasync_status_text(op->status));

        /* flushes go on meanwhile: tried again in a few seconds */
        fl->quota_next = ngx_current_msec + 5000;
        goto done;
    }

    n = PQntuples(op->res);

    ngx_shmtx_lock(&th->shpool->mutex);

    for (i = 0; i < n; i++) {
        tenant = strtoll(PQgetvalue(op->res, i, 0), NULL, 10);
        used = strtoll(PQgetvalue(op->res, i, 1), NULL, 10);

        tn = ngx_http_mealapi_tnode_get(th, tenant, fl->quota_month);

        /* the database holds what this zone flushed, and others' use */

        if (tn && tn->month == fl->quota_month && !tn->month_loaded) {
            tn->month_used += ngx_max(used - tn->flushed, 0);
            tn->month_loaded = 1;
        }
    }

    for (q = ngx_queue_head(&th->sh->queue);
         q != ngx_queue_sentinel(&th->sh->queue);
         q = ngx_queue_next(q))
    {
        tn = ngx_queue_data(q, ngx_http_mealapi_tnode_t, queue);
        tn->month_loaded = 1;
    }

    th->sh->month_loaded = fl->quota_month;

    ngx_shmtx_unlock(&th->shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, op->log, 0,
                  "mealapi usage: quota use of %d tenants loaded", n);

done:

    if (op->res) {
        PQclear(op->res);
        op->res = NULL;
    }
}


/*
 * The final flush's statement, blocking but bounded: a server that takes
 * the connection and then stops answering must not keep the worker from
 * exiting.  NULL when the answer did not come within the timeout.
 */

static PGresult *
ngx_http_mealapi_usage_exec(PGconn *pg, char **values, ngx_msec_t timeout)
{
    int              n;
    PGresult        *res, *last;
    ngx_msec_int_t   left;
    struct pollfd    pfd;
    struct timespec  ts;
    ngx_msec_t       deadline;

    if (PQsetnonblocking(pg, 1) != 0
        || !PQsendQueryParams(pg, ngx_http_mealapi_flush_sql,
                              NGX_HTTP_MEALAPI_FLUSH_PARAMS, NULL,
                              (const char *const *) values, NULL, NULL, 0))
    {
        return PQmakeEmptyPGresult(pg, PGRES_FATAL_ERROR);
    }

    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout;

    last = NULL;

    for ( ;; ) {
        n = PQflush(pg);

        if (n == -1 || PQconsumeInput(pg) == 0) {
            PQclear(last);
            return PQmakeEmptyPGresult(pg, PGRES_FATAL_ERROR);
        }

        /* the statement's result, then NULL; an error wins */

        while (!PQisBusy(pg)) {
            res = PQgetResult(pg);

            if (res == NULL) {
                return last ? last
                            : PQmakeEmptyPGresult(pg, PGRES_FATAL_ERROR);
            }

            if (last == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
                PQclear(last);
                last = res;

            } else {
                PQclear(res);
            }
        }

        clock_gettime(CLOCK_MONOTONIC, &ts);
        left = (ngx_msec_int_t) (deadline
                                 - (ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
        if (left <= 0) {
            PQclear(last);
            return NULL;
        }

        pfd.fd = PQsocket(pg);
        pfd.events = POLLIN | (n == 1 ? POLLOUT : 0);
        pfd.revents = 0;

        if (poll(&pfd, 1, (int) left) == -1 && ngx_errno != NGX_EINTR) {
            PQclear(last);
            return PQmakeEmptyPGresult(pg, PGRES_FATAL_ERROR);
        }
    }
}


/*
 * A worker leaving flushes what is left, blocking: it serves nothing any
 * more, and the zone may go away with the last worker.  One collect takes
 * one row per tenant (the inflight deltas, else the older day), so it
 * goes round until nothing is left: inflight, then up to two days.
 */

void
ngx_http_mealapi_usage_exit(ngx_http_mealapi_main_conf_t *mmcf,
    ngx_log_t *log)
{
    char              *state;
    PGconn            *pg;
    PGresult          *res;
    ngx_int_t          rows;
    ngx_uint_t         round, i, s;
    ngx_pool_t        *pool;
    ngx_pgasync_db_t  *db;
    char              *values[NGX_HTTP_MEALAPI_FLUSH_PARAMS];

    if (mmcf->usage_db == NULL || mmcf->throttle == NULL) {
        return;
    }

    if (ngx_http_mealapi_flush.flushing) {
        /* the worker stayed for it; if it failed, inflight is ours */
        ngx_pgasync_cancel(&ngx_http_mealapi_flush.op);
        ngx_http_mealapi_flush.flushing = 0;
    }

    pg = NULL;
    db = mmcf->usage_db;

    for (round = 0; round < 3; round++) {

        pool = ngx_create_pool(4096, log);
        if (pool == NULL) {
            break;
        }

        rows = ngx_http_mealapi_usage_collect(mmcf, pool, values, log);

        if (rows <= 0) {
            ngx_destroy_pool(pool);
            break;
        }

        /* every server of the block, the one in use first */

        for (i = 0; pg == NULL && i < db->servers.nelts; i++) {
            s = (db->next_server + i) % db->servers.nelts;
            pg = PQconnectdbParams(db->keywords[s], db->values[s], 0);

            if (PQstatus(pg) != CONNECTION_OK) {
                PQfinish(pg);
                pg = NULL;
            }
        }

        if (pg == NULL) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "mealapi usage: final flush of %i rows impossible, "
                          "database unreachable: they stay in shared memory "
                          "for the next worker, if any", rows);
            ngx_destroy_pool(pool);
            break;
        }

        res = ngx_http_mealapi_usage_exec(pg, values, db->query_timeout);

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "mealapi usage: final flush of %i rows failed "
                          "with %s%s: they stay in shared memory for the "
                          "next worker, if any", rows,
                          res ? "SQLSTATE " : "",
                          res ? (state ? state : "?") : "no answer within "
                                                        "query_timeout");
            PQclear(res);
            ngx_destroy_pool(pool);
            break;
        }

        ngx_http_mealapi_usage_clear(mmcf->throttle);

        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "mealapi usage: final flush of %i rows", rows);

        PQclear(res);
        ngx_destroy_pool(pool);
    }

    if (pg) {
        PQfinish(pg);
    }
}
