
/*
 * Schema validation throughput against jansson's parse alone, in the same
 * run, on the same bodies (see bench/validate.sh):
 *
 *     validate SCHEMA_DIR [MIN_MS]
 *     validate SCHEMA_DIR info       JIT support and the bulk's sample count
 *
 * Bodies, generated deterministically:
 *   1 KiB   one POST /v1/samples body against samples.create.json;
 *   64 KiB  {"samples": [...]}, a bulk upload of such samples, against
 *           samples.create.json wrapped as the items of a "samples" array.
 *
 * For each body: (a) json_loadb() + json_decref(); (b) the same plus
 * mealapi_schema_validate(); (c) as (b) plus mealapi_json_depth(), which
 * the module also runs.  Each measurement loops for at least MIN_MS
 * (default 400) of the thread's CPU time; the best of 5 rounds counts,
 * rounds interleaving (a), (b) and (c).  Overhead: (time(b) - time(a)) /
 * time(a).
 */


#define _POSIX_C_SOURCE  200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#define PCRE2_CODE_UNIT_WIDTH  8
#include <pcre2.h>

#include "ngx_http_mealapi_schema.h"


#define ROUNDS  5
#define BATCH   8


typedef struct {
    char    *data;
    size_t   len;
    size_t   size;
} buf_t;


static const char  *words[] = {
    "breakfast", "lunch", "dinner", "snack", "oats", "yoghurt", "walnuts",
    "lentils", "chickpeas", "quinoa", "spinach", "broccoli", "salmon",
    "olive", "oil", "whole-grain", "bread", "berries", "apple", "protein",
    "fibre", "portion", "grams", "serve", "with", "and", "a", "of", "the",
    "crème fraîche", "jalapeño", "açaí", "purée", "sauté", "müsli",
    "calories", "vitamin", "hydration", "water", "tea", "roasted", "baked",
    "steamed", "fresh", "seasonal", "vegetables", "herbs", "garlic",
    "lemon", "balanced", "blood", "sugar", "energy", "slowly", "week"
};

static const char  *tags[] = {
    "mediterranean", "high fibre", "low sodium", "family", "vegan",
    "vegetarian", "gluten-free", "quick", "budget", "meal prep",
    "heart health", "diabetes", "sports", "kids", "seasonal", "dairy-free"
};

static const char  *kinds[] = {
    "diet_introduction", "meal_plan", "recipe", "newsletter"
};

static const char  *languages[] = { "en", "en-GB", "pl", "de-DE", "fr-FR" };


static unsigned long  seed = 42;


static unsigned
rnd(unsigned n)
{
    seed = seed * 6364136223846793005UL + 1442695040888963407UL;

    return (unsigned) ((seed >> 33) % n);
}


static void
put(buf_t *b, const char *s)
{
    size_t  n;

    n = strlen(s);

    if (b->len + n + 1 > b->size) {
        b->size = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->size);

        if (b->data == NULL) {
            abort();
        }
    }

    memcpy(b->data + b->len, s, n + 1);
    b->len += n;
}


/* one sample object of about "size" bytes */

static void
sample(buf_t *b, size_t size)
{
    char    tmp[128];
    size_t  start, i, n, ntags;

    start = b->len;

    snprintf(tmp, sizeof(tmp), "{\"title\":\"%s week %u for busy parents\",",
             tags[rnd(16)], rnd(52) + 1);
    put(b, tmp);

    snprintf(tmp, sizeof(tmp), "\"kind\":\"%s\",\"language\":\"%s\",",
             kinds[rnd(4)], languages[rnd(5)]);
    put(b, tmp);

    put(b, "\"tags\":[");
    ntags = 3 + rnd(6);

    for (i = 0; i < ntags; i++) {
        snprintf(tmp, sizeof(tmp), "%s\"%s\"", i ? "," : "",
                 tags[(i * 5 + start) % 16]);
        put(b, tmp);
    }

    put(b, "],");

    snprintf(tmp, sizeof(tmp),
             "\"source_url\":\"https://blog.example.com/posts/%u?ref=feed\",",
             rnd(100000));
    put(b, tmp);

    put(b, "\"author_email\":\"anna.kowalska@dietitians.example.org\",");

    snprintf(tmp, sizeof(tmp),
             "\"written_at\":\"2026-%02u-%02uT%02u:%02u:00+01:00\",",
             rnd(12) + 1, rnd(28) + 1, rnd(24), rnd(60));
    put(b, tmp);

    snprintf(tmp, sizeof(tmp), "\"servings\":%u,", rnd(8) + 1);
    put(b, tmp);

    put(b, "\"text\":\"");

    i = 0;

    while (b->len - start + 20 < size - 3) {
        put(b, i ? (rnd(9) ? " " : ". ") : "");
        put(b, words[rnd(sizeof(words) / sizeof(words[0]))]);
        i++;
    }

    /* to the byte: a last word cut to fit */

    n = size - 3 - (b->len - start);
    snprintf(tmp, sizeof(tmp), " %.*s", (int) (n - 1),
             "wholesome-nourishing-vegetables");
    put(b, tmp);

    put(b, ".\"}");
}


/*
 * The thread's CPU time, not wall time: on a machine shared with other
 * work, time spent preempted does not count against either side.
 */

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* seconds per operation: 0 parse, 1 + validate, 2 + depth + validate */

static double
measure(int what, const buf_t *body, const mealapi_schema_t *schema,
    double min_s)
{
    int                   i, n;
    long                  ops;
    json_t               *j;
    double                start, t;
    json_error_t          e;
    mealapi_violation_t   v[4];

    ops = 0;
    start = now();

    do {
        for (i = 0; i < BATCH; i++) {
            j = json_loadb(body->data, body->len, JSON_REJECT_DUPLICATES, &e);
            if (j == NULL) {
                abort();
            }

            if (what == 2 && mealapi_json_depth(j) > 32) {
                abort();
            }

            if (what) {
                n = mealapi_schema_validate(schema, j, v, 4);
                if (n != 0) {
                    abort();
                }
            }

            json_decref(j);
        }

        ops += BATCH;
        t = now() - start;

    } while (t < min_s);

    return t / ops;
}


static void
run(const char *name, const buf_t *body, const mealapi_schema_t *schema,
    double min_s)
{
    int     r, w;
    double  best[3], t;

    best[0] = best[1] = best[2] = 1e9;

    for (r = 0; r < ROUNDS; r++) {
        for (w = 0; w < 3; w++) {
            t = measure(w, body, schema, min_s);

            if (t < best[w]) {
                best[w] = t;
            }
        }
    }

    printf("| %s | %zu | %.1f | %.1f | %.1f%% | %.1f | %.1f%% |\n",
           name, body->len,
           body->len / best[0] / 1e6, body->len / best[1] / 1e6,
           (best[1] - best[0]) / best[0] * 100,
           body->len / best[2] / 1e6,
           (best[2] - best[0]) / best[0] * 100);

    fflush(stdout);
}


int
main(int argc, char **argv)
{
    int                   n;
    char                  path[1024], err[256];
    buf_t                 small, large;
    json_t               *doc, *bulk;
    double                min_s;
    json_error_t          e;
    mealapi_schema_t     *schema, *bulk_schema;
    mealapi_violation_t   v[4];

    if (argc < 2) {
        fprintf(stderr, "usage: %s SCHEMA_DIR [MIN_MS | info]\n", argv[0]);
        return 2;
    }

    min_s = (argc > 2 ? atof(argv[2]) : 400) / 1000;

    snprintf(path, sizeof(path), "%s/samples.create.json", argv[1]);

    schema = mealapi_schema_load(path, err, sizeof(err));
    if (schema == NULL) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }

    /* the bulk variant: {"samples": [1..100 of samples.create.json]} */

    doc = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (doc == NULL) {
        fprintf(stderr, "%s: %s\n", path, e.text);
        return 1;
    }

    bulk = json_pack("{s:s, s:[s], s:b, s:{s:{s:s, s:i, s:i, s:o}}}",
                     "type", "object",
                     "required", "samples",
                     "additionalProperties", 0,
                     "properties", "samples",
                     "type", "array", "minItems", 1, "maxItems", 100,
                     "items", doc);

    bulk_schema = mealapi_schema_compile(bulk, err, sizeof(err));
    json_decref(bulk);

    if (bulk_schema == NULL) {
        fprintf(stderr, "bulk schema: %s\n", err);
        return 1;
    }

    memset(&small, 0, sizeof(buf_t));
    memset(&large, 0, sizeof(buf_t));

    sample(&small, 1024);

    put(&large, "{\"samples\":[");

    while (large.len < 65536 - 1400) {
        if (large.len > 12) {
            put(&large, ",");
        }

        sample(&large, 1300);
    }

    /* the last one fills up to 64 KiB */
    put(&large, ",");
    sample(&large, 65536 - 2 - large.len);
    put(&large, "]}");

    /* both valid; and a broken copy is caught */

    doc = json_loadb(small.data, small.len, 0, &e);
    n = mealapi_schema_validate(schema, doc, v, 4);
    json_decref(doc);

    if (n != 0) {
        fprintf(stderr, "1 KiB body invalid: %s %s\n", v[0].pointer,
                v[0].keyword);
        return 1;
    }

    doc = json_loadb(large.data, large.len, 0, &e);
    if (doc == NULL) {
        fprintf(stderr, "64 KiB body: %s\n", e.text);
        return 1;
    }

    n = mealapi_schema_validate(bulk_schema, doc, v, 4);

    if (n != 0) {
        fprintf(stderr, "64 KiB body invalid: %s %s\n", v[0].pointer,
                v[0].keyword);
        return 1;
    }

    json_object_set_new(json_array_get(json_object_get(doc, "samples"), 7),
                        "language", json_string("english"));

    n = mealapi_schema_validate(bulk_schema, doc, v, 4);
    json_decref(doc);

    if (n != 1 || strcmp(v[0].pointer, "/samples/7/language") != 0) {
        fprintf(stderr, "64 KiB body: broken copy not caught\n");
        return 1;
    }

    if (argc > 2 && strcmp(argv[2], "info") == 0) {
        /* for the record: JIT, and how many samples the bulk body has */

        doc = json_loadb(large.data, large.len, 0, &e);

        printf("jit=%s samples=%zu\n",
               pcre2_config(PCRE2_CONFIG_JIT, &n) >= 0 && n ? "yes" : "no",
               json_array_size(json_object_get(doc, "samples")));

        json_decref(doc);
        return 0;
    }

    printf("| body | bytes | (a) parse MB/s | (b) parse + validate MB/s "
           "| overhead (b) | (c) + depth MB/s | overhead (c) |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");

    run("1 KiB sample (samples.create.json)", &small, schema, min_s);
    run("64 KiB bulk of samples", &large, bulk_schema, min_s);

    mealapi_schema_free(schema);
    mealapi_schema_free(bulk_schema);
    free(small.data);
    free(large.data);

    return 0;
}
