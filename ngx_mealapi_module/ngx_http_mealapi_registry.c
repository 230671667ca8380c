
/*
 * The tenant registry: client certificate fingerprint -> tenant, in shared
 * memory for every worker, kept in sync with the control-plane database by
 * one worker at a time.
 *
 *     mealapi_registry zone=NAME:SIZE database=DB [resync=60s]
 *                      [channel=nutripro_registry] [startup_wait=3s];
 *
 * Until the first load succeeds, requests wait up to startup_wait for it,
 * then get 503.
 *
 * The syncing worker holds a lease in the zone, renewed every 500 ms; when
 * it exits it gives the lease up, when it dies the lease runs out (3 s) and
 * another worker takes over.  It LISTENs on the channel and loads the whole
 * registry view whenever LISTEN is (re)established and every "resync"
 * interval, marking the nodes it finds and sweeping the rest.  A
 * notification that names a certificate, tenant or plan loads the rows of
 * those only (ids notified while a query runs are asked for together) and
 * sweeps their nodes that are no longer in the view; any other
 * notification, or more than NGX_HTTP_MEALAPI_IDS ids of one kind, loads
 * the whole view.  Answers go into the tree NGX_HTTP_MEALAPI_BATCH rows per
 * turn of the event loop.  While the database is away the last good
 * registry stays in force.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mealapi_module.h"


#define NGX_HTTP_MEALAPI_LEASE  3000
#define NGX_HTTP_MEALAPI_TICK   500
#define NGX_HTTP_MEALAPI_BATCH  1000    /* rows applied per event loop turn */
#define NGX_HTTP_MEALAPI_IDS    64      /* ids of one kind in one change */
#define NGX_HTTP_MEALAPI_RETRY  2000    /* a failed load, again after (ms) */

/* what a notification names */
#define NGX_HTTP_MEALAPI_CERT    0
#define NGX_HTTP_MEALAPI_TENANT  1
#define NGX_HTTP_MEALAPI_PLAN    2
#define NGX_HTTP_MEALAPI_KINDS   3


typedef struct {
    ngx_uint_t                     n;
    int64_t                        id[NGX_HTTP_MEALAPI_IDS];
} ngx_http_mealapi_ids_t;


typedef struct {
    ngx_http_mealapi_registry_t   *reg;
    ngx_event_t                    tick;
    ngx_event_t                    apply;
    ngx_pgasync_listen_t           listen;
    ngx_pgasync_op_t               full_op;
    ngx_pgasync_op_t               change_op;

    /* ids notified and not yet asked for; the ids of the change in hand */
    ngx_http_mealapi_ids_t         notified[NGX_HTTP_MEALAPI_KINDS];
    ngx_http_mealapi_ids_t         changed[NGX_HTTP_MEALAPI_KINDS];
    const char                    *values[NGX_HTTP_MEALAPI_KINDS];
    u_char                         arrays[NGX_HTTP_MEALAPI_KINDS]
                                       [NGX_HTTP_MEALAPI_IDS
                                        * (NGX_INT64_LEN + 1) + 3];

    /* the answer being applied, NGX_HTTP_MEALAPI_BATCH rows at a time */
    PGresult                      *res;
    int                            row;
    ngx_uint_t                     generation;
    ngx_uint_t                     bad;
    ngx_uint_t                     turns;
    ngx_msec_t                     query_time;
    ngx_msec_t                     next_resync;

    unsigned                       owner:1;
    unsigned                       loading:1;   /* a query or an apply */
    unsigned                       full:1;      /* ... of the whole view */
    unsigned                       pending:1;   /* a full load is due */
} ngx_http_mealapi_sync_t;


static ngx_int_t ngx_http_mealapi_registry_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_mealapi_reg_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_mealapi_reg_node_t *ngx_http_mealapi_reg_find(
    ngx_http_mealapi_reg_sh_t *sh, u_char *fp);
static ngx_uint_t ngx_http_mealapi_route_allowed(
    ngx_http_mealapi_reg_node_t *rn, ngx_str_t *name);
static void ngx_http_mealapi_sync_tick(ngx_event_t *ev);
static void ngx_http_mealapi_sync_stop(ngx_http_mealapi_sync_t *sync);
static void ngx_http_mealapi_sync_next(ngx_http_mealapi_sync_t *sync);
static void ngx_http_mealapi_sync_loaded(ngx_pgasync_op_t *op);
static void ngx_http_mealapi_sync_apply(ngx_event_t *ev);
static void ngx_http_mealapi_sync_sweep(ngx_http_mealapi_sync_t *sync);
static int ngx_http_mealapi_sync_cmp_id(const void *one, const void *two);
static void ngx_http_mealapi_sync_retry(ngx_http_mealapi_sync_t *sync,
    ngx_pgasync_op_t *op);
static ngx_uint_t ngx_http_mealapi_sync_changed(ngx_http_mealapi_sync_t *sync,
    ngx_http_mealapi_reg_node_t *rn);
static void ngx_http_mealapi_sync_ready(ngx_pgasync_listen_t *ls);
static void ngx_http_mealapi_sync_notify(ngx_pgasync_listen_t *ls,
    const char *payload);
static ngx_int_t ngx_http_mealapi_sync_row(ngx_http_mealapi_registry_t *reg,
    PGresult *res, int row, ngx_uint_t generation);
static ngx_msec_t ngx_http_mealapi_lease_clock(void);


static ngx_http_mealapi_sync_t  ngx_http_mealapi_sync;


#define NGX_HTTP_MEALAPI_REGISTRY_COLUMNS                                    \
    "SELECT fingerprint, cert_status = 'revoked',"                            \
    " tenant_status = 'suspended',"                                           \
    " extract(epoch FROM not_before)::bigint,"                                \
    " extract(epoch FROM not_after)::bigint,"                                 \
    " tenant_id, tenant_slug, tenant_name, plan_name,"                        \
    " (rate_per_sec * 1000)::bigint, burst, coalesce(monthly_quota, -1),"     \
    " routes IS NULL, coalesce(array_to_string(routes, ','), ''),"            \
    " cert_id, plan_id FROM gateway_registry"

#define NGX_HTTP_MEALAPI_REGISTRY_NFIELDS  16


static const char  ngx_http_mealapi_registry_sql[] =
    NGX_HTTP_MEALAPI_REGISTRY_COLUMNS;


/* the rows of the certificates, tenants and plans a notification named */

static const char  ngx_http_mealapi_registry_change_sql[] =
    NGX_HTTP_MEALAPI_REGISTRY_COLUMNS " WHERE cert_id = ANY($1::bigint[])"
    " UNION ALL " NGX_HTTP_MEALAPI_REGISTRY_COLUMNS
    " WHERE tenant_id = ANY($2::bigint[])"
    " UNION ALL " NGX_HTTP_MEALAPI_REGISTRY_COLUMNS
    " WHERE plan_id = ANY($3::bigint[])";


char *
ngx_http_mealapi_registry_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_main_conf_t  *mmcf = conf;

    u_char                       *p;
    ssize_t                       size;
    ngx_str_t                    *value, name, s, db;
    ngx_uint_t                    i;
    ngx_http_mealapi_registry_t  *reg;

    if (mmcf->registry) {
        return "is duplicate";
    }

    reg = ngx_pcalloc(cf->pool, sizeof(ngx_http_mealapi_registry_t));
    if (reg == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    size = 0;
    ngx_str_null(&name);
    ngx_str_null(&db);
    ngx_str_set(&reg->channel, "nutripro_registry");
    reg->resync = 60000;
    reg->startup_wait = 3000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                goto invalid;
            }

            name.len = p - name.data;
            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || name.len == 0) {
                goto invalid;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "database=", 9) == 0) {
            db.data = value[i].data + 9;
            db.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "resync=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            reg->resync = ngx_parse_time(&s, 0);
            if (reg->resync == (ngx_msec_t) NGX_ERROR || reg->resync == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "startup_wait=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            reg->startup_wait = ngx_parse_time(&s, 0);
            if (reg->startup_wait == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "channel=", 8) == 0) {
            reg->channel.data = value[i].data + 8;
            reg->channel.len = value[i].len - 8;

            if (reg->channel.len == 0 || reg->channel.len > 63) {
                goto invalid;
            }

            for (p = reg->channel.data; *p; p++) {
                if (!((*p >= 'a' && *p <= 'z') || *p == '_'
                      || (*p >= '0' && *p <= '9')))
                {
                    goto invalid;
                }
            }

            continue;
        }

        goto invalid;
    }

    if (name.len == 0 || db.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs zone= and database=", &cmd->name);
        return NGX_CONF_ERROR;
    }

    reg->db = ngx_pgasync_db_get(cf, &mmcf->databases, &db);
    if (reg->db == NULL) {
        return NGX_CONF_ERROR;
    }

    reg->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_mealapi_module);
    if (reg->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (reg->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    reg->shm_zone->init = ngx_http_mealapi_registry_init_zone;
    reg->shm_zone->data = reg;

    mmcf->registry = reg;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_mealapi_registry_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mealapi_registry_t  *oreg = data;

    size_t                        len;
    ngx_http_mealapi_registry_t  *reg;

    reg = shm_zone->data;

    if (oreg) {
        /* reload: the registry in force stays */
        reg->sh = oreg->sh;
        reg->shpool = oreg->shpool;
        return NGX_OK;
    }

    reg->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        reg->sh = reg->shpool->data;
        return NGX_OK;
    }

    reg->sh = ngx_slab_calloc(reg->shpool,
                              sizeof(ngx_http_mealapi_reg_sh_t));
    if (reg->sh == NULL) {
        return NGX_ERROR;
    }

    reg->shpool->data = reg->sh;

    ngx_rbtree_init(&reg->sh->rbtree, &reg->sh->sentinel,
                    ngx_http_mealapi_reg_insert_value);
    ngx_queue_init(&reg->sh->queue);

    len = sizeof(" in mealapi_registry zone \"\"") + shm_zone->shm.name.len;

    reg->shpool->log_ctx = ngx_slab_alloc(reg->shpool, len);
    if (reg->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(reg->shpool->log_ctx, " in mealapi_registry zone \"%V\"%Z",
                &shm_zone->shm.name);

    reg->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_inline ngx_rbtree_key_t
ngx_http_mealapi_fp_key(u_char *fp)
{
    /* a SHA-256 is uniformly distributed: its first bytes are the hash */

    return ((ngx_rbtree_key_t) fp[0] << 24) | (fp[1] << 16) | (fp[2] << 8)
           | fp[3];
}


static void
ngx_http_mealapi_reg_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t            **p;
    ngx_http_mealapi_reg_node_t   *rn, *rnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            rn = (ngx_http_mealapi_reg_node_t *) &node->color;
            rnt = (ngx_http_mealapi_reg_node_t *) &temp->color;

            p = (ngx_memcmp(rn->fp, rnt->fp, NGX_HTTP_MEALAPI_FP_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_mealapi_reg_node_t *
ngx_http_mealapi_reg_find(ngx_http_mealapi_reg_sh_t *sh, u_char *fp)
{
    ngx_int_t                     rc;
    ngx_rbtree_key_t              key;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_mealapi_reg_node_t  *rn;

    key = ngx_http_mealapi_fp_key(fp);

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        rn = (ngx_http_mealapi_reg_node_t *) &node->color;

        rc = ngx_memcmp(fp, rn->fp, NGX_HTTP_MEALAPI_FP_LEN);

        if (rc == 0) {
            return rn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Looks the certificate up and copies the tenant out.  NGX_OK: allowed;
 * NGX_DECLINED: unknown certificate; NGX_BUSY: the registry was never
 * loaded; NGX_ABORT: refused, *refusal names why.
 */

ngx_int_t
ngx_http_mealapi_registry_lookup(ngx_http_request_t *r,
    ngx_http_mealapi_registry_t *reg, u_char *fp,
    ngx_http_mealapi_route_t *route, ngx_http_mealapi_tenant_t *tenant,
    const char **refusal)
{
    u_char                       *p;
    time_t                        now;
    ngx_int_t                     rc;
    ngx_http_mealapi_reg_node_t  *rn;

    p = ngx_pnalloc(r->pool, 3 * NGX_HTTP_MEALAPI_NAME_MAX);
    if (p == NULL) {
        return NGX_ERROR;
    }

    now = ngx_time();
    *refusal = NULL;

    ngx_shmtx_lock(&reg->shpool->mutex);

    if (!reg->sh->loaded) {
        ngx_shmtx_unlock(&reg->shpool->mutex);
        return NGX_BUSY;
    }

    rn = ngx_http_mealapi_reg_find(reg->sh, fp);

    if (rn == NULL) {
        ngx_shmtx_unlock(&reg->shpool->mutex);
        return NGX_DECLINED;
    }

    tenant->id = rn->tenant_id;
    tenant->rate_milli = rn->rate_milli;
    tenant->burst = rn->burst;
    tenant->quota = rn->quota;

    tenant->slug.data = p;
    tenant->slug.len = rn->slug_len;
    p = ngx_cpymem(p, rn->data, rn->slug_len);

    tenant->name.data = p;
    tenant->name.len = rn->name_len;
    p = ngx_cpymem(p, rn->data + rn->slug_len, rn->name_len);

    tenant->plan.data = p;
    tenant->plan.len = rn->plan_len;
    ngx_memcpy(p, rn->data + rn->slug_len + rn->name_len, rn->plan_len);

    rc = NGX_ABORT;

    if (rn->cert_revoked) {
        *refusal = "certificate-revoked";

    } else if (rn->tenant_suspended) {
        *refusal = "tenant-suspended";

    } else if (now < rn->not_before || now >= rn->not_after) {
        *refusal = "certificate-expired";

    } else if (route && !ngx_http_mealapi_route_allowed(rn, &route->name)) {
        *refusal = "route-not-in-plan";

    } else {
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return rc;
}


static ngx_uint_t
ngx_http_mealapi_route_allowed(ngx_http_mealapi_reg_node_t *rn,
    ngx_str_t *name)
{
    u_char  *p, *last, *comma;

    if (rn->all_routes) {
        return 1;
    }

    p = rn->data + rn->slug_len + rn->name_len + rn->plan_len;
    last = p + rn->routes_len;

    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if ((size_t) (comma - p) == name->len
            && ngx_strncmp(p, name->data, name->len) == 0)
        {
            return 1;
        }

        p = comma + 1;
    }

    return 0;
}


ngx_int_t
ngx_http_mealapi_registry_init_process(ngx_cycle_t *cycle,
    ngx_http_mealapi_registry_t *reg)
{
    ngx_uint_t                k;
    ngx_http_mealapi_sync_t  *sync;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    sync = &ngx_http_mealapi_sync;
    ngx_memzero(sync, sizeof(ngx_http_mealapi_sync_t));

    sync->reg = reg;

    sync->tick.handler = ngx_http_mealapi_sync_tick;
    sync->tick.data = sync;
    sync->tick.log = cycle->log;
    sync->tick.cancelable = 1;

    sync->apply.handler = ngx_http_mealapi_sync_apply;
    sync->apply.data = sync;
    sync->apply.log = cycle->log;

    sync->listen.db = reg->db;
    sync->listen.channel = (char *) reg->channel.data;
    sync->listen.ready = ngx_http_mealapi_sync_ready;
    sync->listen.notify = ngx_http_mealapi_sync_notify;
    sync->listen.data = sync;

    sync->full_op.name = "registry_load";
    sync->full_op.sql = ngx_http_mealapi_registry_sql;
    sync->full_op.handler = ngx_http_mealapi_sync_loaded;
    sync->full_op.data = sync;
    sync->full_op.log = cycle->log;

    for (k = 0; k < NGX_HTTP_MEALAPI_KINDS; k++) {
        sync->values[k] = (const char *) sync->arrays[k];
    }

    sync->change_op.name = "registry_change";
    sync->change_op.sql = ngx_http_mealapi_registry_change_sql;
    sync->change_op.nparams = NGX_HTTP_MEALAPI_KINDS;
    sync->change_op.values = sync->values;
    sync->change_op.handler = ngx_http_mealapi_sync_loaded;
    sync->change_op.data = sync;
    sync->change_op.log = cycle->log;

    ngx_add_timer(&sync->tick, 1);

    return NGX_OK;
}


void
ngx_http_mealapi_registry_exit_process(ngx_http_mealapi_registry_t *reg)
{
    ngx_http_mealapi_sync_t  *sync;

    sync = &ngx_http_mealapi_sync;

    if (sync->reg != reg) {
        return;
    }

    if (sync->tick.timer_set) {
        ngx_del_timer(&sync->tick);
    }

    if (sync->owner) {
        ngx_http_mealapi_sync_stop(sync);

        ngx_shmtx_lock(&reg->shpool->mutex);

        if (reg->sh->owner == ngx_pid) {
            reg->sh->owner = 0;
            reg->sh->lease_until = 0;
        }

        ngx_shmtx_unlock(&reg->shpool->mutex);

        /* the next syncing worker may send them before this one exits */

        ngx_http_mealapi_usage_release(ngx_http_cycle_get_module_main_conf(
                                           ngx_cycle, ngx_mealapi_module));
    }

    sync->reg = NULL;
}


/*
 * The lease's clock: read now, not nginx's cached time (a worker busy for
 * a while would see its lease younger than it is), and monotonic, the same
 * in every process, so that a step of the wall clock hands no lease over;
 * nginx's cached wall clock where there is no monotonic one
 */

static ngx_msec_t
ngx_http_mealapi_lease_clock(void)
{
    ngx_time_t       *tp;
#if (NGX_HAVE_CLOCK_MONOTONIC)
    struct timespec   ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        return (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
#endif

    tp = ngx_timeofday();

    return (ngx_msec_t) tp->sec * 1000 + tp->msec;
}


static void
ngx_http_mealapi_sync_tick(ngx_event_t *ev)
{
    ngx_msec_t                    now;
    ngx_uint_t                    mine;
    ngx_http_mealapi_sync_t      *sync;
    ngx_http_mealapi_registry_t  *reg;

    sync = ev->data;
    reg = sync->reg;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        ngx_http_mealapi_registry_exit_process(reg);
        return;
    }

    now = ngx_http_mealapi_lease_clock();

    ngx_shmtx_lock(&reg->shpool->mutex);

    mine = reg->sh->owner == ngx_pid || reg->sh->owner == 0
           || reg->sh->lease_until < now;

    if (mine) {
        reg->sh->owner = ngx_pid;
        reg->sh->lease_until = now + NGX_HTTP_MEALAPI_LEASE;
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    if (mine && !sync->owner) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "mealapi registry: this worker syncs the registry");

        sync->owner = 1;
        sync->next_resync = ngx_current_msec + reg->resync;
        ngx_pgasync_listen_start(&sync->listen);

    } else if (!mine && sync->owner) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "mealapi registry: sync lease lost");

        ngx_http_mealapi_sync_stop(sync);
        ngx_http_mealapi_usage_release(ngx_http_cycle_get_module_main_conf(
                                           ngx_cycle, ngx_mealapi_module));
    }

    if (sync->owner) {
        if ((ngx_msec_int_t) (ngx_current_msec - sync->next_resync) >= 0) {
            sync->pending = 1;
        }

        ngx_http_mealapi_sync_next(sync);
    }

    if (sync->owner && reg->sh->loaded) {
        ngx_http_mealapi_usage_tick(ngx_http_cycle_get_module_main_conf(
                                        ngx_cycle, ngx_mealapi_module),
                                    ev->log);
    }

    ngx_add_timer(ev, NGX_HTTP_MEALAPI_TICK);
}


/* this worker no longer syncs: the query or the apply in hand is dropped */

static void
ngx_http_mealapi_sync_stop(ngx_http_mealapi_sync_t *sync)
{
    sync->owner = 0;
    ngx_pgasync_listen_stop(&sync->listen);

    if (sync->apply.posted) {
        ngx_delete_posted_event(&sync->apply);
    }

    if (sync->res) {
        PQclear(sync->res);
        sync->res = NULL;
    }

    ngx_pgasync_cancel(&sync->full_op);
    ngx_pgasync_cancel(&sync->change_op);

    sync->loading = 0;
    sync->pending = 0;
    ngx_memzero(sync->notified, sizeof(sync->notified));
}


static void
ngx_http_mealapi_sync_ready(ngx_pgasync_listen_t *ls)
{
    ngx_http_mealapi_sync_t  *sync;

    /* LISTEN is in force (again): whatever was missed is loaded now */

    sync = ls->data;
    sync->pending = 1;

    ngx_http_mealapi_sync_next(sync);
}


/*
 * A payload "<table>:<op>:<id>" from the triggers of 007_gateway_registry
 * asks for the rows of that certificate, tenant or plan only; anything
 * else, or more ids than one change holds, for the whole view.
 */

static void
ngx_http_mealapi_sync_notify(ngx_pgasync_listen_t *ls, const char *payload)
{
    u_char                   *p, *last;
    int64_t                   id;
    ngx_uint_t                i, kind;
    ngx_http_mealapi_ids_t   *ids;
    ngx_http_mealapi_sync_t  *sync;

    static ngx_str_t  tables[] = {
        ngx_string("tenant_certificates:"),
        ngx_string("tenants:"),
        ngx_string("plans:")
    };

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ls->db->log, 0,
                   "mealapi registry: notified \"%s\"", payload);

    sync = ls->data;

    if (sync->pending) {
        return;
    }

    p = (u_char *) payload;
    last = p + ngx_strlen(p);

    for (kind = 0; kind < NGX_HTTP_MEALAPI_KINDS; kind++) {
        if ((size_t) (last - p) > tables[kind].len
            && ngx_strncmp(p, tables[kind].data, tables[kind].len) == 0)
        {
            break;
        }
    }

    if (kind == NGX_HTTP_MEALAPI_KINDS) {
        goto full;
    }

    p = (u_char *) ngx_strlchr(p + tables[kind].len, last, ':');

    if (p == NULL || last == ++p
        || (size_t) (last - p) > NGX_INT64_LEN - 1)
    {
        goto full;
    }

    id = ngx_atoof(p, last - p);

    if (id == NGX_ERROR) {
        goto full;
    }

    ids = &sync->notified[kind];

    for (i = 0; i < ids->n; i++) {
        if (ids->id[i] == id) {
            goto next;
        }
    }

    if (ids->n == NGX_HTTP_MEALAPI_IDS) {
        goto full;
    }

    ids->id[ids->n++] = id;

    goto next;

full:

    sync->pending = 1;

next:

    ngx_http_mealapi_sync_next(sync);
}


/* starts the next query: the whole view if due, else the notified rows */

static void
ngx_http_mealapi_sync_next(ngx_http_mealapi_sync_t *sync)
{
    u_char                   *p;
    ngx_uint_t                i, k, n;
    ngx_pgasync_op_t         *op;
    ngx_http_mealapi_ids_t   *ids;

    if (sync->loading || !sync->owner) {
        return;
    }

    if (sync->pending) {

        /* the whole view answers every notification received so far */

        ngx_memzero(sync->notified, sizeof(sync->notified));

        if (ngx_pgasync_query(sync->reg->db, &sync->full_op) == NGX_BUSY) {
            return;
        }

        sync->pending = 0;
        sync->full = 1;
        sync->loading = 1;
        sync->next_resync = ngx_current_msec + sync->reg->resync;

        return;
    }

    n = 0;

    for (k = 0; k < NGX_HTTP_MEALAPI_KINDS; k++) {
        ids = &sync->notified[k];
        n += ids->n;

        p = ngx_cpymem(sync->arrays[k], "{", 1);

        for (i = 0; i < ids->n; i++) {
            p = ngx_sprintf(p, i ? ",%L" : "%L", ids->id[i]);
        }

        *p++ = '}';
        *p = '\0';
    }

    if (n == 0) {
        return;
    }

    ngx_memcpy(sync->changed, sync->notified, sizeof(sync->notified));
    ngx_memzero(sync->notified, sizeof(sync->notified));

    op = &sync->change_op;

    if (ngx_pgasync_query(sync->reg->db, op) == NGX_BUSY) {

        /* the notified ids are gone: the whole view repairs that */

        sync->pending = 1;
        return;
    }

    sync->full = 0;
    sync->loading = 1;
}


static void
ngx_http_mealapi_sync_loaded(ngx_pgasync_op_t *op)
{
    ngx_http_mealapi_sync_t    *sync;
    ngx_http_mealapi_reg_sh_t  *sh;

    sync = op->data;
    sh = sync->reg->sh;
    sync->loading = 0;

    if (op->status != NGX_PGASYNC_OK
        || PQnfields(op->res) != NGX_HTTP_MEALAPI_REGISTRY_NFIELDS)
    {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "mealapi registry: %s failed (%s), "
                      "the registry in force stays",
                      sync->full ? "load" : "change",
                      ngx_pgasync_status_text(op->status));

        ngx_http_mealapi_sync_retry(sync, op);
        return;
    }

    /*
     * Only the lease holder applies an answer: a worker that lost the
     * lease while its query ran would apply an older snapshot.  The
     * generation is reserved under the lock, so two never share one.
     */

    ngx_shmtx_lock(&sync->reg->shpool->mutex);

    if (sh->owner != ngx_pid
        || sh->lease_until < ngx_http_mealapi_lease_clock())
    {
        ngx_shmtx_unlock(&sync->reg->shpool->mutex);
        ngx_log_error(NGX_LOG_NOTICE, op->log, 0,
                      "mealapi registry: lease lost, load discarded");

        ngx_http_mealapi_sync_retry(sync, op);
        return;
    }

    sync->generation = ++sh->generation;

    ngx_shmtx_unlock(&sync->reg->shpool->mutex);

    sync->res = op->res;
    op->res = NULL;

    sync->row = 0;
    sync->bad = 0;
    sync->turns = 0;
    sync->query_time = op->query_time;
    sync->loading = 1;

    ngx_http_mealapi_sync_apply(&sync->apply);
}


/*
 * What a load that failed or was discarded would have brought in (the ids
 * it was asked for are gone) comes with the whole view, soon: not at the
 * next resync.  While the database is away, LISTEN's return loads it too.
 */

static void
ngx_http_mealapi_sync_retry(ngx_http_mealapi_sync_t *sync,
    ngx_pgasync_op_t *op)
{
    ngx_msec_t  retry;

    if (op && op->res) {
        PQclear(op->res);
        op->res = NULL;
    }

    if (sync->res) {
        PQclear(sync->res);
        sync->res = NULL;
    }

    sync->loading = 0;

    retry = ngx_min(sync->reg->resync, NGX_HTTP_MEALAPI_RETRY);

    if ((ngx_msec_int_t) (sync->next_resync - ngx_current_msec)
        > (ngx_msec_int_t) retry)
    {
        sync->next_resync = ngx_current_msec + retry;
    }
}


/*
 * The answer goes into the tree NGX_HTTP_MEALAPI_BATCH rows per turn of
 * the event loop, so that a registry of 100,000 certificates does not stop
 * this worker's requests while it is applied.
 */

static void
ngx_http_mealapi_sync_apply(ngx_event_t *ev)
{
    int                         n, last;
    ngx_uint_t                  lost;
    ngx_http_mealapi_sync_t    *sync;
    ngx_http_mealapi_reg_sh_t  *sh;

    sync = ev->data;
    sh = sync->reg->sh;

    /*
     * Between turns the lease may have run out (this worker stalled for
     * seconds) and another worker begun its own load: this answer is older
     */

    ngx_shmtx_lock(&sync->reg->shpool->mutex);

    lost = sh->owner != ngx_pid
           || sh->lease_until < ngx_http_mealapi_lease_clock()
           || sh->generation != sync->generation;

    ngx_shmtx_unlock(&sync->reg->shpool->mutex);

    if (lost) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "mealapi registry: lease lost, load discarded "
                      "after %d rows", sync->row);

        ngx_http_mealapi_sync_retry(sync, NULL);
        return;
    }

    n = PQntuples(sync->res);
    last = ngx_min(n, sync->row + NGX_HTTP_MEALAPI_BATCH);

    for ( /* void */ ; sync->row < last; sync->row++) {
        if (ngx_http_mealapi_sync_row(sync->reg, sync->res, sync->row,
                                      sync->generation)
            != NGX_OK)
        {
            sync->bad++;
        }
    }

    sync->turns++;

    if (sync->row < n) {
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    ngx_http_mealapi_sync_sweep(sync);

    if (sync->bad) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "mealapi registry: %ui of %d certificates not "
                      "loaded (invalid or zone full): they are refused",
                      sync->bad, n);
    }

    PQclear(sync->res);
    sync->res = NULL;
    sync->loading = 0;

    if (sync->full) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "mealapi registry: loaded %d certificates in %M ms, "
                      "applied in %ui turns", n, sync->query_time,
                      sync->turns);

        ngx_http_mealapi_quota_load(ngx_http_cycle_get_module_main_conf(
                                        ngx_cycle, ngx_mealapi_module),
                                    ev->log);

    } else {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "mealapi registry: changed %ui certificates, "
                      "%ui tenants, %ui plans: %d certificates in %M ms",
                      sync->changed[NGX_HTTP_MEALAPI_CERT].n,
                      sync->changed[NGX_HTTP_MEALAPI_TENANT].n,
                      sync->changed[NGX_HTTP_MEALAPI_PLAN].n,
                      n, sync->query_time);
    }

    ngx_http_mealapi_sync_next(sync);
}


/*
 * What the answer did not mark goes: after the whole view, every such
 * node; after a change, those of the named certificates, tenants and plans.
 * A node matches by the ids it was loaded with: when one transaction
 * changes a plan and moves a tenant off it, the change of the plan may
 * remove that tenant's certificates, refused (fail closed) until the
 * change of the tenant, notified by the same commit, brings them back.
 */

static void
ngx_http_mealapi_sync_sweep(ngx_http_mealapi_sync_t *sync)
{
    ngx_uint_t                    k, gone;
    ngx_queue_t                  *q, *next;
    ngx_rbtree_node_t            *node;
    ngx_http_mealapi_reg_sh_t    *sh;
    ngx_http_mealapi_reg_node_t  *rn;

    if (!sync->full) {
        for (k = 0; k < NGX_HTTP_MEALAPI_KINDS; k++) {
            ngx_qsort(sync->changed[k].id, sync->changed[k].n,
                      sizeof(int64_t), ngx_http_mealapi_sync_cmp_id);
        }
    }

    sh = sync->reg->sh;

    /*
     * Only the lease holder writes the tree and the queue, so the walk
     * needs no lock; each removal takes it, and checks first that no other
     * load has begun since (then that one sweeps, not this one).
     */

    for (q = ngx_queue_head(&sh->queue);
         q != ngx_queue_sentinel(&sh->queue);
         q = next)
    {
        next = ngx_queue_next(q);
        rn = ngx_queue_data(q, ngx_http_mealapi_reg_node_t, queue);

        if (rn->generation == sync->generation
            || (!sync->full && !ngx_http_mealapi_sync_changed(sync, rn)))
        {
            continue;
        }

        node = (ngx_rbtree_node_t *)
                   ((u_char *) rn - offsetof(ngx_rbtree_node_t, color));

        ngx_shmtx_lock(&sync->reg->shpool->mutex);

        gone = sh->generation != sync->generation || sh->owner != ngx_pid;

        if (!gone) {
            ngx_queue_remove(q);
            ngx_rbtree_delete(&sh->rbtree, node);
            ngx_slab_free_locked(sync->reg->shpool, node);
            sh->count--;
        }

        ngx_shmtx_unlock(&sync->reg->shpool->mutex);

        if (gone) {
            return;
        }
    }

    if (sync->full) {
        ngx_shmtx_lock(&sync->reg->shpool->mutex);

        if (sh->generation == sync->generation && sh->owner == ngx_pid) {
            sh->loaded = 1;
            sh->loaded_at = ngx_time();
        }

        ngx_shmtx_unlock(&sync->reg->shpool->mutex);
    }
}


static int
ngx_http_mealapi_sync_cmp_id(const void *one, const void *two)
{
    int64_t  a, b;

    a = *(const int64_t *) one;
    b = *(const int64_t *) two;

    return (a > b) - (a < b);
}


static ngx_uint_t
ngx_http_mealapi_sync_has_id(ngx_http_mealapi_ids_t *ids, int64_t id)
{
    ngx_uint_t  lo, hi, mid;

    lo = 0;
    hi = ids->n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (ids->id[mid] == id) {
            return 1;
        }

        if (ids->id[mid] < id) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return 0;
}


/* the node belongs to a certificate, tenant or plan of the change */

static ngx_uint_t
ngx_http_mealapi_sync_changed(ngx_http_mealapi_sync_t *sync,
    ngx_http_mealapi_reg_node_t *rn)
{
    return ngx_http_mealapi_sync_has_id(&sync->changed[NGX_HTTP_MEALAPI_CERT],
                                        rn->cert_id)
           || ngx_http_mealapi_sync_has_id(
                  &sync->changed[NGX_HTTP_MEALAPI_TENANT], rn->tenant_id)
           || ngx_http_mealapi_sync_has_id(
                  &sync->changed[NGX_HTTP_MEALAPI_PLAN], rn->plan_id);
}


static ngx_int_t
ngx_http_mealapi_sync_int(PGresult *res, int row, int col, int64_t *v)
{
    char     *s, *end;
    int64_t   n;

    if (PQgetisnull(res, row, col)) {
        return NGX_ERROR;
    }

    s = PQgetvalue(res, row, col);
    errno = 0;
    n = strtoll(s, &end, 10);

    if (errno || end == s || *end != '\0') {
        return NGX_ERROR;
    }

    *v = n;
    return NGX_OK;
}


/* one row of the registry view into the tree, marked with the generation */

static ngx_int_t
ngx_http_mealapi_sync_row(ngx_http_mealapi_registry_t *reg, PGresult *res,
    int row, ngx_uint_t generation)
{
    u_char                        fp[NGX_HTTP_MEALAPI_FP_LEN], *hex, *p;
    size_t                        size, slug, name, plan, routes;
    ngx_int_t                     b;
    ngx_uint_t                    i;
    int64_t                       not_before, not_after, tenant, rate, burst,
                                  quota, cert, plan_id;
    ngx_rbtree_node_t            *node;
    ngx_http_mealapi_reg_sh_t    *sh;
    ngx_http_mealapi_reg_node_t  *rn;

    hex = (u_char *) PQgetvalue(res, row, 0);

    if (PQgetlength(res, row, 0) != 2 * NGX_HTTP_MEALAPI_FP_LEN) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_MEALAPI_FP_LEN; i++) {
        b = ngx_hextoi(hex + 2 * i, 2);
        if (b == NGX_ERROR) {
            return NGX_ERROR;
        }

        fp[i] = (u_char) b;
    }

    if (ngx_http_mealapi_sync_int(res, row, 3, &not_before) != NGX_OK
        || ngx_http_mealapi_sync_int(res, row, 4, &not_after) != NGX_OK
        || ngx_http_mealapi_sync_int(res, row, 5, &tenant) != NGX_OK
        || ngx_http_mealapi_sync_int(res, row, 9, &rate) != NGX_OK
        || ngx_http_mealapi_sync_int(res, row, 10, &burst) != NGX_OK
        || ngx_http_mealapi_sync_int(res, row, 11, &quota) != NGX_OK
        || ngx_http_mealapi_sync_int(res, row, 14, &cert) != NGX_OK
        || ngx_http_mealapi_sync_int(res, row, 15, &plan_id) != NGX_OK)
    {
        return NGX_ERROR;
    }

    slug = PQgetlength(res, row, 6);
    name = PQgetlength(res, row, 7);
    plan = PQgetlength(res, row, 8);
    routes = PQgetlength(res, row, 13);

    if (slug > NGX_HTTP_MEALAPI_NAME_MAX - 1) {
        return NGX_ERROR;
    }

    /* names longer than the shm slots are cut, at a UTF-8 boundary */

    if (name > NGX_HTTP_MEALAPI_NAME_MAX - 1) {
        name = NGX_HTTP_MEALAPI_NAME_MAX - 1;
        p = (u_char *) PQgetvalue(res, row, 7);
        while (name && (p[name] & 0xc0) == 0x80) {
            name--;
        }
    }

    if (plan > NGX_HTTP_MEALAPI_NAME_MAX - 1
        || routes > NGX_HTTP_MEALAPI_ROUTES_MAX)
    {
        return NGX_ERROR;
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_mealapi_reg_node_t, data)
           + slug + name + plan + routes;

    sh = reg->sh;

    ngx_shmtx_lock(&reg->shpool->mutex);

    rn = ngx_http_mealapi_reg_find(sh, fp);

    if (rn && (rn->slug_len != slug || rn->name_len != name
               || rn->plan_len != plan || rn->routes_len != routes))
    {
        /* the strings changed size: a new node */

        ngx_queue_remove(&rn->queue);
        node = (ngx_rbtree_node_t *)
                   ((u_char *) rn - offsetof(ngx_rbtree_node_t, color));
        ngx_rbtree_delete(&sh->rbtree, node);
        ngx_slab_free_locked(reg->shpool, node);
        sh->count--;
        rn = NULL;
    }

    if (rn == NULL) {
        node = ngx_slab_alloc_locked(reg->shpool, size);

        if (node == NULL) {
            ngx_shmtx_unlock(&reg->shpool->mutex);
            return NGX_ERROR;
        }

        rn = (ngx_http_mealapi_reg_node_t *) &node->color;
        ngx_memcpy(rn->fp, fp, NGX_HTTP_MEALAPI_FP_LEN);
        node->key = ngx_http_mealapi_fp_key(fp);

        rn->slug_len = (u_char) slug;
        rn->name_len = (u_char) name;
        rn->plan_len = (u_char) plan;
        rn->routes_len = (u_short) routes;

        ngx_rbtree_insert(&sh->rbtree, node);
        ngx_queue_insert_head(&sh->queue, &rn->queue);
        sh->count++;
    }

    rn->generation = generation;
    rn->cert_revoked = PQgetvalue(res, row, 1)[0] == 't';
    rn->tenant_suspended = PQgetvalue(res, row, 2)[0] == 't';
    rn->all_routes = PQgetvalue(res, row, 12)[0] == 't';
    rn->not_before = (time_t) not_before;
    rn->not_after = (time_t) not_after;
    rn->cert_id = cert;
    rn->tenant_id = tenant;
    rn->plan_id = plan_id;
    rn->rate_milli = rate;
    rn->burst = burst;
    rn->quota = quota;

    p = ngx_cpymem(rn->data, PQgetvalue(res, row, 6), slug);
    p = ngx_cpymem(p, PQgetvalue(res, row, 7), name);
    p = ngx_cpymem(p, PQgetvalue(res, row, 8), plan);
    ngx_memcpy(p, PQgetvalue(res, row, 13), routes);

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return NGX_OK;
}
