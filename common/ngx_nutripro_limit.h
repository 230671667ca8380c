
/*
 * A keyed rate limiter in shared memory (GCRA with a burst), for keys
 * that come and go (client addresses, operator names): least recently
 * used keys are evicted, as in limit_req.  Hidden symbols: see
 * ngx_pgasync.h.
 */


#ifndef _NGX_NUTRIPRO_LIMIT_H_INCLUDED_
#define _NGX_NUTRIPRO_LIMIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#pragma GCC visibility push(hidden)


typedef struct ngx_nutripro_limit_s  ngx_nutripro_limit_t;


/*
 * At configuration time: a zone "name" of "size" bytes (at least
 * 8 * pagesize), tagged with the calling module.  NULL on error (logged).
 */
ngx_nutripro_limit_t *ngx_nutripro_limit_zone(ngx_conf_t *cf, ngx_str_t *name,
    size_t size, void *tag);

/*
 * Takes one unit for key (at most 255 bytes) at rate_milli requests per
 * second x 1000 (1 r/s = 1000), with a burst.
 * NGX_OK: allowed; NGX_BUSY: refused, *retry_after set (seconds, >= 1);
 * NGX_ERROR: no memory even after evicting (the caller fails closed).
 */
ngx_int_t ngx_nutripro_limit_take(ngx_nutripro_limit_t *limit, u_char *key,
    size_t len, ngx_uint_t rate_milli, ngx_uint_t burst, time_t *retry_after);


#pragma GCC visibility pop


#endif /* _NGX_NUTRIPRO_LIMIT_H_INCLUDED_ */
