
/*
 * Declared routes: deny by default.
 *
 *     mealapi_route NAME METHOD PATH [prefix] [cost=N] [schema=FILE]
 *                   [query=strict|lenient];
 *
 * PATH segments written "{name}" match one non-empty segment; "prefix"
 * matches PATH and anything below it ("/v1/files" matches "/v1/files/x").
 * GET also answers HEAD.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_mealapi_module.h"


static ngx_conf_bitmask_t  ngx_http_mealapi_methods[] = {
    { ngx_string("GET"), NGX_HTTP_GET },
    { ngx_string("POST"), NGX_HTTP_POST },
    { ngx_string("PUT"), NGX_HTTP_PUT },
    { ngx_string("PATCH"), NGX_HTTP_PATCH },
    { ngx_string("DELETE"), NGX_HTTP_DELETE },
    { ngx_null_string, 0 }
};


char *
ngx_http_mealapi_route_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mealapi_loc_conf_t  *mlcf = conf;

    u_char                    *p, *last;
    ngx_int_t                  n;
    ngx_str_t                 *value, file;
    ngx_uint_t                 i;
    ngx_conf_bitmask_t        *m;
    ngx_http_mealapi_route_t  *route, *r;

    value = cf->args->elts;

    if (cf->args->nelts < 4) {
        return "needs NAME METHOD PATH";
    }

    if (mlcf->routes == NULL) {
        mlcf->routes = ngx_array_create(cf->pool, 8,
                                        sizeof(ngx_http_mealapi_route_t));
        if (mlcf->routes == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    route = ngx_array_push(mlcf->routes);
    if (route == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(route, sizeof(ngx_http_mealapi_route_t));

    /* names travel in plans' route lists: plain tokens */

    route->name = value[1];

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == ':'
              || *p == '-' || *p == '/'))
        {
            return "has an invalid route name";
        }
    }

    for (m = ngx_http_mealapi_methods; m->name.len; m++) {
        if (m->name.len == value[2].len
            && ngx_strncmp(m->name.data, value[2].data, value[2].len) == 0)
        {
            route->method = m->mask;
            break;
        }
    }

    if (route->method == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown method \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    route->path = value[3];

    if (route->path.data[0] != '/') {
        return "needs a path starting with \"/\"";
    }

    last = route->path.data + route->path.len;

    for (p = route->path.data; p < last; p++) {
        if (*p == '{') {
            if (p[-1] != '/') {
                return "has \"{\" inside a segment";
            }

            while (p < last && *p != '}') {
                p++;
            }

            if (p == last || (p + 1 < last && p[1] != '/')) {
                return "has an unterminated \"{\" segment";
            }
        }
    }

    route->cost = 1;

    for (i = 4; i < cf->args->nelts; i++) {
        if (ngx_strcmp(value[i].data, "prefix") == 0) {
            route->prefix = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "schema=", 7) == 0) {
            file.data = value[i].data + 7;
            file.len = value[i].len - 7;

            if (ngx_http_mealapi_schema_conf(cf, route, &file)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "query=lenient") == 0) {
            route->query_lenient = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "query=strict") == 0) {
            route->query_lenient = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cost=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n < 1 || n > 1000000) {
                return "has an invalid cost";
            }

            route->cost = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    r = mlcf->routes->elts;

    for (i = 0; i < mlcf->routes->nelts - 1; i++) {
        if (r[i].name.len == route->name.len
            && ngx_strncmp(r[i].name.data, route->name.data,
                           route->name.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate route \"%V\"", &route->name);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* the route for the request; else NULL and the methods the path has */

ngx_http_mealapi_route_t *
ngx_http_mealapi_route_match(ngx_http_request_t *r, ngx_array_t *routes,
    ngx_uint_t *allow)
{
    u_char                    *p, *last, *s, *send;
    ngx_uint_t                 i, method;
    ngx_http_mealapi_route_t  *route;

    *allow = 0;

    if (routes == NULL) {
        return NULL;
    }

    method = (r->method == NGX_HTTP_HEAD) ? NGX_HTTP_GET : r->method;
    route = routes->elts;

    for (i = 0; i < routes->nelts; i++) {

        p = route[i].path.data;
        last = p + route[i].path.len;
        s = r->uri.data;
        send = s + r->uri.len;

        while (p < last && s < send) {

            if (*p == '{') {
                if (*s == '/') {
                    break;
                }

                while (s < send && *s != '/') {
                    s++;
                }

                while (*p != '}') {
                    p++;
                }

                p++;
                continue;
            }

            if (*p != *s) {
                break;
            }

            p++;
            s++;
        }

        if (p != last) {
            continue;
        }

        if (s != send) {
            /* "prefix" matches at a segment boundary */

            if (!route[i].prefix || (last[-1] != '/' && *s != '/')) {
                continue;
            }
        }

        if (route[i].method == method) {
            return &route[i];
        }

        *allow |= route[i].method;
    }

    return NULL;
}
