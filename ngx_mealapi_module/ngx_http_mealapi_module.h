
/*
 * ngx_mealapi_module: the API gateway in front of the AI Nutrition-Pro
 * backend.
 */


#ifndef _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_
#define _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_pgasync.h"
#include "ngx_nutripro_problem.h"


typedef struct {
    ngx_array_t                    databases;   /* ngx_pgasync_db_t * */
} ngx_http_mealapi_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;
} ngx_http_mealapi_loc_conf_t;


extern ngx_module_t  ngx_mealapi_module;


ngx_int_t ngx_http_mealapi_fingerprint(ngx_http_request_t *r,
    ngx_str_t *hex);


#endif /* _NGX_HTTP_MEALAPI_MODULE_H_INCLUDED_ */
