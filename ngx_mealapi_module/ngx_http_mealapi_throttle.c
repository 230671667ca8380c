
/*
 * Per-tenant throttling: a GCRA rate limit with a burst, and a monthly
 * quota, in one shared-memory zone for all workers:
 *
 *     mealapi_throttle_zone NAME:SIZE;
 *     mealapi_throttle on | off | dry_run;
 *
 * Each tenant's node also holds its usage counters (ngx_http_mealapi_usage.c).
 * Nodes are never freed while the zone lives, so a request may keep a
 * pointer to its tenant's node from the access to the log phase.
 *
 * GCRA: T = 1 s / rate is the emission interval; a request of cost c passes
 * when max(tat, now) + c * T - now <= burst * T, and moves tat there.  So a
 * burst of N passes at once, the N+1th is refused, and one more passes
 * every T: no window edges.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mealapi_module.h"


static ngx_int_t ngx_http_mealapi_throttle_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_mealapi_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_mealapi_add_out(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
static int64_t ngx_http_mealapi_days(int64_t y, int64_t m, int64_t d);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


char *
ngx_http_mealapi_throttle_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_main_conf_t  *mmcf = conf;

    u_char                       *p;
    ssize_t                       size;
    ngx_str_t                    *value, name, s;
    ngx_http_mealapi_throttle_t  *th;

    if (mmcf->throttle) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');
    if (p == NULL) {
        return "needs NAME:SIZE";
    }

    name.data = value[1].data;
    name.len = p - name.data;
    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (name.len == 0 || size == NGX_ERROR) {
        return "needs NAME:SIZE";
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        return "is too small";
    }

    th = ngx_pcalloc(cf->pool, sizeof(ngx_http_mealapi_throttle_t));
    if (th == NULL) {
        return NGX_CONF_ERROR;
    }

    th->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                         &ngx_mealapi_module);
    if (th->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (th->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    th->shm_zone->init = ngx_http_mealapi_throttle_init_zone;
    th->shm_zone->data = th;

    mmcf->throttle = th;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mealapi_throttle_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mealapi_throttle_t  *oth = data;

    size_t                        len;
    ngx_http_mealapi_throttle_t  *th;

    th = shm_zone->data;

    if (oth) {
        /* reload: limits, quotas and unflushed usage carry over */
        th->sh = oth->sh;
        th->shpool = oth->shpool;
        return NGX_OK;
    }

    th->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        th->sh = th->shpool->data;
        return NGX_OK;
    }

    th->sh = ngx_slab_alloc(th->shpool, sizeof(ngx_http_mealapi_tenants_sh_t));
    if (th->sh == NULL) {
        return NGX_ERROR;
    }

    th->shpool->data = th->sh;

    ngx_rbtree_init(&th->sh->rbtree, &th->sh->sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&th->sh->queue);
    th->sh->month_loaded = 0;

    len = sizeof(" in mealapi_throttle_zone \"\"") + shm_zone->shm.name.len;

    th->shpool->log_ctx = ngx_slab_alloc(th->shpool, len);
    if (th->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(th->shpool->log_ctx, " in mealapi_throttle_zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}


ngx_int_t
ngx_http_mealapi_throttle_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_mealapi_header_filter;

    return NGX_OK;
}


/* the clock for quotas and usage days: "mealapi_clock_offset" moves it */

time_t
ngx_http_mealapi_now(ngx_http_request_t *r, ngx_msec_t *msec)
{
    ngx_time_t                    *tp;
    ngx_http_mealapi_main_conf_t  *mmcf;

    tp = ngx_timeofday();

    if (msec) {
        *msec = tp->msec;
    }

    if (r == NULL) {
        return tp->sec;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_mealapi_module);

    return tp->sec + mmcf->clock_offset;
}


/* days since 1970-01-01 of a proleptic Gregorian date */

static int64_t
ngx_http_mealapi_days(int64_t y, int64_t m, int64_t d)
{
    int64_t  era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


uint32_t
ngx_http_mealapi_month(time_t now)
{
    ngx_tm_t  tm;

    ngx_gmtime(now, &tm);

    return (uint32_t) (tm.ngx_tm_year * 12 + tm.ngx_tm_mon - 1);
}


/* caller holds the zone's mutex; creates the node when absent */

ngx_http_mealapi_tnode_t *
ngx_http_mealapi_tnode_get(ngx_http_mealapi_throttle_t *th, int64_t tenant_id,
    uint32_t month)
{
    ngx_rbtree_key_t           key;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_mealapi_tnode_t  *tn;

    key = (ngx_rbtree_key_t) tenant_id;

    node = th->sh->rbtree.root;
    sentinel = th->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key == node->key) {
            return (ngx_http_mealapi_tnode_t *) &node->color;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    node = ngx_slab_calloc_locked(th->shpool,
                                  offsetof(ngx_rbtree_node_t, color)
                                  + sizeof(ngx_http_mealapi_tnode_t));
    if (node == NULL) {
        return NULL;
    }

    node->key = key;
    tn = (ngx_http_mealapi_tnode_t *) &node->color;

    tn->tenant_id = tenant_id;
    tn->month = month;
    tn->month_loaded = (th->sh->month_loaded == month);

    ngx_rbtree_insert(&th->sh->rbtree, node);
    ngx_queue_insert_tail(&th->sh->queue, &tn->queue);

    return tn;
}


/*
 * Takes the request's cost from its tenant's rate and quota.  Also sets
 * ctx->tnode for metering, whether throttling is on or not.
 */

ngx_int_t
ngx_http_mealapi_throttle(ngx_http_request_t *r, ngx_http_mealapi_ctx_t *ctx,
    ngx_http_mealapi_loc_conf_t *mlcf)
{
    u_char                        *p;
    time_t                         now;
    int64_t                        now_us, T, limit, tat, new_tat, cost,
                                   quota, used, remaining, full, y, m;
    uint32_t                       month;
    ngx_tm_t                       tm;
    ngx_msec_t                     ms;
    ngx_uint_t                     rate_ok, quota_ok;
    time_t                         month_end, month_len;
    ngx_http_mealapi_tnode_t      *tn;
    ngx_http_mealapi_throttle_t   *th;
    ngx_http_mealapi_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_mealapi_module);
    th = mmcf->throttle;

    if (th == NULL) {
        return NGX_OK;
    }

    now = ngx_http_mealapi_now(r, &ms);
    now_us = ((int64_t) now * 1000 + (int64_t) ms) * 1000;
    month = ngx_http_mealapi_month(now);

    cost = ctx->route ? (int64_t) ctx->route->cost : 1;
    T = 1000000000LL / ngx_max(ctx->tenant.rate_milli, 1);
    limit = ngx_max(ctx->tenant.burst, 1) * T;
    quota = ctx->tenant.quota;

    ngx_shmtx_lock(&th->shpool->mutex);

    tn = ngx_http_mealapi_tnode_get(th, ctx->tenant.id, month);

    if (tn == NULL) {
        ngx_shmtx_unlock(&th->shpool->mutex);
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "mealapi: throttle zone \"%V\" is full",
                      &th->shm_zone->shm.name);
        return NGX_ERROR;
    }

    ctx->tnode = tn;

    if (mlcf->throttle == NGX_HTTP_MEALAPI_THROTTLE_OFF) {
        ngx_shmtx_unlock(&th->shpool->mutex);
        return NGX_OK;
    }

    if (tn->month != month) {
        tn->month = month;
        tn->month_used = 0;
        tn->flushed = 0;
        tn->month_loaded = 1;
    }

    tat = ngx_max(tn->tat, now_us);
    new_tat = tat + cost * T;

    rate_ok = (new_tat - now_us <= limit);
    quota_ok = (quota < 0 || tn->month_used + cost <= quota);

    if ((rate_ok && quota_ok)
        || mlcf->throttle == NGX_HTTP_MEALAPI_THROTTLE_DRY_RUN)
    {
        tn->tat = new_tat;
        tn->month_used += cost;
        tat = new_tat;
    }

    used = tn->month_used;

    ngx_shmtx_unlock(&th->shpool->mutex);

    /* what the headers say: true for the state after this request */

    remaining = (limit - (tat - now_us)) / T;
    if (remaining < 0) {
        remaining = 0;
    }

    full = (tat - now_us + 999999) / 1000000;
    if (full < 0) {
        full = 0;
    }

    ngx_gmtime(now, &tm);
    y = tm.ngx_tm_year;
    m = tm.ngx_tm_mon;
    month_end = (time_t) (ngx_http_mealapi_days(m == 12 ? y + 1 : y,
                                                m == 12 ? 1 : m + 1, 1)
                          * 86400);
    month_len = month_end - (time_t) (ngx_http_mealapi_days(y, m, 1) * 86400);

    p = ngx_pnalloc(r->pool, 2 * (sizeof("\"rate\";q=;w=, \"quota\";q=;w=")
                                  + 4 * NGX_INT64_LEN));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->ratelimit_policy.data = p;
    p = ngx_sprintf(p, "\"rate\";q=%L;w=%L", ngx_max(ctx->tenant.burst, 1),
                    ngx_max((limit + 999999) / 1000000, 1));

    if (quota >= 0) {
        p = ngx_sprintf(p, ", \"quota\";q=%L;w=%T", quota, month_len);
    }

    ctx->ratelimit_policy.len = p - ctx->ratelimit_policy.data;

    ctx->ratelimit.data = p;
    p = ngx_sprintf(p, "\"rate\";r=%L;t=%L", remaining, full);

    if (quota >= 0) {
        p = ngx_sprintf(p, ", \"quota\";r=%L;t=%T",
                        quota > used ? quota - used : 0, month_end - now);
    }

    ctx->ratelimit.len = p - ctx->ratelimit.data;

    if (rate_ok && quota_ok) {
        return NGX_OK;
    }

    if (!rate_ok) {
        ctx->refused = NGX_HTTP_MEALAPI_REFUSED_RATE;
        ctx->retry_after = (time_t) ((new_tat - limit - now_us + 999999)
                                     / 1000000);
        if (ctx->retry_after < 1) {
            ctx->retry_after = 1;
        }

    } else {
        ctx->refused = NGX_HTTP_MEALAPI_REFUSED_QUOTA;
        ctx->retry_after = month_end - now;
    }

    if (mlcf->throttle == NGX_HTTP_MEALAPI_THROTTLE_DRY_RUN) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mealapi: dry run: would refuse 429 %s, tenant \"%V\" "
                      "(%L)", rate_ok ? "quota-exhausted" : "rate-limited",
                      &ctx->tenant.slug, ctx->tenant.id);
        ctx->refused = 0;
        ctx->retry_after = 0;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_mealapi_header_filter(ngx_http_request_t *r)
{
    ngx_http_mealapi_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_mealapi_module);

    if (ctx && ctx->ratelimit.len) {
        if (ngx_http_mealapi_add_out(r, "RateLimit-Policy",
                                     &ctx->ratelimit_policy) != NGX_OK
            || ngx_http_mealapi_add_out(r, "RateLimit", &ctx->ratelimit)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_mealapi_add_out(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}
