
/*
 * A keyed rate limiter in shared memory, modelled on limit_req.
 *
 * The zone holds an rbtree of nodes keyed by ngx_crc32_short() of the key
 * (ties broken by the key bytes) and a queue of the same nodes, least
 * recently used last.  A node keeps the GCRA state of its key: tat, the
 * theoretical arrival time, in microseconds of wall time (ngx_timeofday(),
 * so that all workers agree; ngx_current_msec is per process).
 *
 * GCRA: T = 1 s / rate is the emission interval; a request passes when
 * max(tat, now) + T - now <= burst * T, and moves tat there.  So a burst of
 * N passes at once, the N+1th is refused, and one more passes every T.
 *
 * A node whose tat is past is stale: its bucket is full again, exactly as
 * if the key had never been seen, so dropping it loses nothing.  Before a
 * node is allocated, at most two stale nodes are dropped from the queue's
 * tail; when the zone is full anyway, the least recently used node is
 * evicted, as limit_req does.  All nodes are the same size, with room for
 * the longest key (512 bytes on 64-bit platforms: about 2000 keys a
 * megabyte), so that the room one node leaves always fits another.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_nutripro_limit.h"


#define NGX_NUTRIPRO_LIMIT_KEY_MAX   255

/* 1e15 us, about 31 years: burst * T stays far from int64 overflow */
#define NGX_NUTRIPRO_LIMIT_MAX_US    1000000000000000LL


/* starts at the rbtree node's color field, as in limit_req */

typedef struct {
    u_char                       color;
    u_char                       dummy;
    u_short                      len;
    ngx_queue_t                  queue;
    int64_t                      tat;       /* microseconds since the epoch */
    u_char                       data[1];
} ngx_nutripro_limit_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;     /* most recently used first */
} ngx_nutripro_limit_sh_t;


struct ngx_nutripro_limit_s {
    ngx_shm_zone_t              *shm_zone;
    ngx_slab_pool_t             *shpool;
    ngx_nutripro_limit_sh_t     *sh;
};


static ngx_int_t ngx_nutripro_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_nutripro_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_nutripro_limit_node_t *ngx_nutripro_limit_lookup(
    ngx_nutripro_limit_t *limit, ngx_uint_t hash, u_char *key, size_t len);
static ngx_nutripro_limit_node_t *ngx_nutripro_limit_alloc(
    ngx_nutripro_limit_t *limit, ngx_uint_t hash, u_char *key, size_t len,
    int64_t now);
static void ngx_nutripro_limit_expire(ngx_nutripro_limit_t *limit,
    int64_t now, ngx_uint_t force);


ngx_nutripro_limit_t *
ngx_nutripro_limit_zone(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    void *tag)
{
    ngx_shm_zone_t        *shm_zone;
    ngx_nutripro_limit_t  *limit;

    if (name->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty zone name");
        return NULL;
    }

    if (size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small: at least %uz bytes",
                           name, 8 * ngx_pagesize);
        return NULL;
    }

    limit = ngx_pcalloc(cf->pool, sizeof(ngx_nutripro_limit_t));
    if (limit == NULL) {
        return NULL;
    }

    /* logs itself when the name is declared for another tag or size */

    shm_zone = ngx_shared_memory_add(cf, name, size, tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", name);
        return NULL;
    }

    shm_zone->init = ngx_nutripro_limit_init_zone;
    shm_zone->data = limit;

    limit->shm_zone = shm_zone;

    return limit;
}


static ngx_int_t
ngx_nutripro_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_nutripro_limit_t  *olimit = data;

    size_t                 len;
    ngx_nutripro_limit_t  *limit;

    limit = shm_zone->data;

    if (olimit) {
        /* reload: the keys and their state carry over */
        limit->sh = olimit->sh;
        limit->shpool = olimit->shpool;
        return NGX_OK;
    }

    limit->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        limit->sh = limit->shpool->data;
        return NGX_OK;
    }

    limit->sh = ngx_slab_alloc(limit->shpool, sizeof(ngx_nutripro_limit_sh_t));
    if (limit->sh == NULL) {
        return NGX_ERROR;
    }

    limit->shpool->data = limit->sh;

    ngx_rbtree_init(&limit->sh->rbtree, &limit->sh->sentinel,
                    ngx_nutripro_limit_rbtree_insert_value);
    ngx_queue_init(&limit->sh->queue);

    len = sizeof(" in nutripro limit zone \"\"") + shm_zone->shm.name.len;

    limit->shpool->log_ctx = ngx_slab_alloc(limit->shpool, len);
    if (limit->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(limit->shpool->log_ctx, " in nutripro limit zone \"%V\"%Z",
                &shm_zone->shm.name);

    /*
     * a full zone is the normal state here (eviction makes room), and the
     * slab allocator would log under the mutex: failures are logged by
     * ngx_nutripro_limit_take() once eviction did not help
     */

    limit->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_nutripro_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_nutripro_limit_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            ln = (ngx_nutripro_limit_node_t *) &node->color;
            lnt = (ngx_nutripro_limit_node_t *) &temp->color;

            p = (ngx_memn2cmp(ln->data, lnt->data, ln->len, lnt->len) < 0)
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


ngx_int_t
ngx_nutripro_limit_take(ngx_nutripro_limit_t *limit, u_char *key,
    size_t len, ngx_uint_t rate_milli, ngx_uint_t burst, time_t *retry_after)
{
    int64_t                     now, T, max, tat, wait;
    uint32_t                    hash;
    ngx_time_t                 *tp;
    ngx_nutripro_limit_node_t  *ln;

    if (len > NGX_NUTRIPRO_LIMIT_KEY_MAX) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "nutripro limit: a key of %uz bytes for zone \"%V\", "
                      "at most %d allowed", len,
                      &limit->shm_zone->shm.name, NGX_NUTRIPRO_LIMIT_KEY_MAX);
        return NGX_ERROR;
    }

    /* everything but the lookup and the update is done unlocked */

    tp = ngx_timeofday();
    now = ((int64_t) tp->sec * 1000 + (int64_t) tp->msec) * 1000;

    /* T in microseconds: 1 s * 1000 / rate_milli; 0 is taken as 1 */

    T = 1000000000LL / (int64_t) ngx_max(rate_milli, 1);
    if (T == 0) {
        T = 1;
    }

    /* a burst of 0 would refuse everything: it is taken as 1 */

    burst = ngx_max(burst, 1);

    if ((int64_t) burst > NGX_NUTRIPRO_LIMIT_MAX_US / T) {
        max = NGX_NUTRIPRO_LIMIT_MAX_US;

    } else {
        max = (int64_t) burst * T;
    }

    hash = ngx_crc32_short(key, len);

    ngx_shmtx_lock(&limit->shpool->mutex);

    ln = ngx_nutripro_limit_lookup(limit, hash, key, len);

    if (ln == NULL) {
        ln = ngx_nutripro_limit_alloc(limit, hash, key, len, now);

        if (ln == NULL) {
            ngx_shmtx_unlock(&limit->shpool->mutex);

            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "nutripro limit: could not allocate a node "
                          "in zone \"%V\" even after evicting",
                          &limit->shm_zone->shm.name);
            return NGX_ERROR;
        }
    }

    tat = ngx_max(ln->tat, now) + T;

    if (tat - now <= max) {
        ln->tat = tat;
        ngx_shmtx_unlock(&limit->shpool->mutex);
        return NGX_OK;
    }

    ngx_shmtx_unlock(&limit->shpool->mutex);

    /* the time until this request would have passed, rounded up */

    wait = tat - max - now;

    *retry_after = (time_t) ((wait + 999999) / 1000000);

    if (*retry_after < 1) {
        *retry_after = 1;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "nutripro limit: refused in zone \"%V\", rate %ui.%03ui, "
                   "retry after %T",
                   &limit->shm_zone->shm.name, rate_milli / 1000,
                   rate_milli % 1000, *retry_after);

    return NGX_BUSY;
}


/* the mutex is held; a hit becomes the most recently used node */

static ngx_nutripro_limit_node_t *
ngx_nutripro_limit_lookup(ngx_nutripro_limit_t *limit, ngx_uint_t hash,
    u_char *key, size_t len)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_nutripro_limit_node_t  *ln;

    node = limit->sh->rbtree.root;
    sentinel = limit->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        ln = (ngx_nutripro_limit_node_t *) &node->color;

        rc = ngx_memn2cmp(key, ln->data, len, (size_t) ln->len);

        if (rc == 0) {
            ngx_queue_remove(&ln->queue);
            ngx_queue_insert_head(&limit->sh->queue, &ln->queue);
            return ln;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* the mutex is held; the new node's bucket is full (tat = now) */

static ngx_nutripro_limit_node_t *
ngx_nutripro_limit_alloc(ngx_nutripro_limit_t *limit, ngx_uint_t hash,
    u_char *key, size_t len, int64_t now)
{
    size_t                      size;
    ngx_rbtree_node_t          *node;
    ngx_nutripro_limit_node_t  *ln;

    /*
     * Every node has room for the longest key, so that all nodes share one
     * slab size class: then the slot freed by evicting any node fits the
     * next one.  With sizes by key length, a zone whose pages went to one
     * class (say, 64-byte keys) could not place a node of another class
     * (an address) even after evicting, and fails closed.
     */

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_nutripro_limit_node_t, data)
           + NGX_NUTRIPRO_LIMIT_KEY_MAX;

    ngx_nutripro_limit_expire(limit, now, 0);

    node = ngx_slab_alloc_locked(limit->shpool, size);

    if (node == NULL) {
        ngx_nutripro_limit_expire(limit, now, 1);

        node = ngx_slab_alloc_locked(limit->shpool, size);
        if (node == NULL) {
            return NULL;
        }
    }

    node->key = hash;

    ln = (ngx_nutripro_limit_node_t *) &node->color;

    ln->len = (u_short) len;
    ln->tat = now;
    ngx_memcpy(ln->data, key, len);

    ngx_rbtree_insert(&limit->sh->rbtree, node);
    ngx_queue_insert_head(&limit->sh->queue, &ln->queue);

    return ln;
}


/*
 * The mutex is held.  Drops at most two stale nodes from the tail of the
 * queue; with "force", the least recently used node first, stale or not.
 */

static void
ngx_nutripro_limit_expire(ngx_nutripro_limit_t *limit, int64_t now,
    ngx_uint_t force)
{
    ngx_uint_t                  n;
    ngx_queue_t                *q;
    ngx_rbtree_node_t          *node;
    ngx_nutripro_limit_node_t  *ln;

    for (n = force ? 0 : 1; n < 3; n++) {

        if (ngx_queue_empty(&limit->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&limit->sh->queue);

        ln = ngx_queue_data(q, ngx_nutripro_limit_node_t, queue);

        if (n != 0 && ln->tat > now) {
            /* the least recently used node is still limited: stop there */
            return;
        }

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&limit->sh->rbtree, node);

        ngx_slab_free_locked(limit->shpool, node);
    }
}
