
/*
 * Compiled JSON Schemas (a documented subset of draft 2020-12) for the
 * gateway's input validation.  Plain C over jansson and PCRE2, without
 * nginx, so that the fuzzer (fuzz/) links it alone.
 *
 * Compile once at configuration time; validate per request without
 * allocating (violations go into a caller's array).
 */


#ifndef _NGX_HTTP_MEALAPI_SCHEMA_H_INCLUDED_
#define _NGX_HTTP_MEALAPI_SCHEMA_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>


#pragma GCC visibility push(hidden)


#define MEALAPI_SCHEMA_POINTER_MAX  128


typedef struct mealapi_schema_s  mealapi_schema_t;


typedef struct {
    /* JSON pointer (RFC 6901) into the instance, "" for the root; cut at
       MEALAPI_SCHEMA_POINTER_MAX - 1 bytes (at a UTF-8 boundary) */
    char                      pointer[MEALAPI_SCHEMA_POINTER_MAX];
    const char               *keyword;      /* static: "type", "minLength" */
} mealapi_violation_t;


/*
 * Compiles a schema document.  On error returns NULL and writes
 * "<JSON pointer into the schema>: <message>" into err (NUL-terminated).
 * Unknown keywords, wrong keyword types, invalid patterns, unresolvable
 * $ref are errors.
 */
mealapi_schema_t *mealapi_schema_compile(json_t *doc, char *err,
    size_t errlen);

/* reads and compiles a file; err as above, prefixed by nothing */
mealapi_schema_t *mealapi_schema_load(const char *path, char *err,
    size_t errlen);

void mealapi_schema_free(mealapi_schema_t *schema);

/*
 * Validates; returns the number of violations found (0: valid).  At most
 * max are written to v (v may be NULL when max is 0); the count returned
 * may be larger than max but is bounded (validation stops early once
 * max + 1 are known).  Never echoes instance values.
 */
int mealapi_schema_validate(const mealapi_schema_t *schema,
    const json_t *instance, mealapi_violation_t *v, int max);

/* nesting depth of a parsed document (a scalar is 0) */
int mealapi_json_depth(const json_t *json);


#pragma GCC visibility pop


#endif /* _NGX_HTTP_MEALAPI_SCHEMA_H_INCLUDED_ */
