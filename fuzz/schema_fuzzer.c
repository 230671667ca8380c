
/*
 * libFuzzer target for ngx_http_mealapi_schema.c.
 *
 * The input is a schema document, a NUL byte, and an instance document;
 * without a NUL the schema is validated against itself.  The schema is
 * parsed as the module parses schema files (duplicate keys rejected),
 * compiled, and the instance validated with different violation limits,
 * which must agree.  Crashes, leaks (LeakSanitizer), undefined behaviour
 * and broken invariants abort.
 *
 *     fuzz/run.sh SECONDS
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "ngx_http_mealapi_schema.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check_violations(const mealapi_violation_t *v, int n)
{
    int          i;
    size_t       len;
    const char  *p;

    for (i = 0; i < n; i++) {
        p = v[i].pointer;
        len = strnlen(p, MEALAPI_SCHEMA_POINTER_MAX);

        if (len == MEALAPI_SCHEMA_POINTER_MAX || (len && p[0] != '/')
            || v[i].keyword == NULL || v[i].keyword[0] == '\0')
        {
            abort();
        }

        /* a cut pointer never ends inside a UTF-8 sequence */

        if (len && ((unsigned char) p[len - 1] & 0xc0) == 0xc0) {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   n, n0, n3, i, depth;
    char                  err[256];
    json_t               *doc, *inst;
    size_t                slen;
    json_error_t          e;
    const uint8_t        *nul;
    mealapi_schema_t     *schema;
    mealapi_violation_t   v[16], v3[3];

    nul = memchr(data, '\0', size);
    slen = nul ? (size_t) (nul - data) : size;

    doc = json_loadb((const char *) data, slen,
                     JSON_REJECT_DUPLICATES|JSON_DECODE_ANY, &e);
    if (doc == NULL) {
        return 0;
    }

    memset(err, 'x', sizeof(err));

    schema = mealapi_schema_compile(doc, err, sizeof(err));

    if (memchr(err, '\0', sizeof(err)) == NULL
        || (schema == NULL && err[0] == '\0'))
    {
        abort();
    }

    /* the compiled schema must not refer to the document */

    if (nul == NULL) {
        inst = json_deep_copy(doc);

    } else {
        inst = json_loadb((const char *) nul + 1, size - slen - 1,
                          JSON_DECODE_ANY|JSON_ALLOW_NUL, &e);
    }

    json_decref(doc);

    if (schema == NULL) {
        json_decref(inst);
        return 0;
    }

    if (inst) {
        depth = mealapi_json_depth(inst);

        if (depth < 0 || depth > 4096) {
            abort();
        }

        n = mealapi_schema_validate(schema, inst, v, 16);
        n0 = mealapi_schema_validate(schema, inst, NULL, 0);
        n3 = mealapi_schema_validate(schema, inst, v3, 3);

        if (n < 0 || n > 17 || n0 != (n > 0) || n3 != (n < 4 ? n : 4)) {
            abort();
        }

        check_violations(v, n < 16 ? n : 16);
        check_violations(v3, n3 < 3 ? n3 : 3);

        for (i = 0; i < n3 && i < 3; i++) {
            if (strcmp(v[i].pointer, v3[i].pointer) != 0
                || strcmp(v[i].keyword, v3[i].keyword) != 0)
            {
                abort();
            }
        }

        json_decref(inst);
    }

    mealapi_schema_free(schema);

    return 0;
}
