
/*
 * JSON Schema validation: the subset of draft 2020-12 documented in
 * conf/schemas/README.md.  A schema document compiles once into a tree of
 * nodes; validation walks a parsed body against it without allocating.
 *
 * A node holds what one schema object asks: a bitmask of the keywords
 * present (validation tests only those), the allowed types as a bitmask,
 * the declared and required properties in one small hash table (an
 * object's members are walked once, each looked up there), compiled
 * patterns with their match data, and the target of its $ref.  $ref chains
 * are acyclic (checked at compile time) and followed in a loop, so the
 * recursion only follows the instance down.
 *
 * Instance pointers are not built while descending: each level keeps a
 * frame on the C stack that links to its parent's, and a pointer is
 * written out only for a violation.
 */


#define PCRE2_CODE_UNIT_WIDTH  8

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcre2.h>

#include "ngx_http_mealapi_schema.h"


/* instance types, as bits of node->types */
#define MEALAPI_T_NULL          0x01
#define MEALAPI_T_BOOLEAN       0x02
#define MEALAPI_T_OBJECT        0x04
#define MEALAPI_T_ARRAY         0x08
#define MEALAPI_T_NUMBER        0x10
#define MEALAPI_T_INTEGER       0x20
#define MEALAPI_T_STRING        0x40

/* keywords present, as bits of node->keywords */
#define MEALAPI_K_TYPE          0x000001
#define MEALAPI_K_ENUM          0x000002
#define MEALAPI_K_CONST         0x000004
#define MEALAPI_K_MINPROPS      0x000010
#define MEALAPI_K_MAXPROPS      0x000020
#define MEALAPI_K_MEMBERS       0x000040    /* properties, required, addl. */
#define MEALAPI_K_MINITEMS      0x000100
#define MEALAPI_K_MAXITEMS      0x000200
#define MEALAPI_K_UNIQUE        0x000400
#define MEALAPI_K_ITEMS         0x000800
#define MEALAPI_K_MINLEN        0x001000
#define MEALAPI_K_MAXLEN        0x002000
#define MEALAPI_K_PATTERN       0x004000
#define MEALAPI_K_FORMAT        0x008000
#define MEALAPI_K_MINIMUM       0x010000
#define MEALAPI_K_MAXIMUM       0x020000
#define MEALAPI_K_EXMIN         0x040000
#define MEALAPI_K_EXMAX         0x080000
#define MEALAPI_K_MULTIPLE      0x100000

#define MEALAPI_K_OBJECT                                                      \
    (MEALAPI_K_MINPROPS|MEALAPI_K_MAXPROPS|MEALAPI_K_MEMBERS)
#define MEALAPI_K_ARRAY                                                       \
    (MEALAPI_K_MINITEMS|MEALAPI_K_MAXITEMS|MEALAPI_K_UNIQUE|MEALAPI_K_ITEMS)
#define MEALAPI_K_STRING                                                      \
    (MEALAPI_K_MINLEN|MEALAPI_K_MAXLEN|MEALAPI_K_PATTERN|MEALAPI_K_FORMAT)
#define MEALAPI_K_NUMBER                                                      \
    (MEALAPI_K_MINIMUM|MEALAPI_K_MAXIMUM|MEALAPI_K_EXMIN|MEALAPI_K_EXMAX      \
     |MEALAPI_K_MULTIPLE)

#define MEALAPI_FORMAT_UUID       1
#define MEALAPI_FORMAT_DATE_TIME  2
#define MEALAPI_FORMAT_EMAIL      3

/* a bound on backtracking per pattern match (PCRE2's match limit) */
#define MEALAPI_MATCH_LIMIT     1000000

/*
 * A $ref chain may hold more than one node that applies subschemas to an
 * object's members or an array's items; each application after the first
 * evaluates the same value again, which recursion can make exponential.
 * Such repeated evaluations are counted, and validation fails ("$ref")
 * beyond this many.
 */
#define MEALAPI_REPEAT_BUDGET   262144

/* uniqueItems: a hash table on the stack; "maxItems" must fit half of it */
#define MEALAPI_UNIQUE_SLOTS    2048
#define MEALAPI_UNIQUE_MAX      (MEALAPI_UNIQUE_SLOTS / 2)

#define MEALAPI_CPOINTER_MAX    512


/* for a function with a large frame, kept out of the recursion's frames */
#if defined(__GNUC__)
#define MEALAPI_NOINLINE        __attribute__ ((noinline))
#else
#define MEALAPI_NOINLINE
#endif


typedef struct mealapi_node_s  mealapi_node_t;


typedef struct {
    const char               *name;
    size_t                    len;
    mealapi_node_t           *schema;       /* NULL: any value */
    unsigned                  declared:1;   /* in "properties" */
    unsigned                  required:1;
} mealapi_prop_t;


typedef struct {
    const char               *data;
    size_t                    len;
} mealapi_str_t;


typedef struct {
    json_int_t                i;
    double                    d;
    int                       integer;      /* the value is i, else d */
} mealapi_num_t;


struct mealapi_node_s {
    unsigned                  keywords;     /* MEALAPI_K_* */
    unsigned                  types;        /* MEALAPI_T_*, for "type" */
    unsigned                  reject:1;     /* the schema false */
    unsigned                  applies:1;    /* members get subschemas */
    unsigned                  format:2;     /* MEALAPI_FORMAT_* */
    unsigned                  has_ref:1;
    unsigned                  ref_root:1;   /* "$ref": "#" */

    mealapi_node_t           *ref;

    /* objects: declared and required names, hashed by mealapi_key_hash() */
    mealapi_prop_t           *props;
    uint32_t                 *slots;        /* prop index + 1; 0: empty */
    char                     *names;
    uint32_t                  nprops;
    uint32_t                  mask;
    uint32_t                  nrequired;
    uint32_t                 *required;     /* prop indices, in order */
    mealapi_node_t           *additional;   /* NULL: any */
    size_t                    min_props;
    size_t                    max_props;

    /* arrays */
    mealapi_node_t           *items;
    size_t                    min_items;
    size_t                    max_items;

    /* strings */
    size_t                    min_len;
    size_t                    max_len;
    pcre2_code               *re;
    pcre2_match_data         *match;

    /* numbers */
    mealapi_num_t             minimum;
    mealapi_num_t             maximum;
    mealapi_num_t             exmin;
    mealapi_num_t             exmax;
    mealapi_num_t             multiple;

    json_t                   *constant;
    json_t                   *enumeration;
    mealapi_str_t            *enum_strs;    /* when all enum values are */
    size_t                    nenum_strs;   /* strings, else NULL */

    /* compile time */
    json_t                   *c_properties;
    json_t                   *c_required;
    char                     *ref_name;
    size_t                    ref_len;
    char                     *ref_pointer;  /* of the "$ref", for errors */
    uintptr_t                 mark;

    mealapi_node_t           *next;         /* all nodes, for freeing */
};


typedef struct {
    char                     *name;
    size_t                    len;
    mealapi_node_t           *node;
} mealapi_def_t;


struct mealapi_schema_s {
    mealapi_node_t           *root;
    mealapi_node_t           *nodes;
    mealapi_def_t            *defs;
    size_t                    ndefs;
    pcre2_match_context      *mctx;
};


typedef struct {
    char                     *buf;
    size_t                    size;         /* with the NUL */
    size_t                    len;
    int                       full;
} mealapi_pbuf_t;


typedef struct {
    mealapi_schema_t         *schema;
    char                     *err;
    size_t                    errlen;
    mealapi_pbuf_t            pb;
    mealapi_node_t           *top;          /* the root */
    char                      pointer[MEALAPI_CPOINTER_MAX];
} mealapi_compile_t;


typedef int (*mealapi_keyword_pt)(mealapi_compile_t *cc,
    mealapi_node_t *node, json_t *value);


typedef struct {
    const char               *name;
    mealapi_keyword_pt        handler;      /* NULL: an annotation */
} mealapi_keyword_t;


typedef struct mealapi_frame_s  mealapi_frame_t;

struct mealapi_frame_s {
    const mealapi_frame_t    *parent;       /* NULL: a child of the root */
    const char               *key;          /* NULL: an array index */
    size_t                    len;          /* key length, or the index */
};


typedef struct {
    mealapi_violation_t      *v;
    int                       max;
    int                       n;
    long                      budget;
    pcre2_match_context      *mctx;
} mealapi_validate_t;


static mealapi_node_t *mealapi_compile_node(mealapi_compile_t *cc,
    json_t *schema);
static int mealapi_compile_members(mealapi_compile_t *cc,
    mealapi_node_t *node);
static int mealapi_compile_refs(mealapi_compile_t *cc);
static void mealapi_compile_error(mealapi_compile_t *cc, const char *fmt,
    ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 2, 3)))
#endif
    ;
static size_t mealapi_compile_push(mealapi_compile_t *cc, const char *key,
    size_t len);
static void mealapi_compile_pop(mealapi_compile_t *cc, size_t saved);
static int mealapi_get_size(mealapi_compile_t *cc, json_t *value,
    size_t *size);
static int mealapi_get_number(mealapi_compile_t *cc, json_t *value,
    mealapi_num_t *num);
static int mealapi_is_trivial(const mealapi_node_t *node);
static void mealapi_node_free(mealapi_node_t *node);

static int mealapi_kw_type(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_enum(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_const(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_properties(mealapi_compile_t *cc,
    mealapi_node_t *node, json_t *value);
static int mealapi_kw_required(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_additional(mealapi_compile_t *cc,
    mealapi_node_t *node, json_t *value);
static int mealapi_kw_min_props(mealapi_compile_t *cc,
    mealapi_node_t *node, json_t *value);
static int mealapi_kw_max_props(mealapi_compile_t *cc,
    mealapi_node_t *node, json_t *value);
static int mealapi_kw_items(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_min_items(mealapi_compile_t *cc,
    mealapi_node_t *node, json_t *value);
static int mealapi_kw_max_items(mealapi_compile_t *cc,
    mealapi_node_t *node, json_t *value);
static int mealapi_kw_unique(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_min_len(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_max_len(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_pattern(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_format(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_minimum(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_maximum(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_exmin(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_exmax(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_multiple(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_ref(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);
static int mealapi_kw_defs(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value);

static int mealapi_validate_node(mealapi_validate_t *vc,
    const mealapi_node_t *node, const json_t *inst,
    const mealapi_frame_t *frame, const char *via);
static int mealapi_validate_object(mealapi_validate_t *vc,
    const mealapi_node_t *node, const json_t *inst,
    const mealapi_frame_t *frame, int repeat);
static int mealapi_validate_array(mealapi_validate_t *vc,
    const mealapi_node_t *node, const json_t *inst,
    const mealapi_frame_t *frame, int repeat);
static int mealapi_validate_string(mealapi_validate_t *vc,
    const mealapi_node_t *node, const json_t *inst,
    const mealapi_frame_t *frame);
static int mealapi_validate_number(mealapi_validate_t *vc,
    const mealapi_node_t *node, const json_t *inst,
    const mealapi_frame_t *frame);
static int mealapi_violation(mealapi_validate_t *vc,
    const mealapi_frame_t *frame, const char *keyword);
static const mealapi_prop_t *mealapi_prop_find(const mealapi_node_t *node,
    const char *key, size_t len);
static uint32_t mealapi_key_hash(const char *key, size_t len);
static int mealapi_enum_match(const mealapi_node_t *node, const json_t *inst);
static int mealapi_unique(const json_t *array, size_t n) MEALAPI_NOINLINE;
static int mealapi_equal(const json_t *a, const json_t *b);
static uint32_t mealapi_hash(const json_t *json);
static int mealapi_is_number(const json_t *json, mealapi_num_t *num);
static int mealapi_num_cmp(const mealapi_num_t *a, const mealapi_num_t *b);
static int mealapi_cmp_int_real(json_int_t i, double d);
static int mealapi_real_is_integer(double d);
static int mealapi_multiple_of(const mealapi_num_t *x,
    const mealapi_num_t *m);
static size_t mealapi_utf8_length(const char *s, size_t len);
static int mealapi_format_uuid(const unsigned char *s, size_t len);
static int mealapi_format_date_time(const unsigned char *s, size_t len);
static int mealapi_format_email(const unsigned char *s, size_t len);
static void mealapi_pointer_add(mealapi_pbuf_t *pb, const char *s,
    size_t len);
static void mealapi_pointer_frame(mealapi_pbuf_t *pb,
    const mealapi_frame_t *frame);


static const mealapi_keyword_t  mealapi_keywords[] = {
    { "type", mealapi_kw_type },
    { "enum", mealapi_kw_enum },
    { "const", mealapi_kw_const },
    { "properties", mealapi_kw_properties },
    { "required", mealapi_kw_required },
    { "additionalProperties", mealapi_kw_additional },
    { "minProperties", mealapi_kw_min_props },
    { "maxProperties", mealapi_kw_max_props },
    { "items", mealapi_kw_items },
    { "minItems", mealapi_kw_min_items },
    { "maxItems", mealapi_kw_max_items },
    { "uniqueItems", mealapi_kw_unique },
    { "minLength", mealapi_kw_min_len },
    { "maxLength", mealapi_kw_max_len },
    { "pattern", mealapi_kw_pattern },
    { "format", mealapi_kw_format },
    { "minimum", mealapi_kw_minimum },
    { "maximum", mealapi_kw_maximum },
    { "exclusiveMinimum", mealapi_kw_exmin },
    { "exclusiveMaximum", mealapi_kw_exmax },
    { "multipleOf", mealapi_kw_multiple },
    { "$ref", mealapi_kw_ref },
    { "$defs", mealapi_kw_defs },

    /* annotations: accepted, ignored */
    { "$schema", NULL },
    { "$id", NULL },
    { "$comment", NULL },
    { "title", NULL },
    { "description", NULL },
    { "examples", NULL },
    { "default", NULL },

    { NULL, NULL }
};


static const struct {
    const char               *name;
    unsigned                  mask;
} mealapi_types[] = {
    { "null", MEALAPI_T_NULL },
    { "boolean", MEALAPI_T_BOOLEAN },
    { "object", MEALAPI_T_OBJECT },
    { "array", MEALAPI_T_ARRAY },
    { "number", MEALAPI_T_NUMBER },
    { "integer", MEALAPI_T_INTEGER },
    { "string", MEALAPI_T_STRING },
    { NULL, 0 }
};


mealapi_schema_t *
mealapi_schema_load(const char *path, char *err, size_t errlen)
{
    json_t            *doc;
    json_error_t       e;
    mealapi_schema_t  *schema;

    doc = json_load_file(path, JSON_REJECT_DUPLICATES|JSON_DECODE_ANY, &e);

    if (doc == NULL) {
        if (errlen) {
            if (e.line > 0) {
                snprintf(err, errlen, "line %d, column %d: %s",
                         e.line, e.column, e.text);

            } else {
                snprintf(err, errlen, "%s", e.text);
            }
        }

        return NULL;
    }

    schema = mealapi_schema_compile(doc, err, errlen);

    json_decref(doc);

    return schema;
}


mealapi_schema_t *
mealapi_schema_compile(json_t *doc, char *err, size_t errlen)
{
    mealapi_compile_t   cc;
    mealapi_schema_t   *schema;

    if (errlen) {
        err[0] = '\0';
    }

    schema = calloc(1, sizeof(mealapi_schema_t));
    if (schema == NULL) {
        if (errlen) {
            snprintf(err, errlen, "out of memory");
        }

        return NULL;
    }

    memset(&cc, 0, sizeof(mealapi_compile_t));

    cc.schema = schema;
    cc.err = err;
    cc.errlen = errlen;
    cc.pb.buf = cc.pointer;
    cc.pb.size = sizeof(cc.pointer);

    schema->mctx = pcre2_match_context_create(NULL);
    if (schema->mctx == NULL) {
        mealapi_compile_error(&cc, "out of memory");
        goto failed;
    }

    pcre2_set_match_limit(schema->mctx, MEALAPI_MATCH_LIMIT);

    if (doc == NULL) {
        mealapi_compile_error(&cc, "no schema");
        goto failed;
    }

    schema->root = mealapi_compile_node(&cc, doc);
    if (schema->root == NULL) {
        goto failed;
    }

    if (mealapi_compile_refs(&cc) != 0) {
        goto failed;
    }

    return schema;

failed:

    mealapi_schema_free(schema);

    return NULL;
}


void
mealapi_schema_free(mealapi_schema_t *schema)
{
    size_t           i;
    mealapi_node_t  *node, *next;

    if (schema == NULL) {
        return;
    }

    for (node = schema->nodes; node; node = next) {
        next = node->next;
        mealapi_node_free(node);
    }

    for (i = 0; i < schema->ndefs; i++) {
        free(schema->defs[i].name);
    }

    free(schema->defs);

    if (schema->mctx) {
        pcre2_match_context_free(schema->mctx);
    }

    free(schema);
}


static void
mealapi_node_free(mealapi_node_t *node)
{
    free(node->props);
    free(node->slots);
    free(node->names);
    free(node->required);

    if (node->match) {
        pcre2_match_data_free(node->match);
    }

    if (node->re) {
        pcre2_code_free(node->re);
    }

    if (node->constant) {
        json_decref(node->constant);
    }

    if (node->enumeration) {
        json_decref(node->enumeration);
    }

    free(node->enum_strs);
    free(node->ref_name);
    free(node->ref_pointer);
    free(node);
}


/* compiling */

static mealapi_node_t *
mealapi_compile_node(mealapi_compile_t *cc, json_t *schema)
{
    void                     *it;
    size_t                    len, saved;
    const char               *key;
    mealapi_node_t           *node;
    const mealapi_keyword_t  *kw;

    node = calloc(1, sizeof(mealapi_node_t));
    if (node == NULL) {
        mealapi_compile_error(cc, "out of memory");
        return NULL;
    }

    node->next = cc->schema->nodes;
    cc->schema->nodes = node;

    if (json_is_boolean(schema)) {
        node->reject = json_is_false(schema);
        return node;
    }

    if (!json_is_object(schema)) {
        mealapi_compile_error(cc, "a schema must be an object or a boolean");
        return NULL;
    }

    if (cc->top == NULL) {
        cc->top = node;
    }

    for (it = json_object_iter(schema);
         it;
         it = json_object_iter_next(schema, it))
    {
        key = json_object_iter_key(it);
        len = json_object_iter_key_len(it);

        for (kw = mealapi_keywords; kw->name; kw++) {
            if (strlen(kw->name) == len && memcmp(kw->name, key, len) == 0) {
                break;
            }
        }

        saved = mealapi_compile_push(cc, key, len);

        if (kw->name == NULL) {
            mealapi_compile_error(cc, "unknown keyword");
            return NULL;
        }

        if (kw->handler
            && kw->handler(cc, node, json_object_iter_value(it)) != 0)
        {
            return NULL;
        }

        mealapi_compile_pop(cc, saved);
    }

    if (mealapi_compile_members(cc, node) != 0) {
        return NULL;
    }

    if ((node->keywords & MEALAPI_K_UNIQUE)
        && (!(node->keywords & MEALAPI_K_MAXITEMS)
            || node->max_items > MEALAPI_UNIQUE_MAX))
    {
        (void) mealapi_compile_push(cc, "uniqueItems", 11);
        mealapi_compile_error(cc, "needs \"maxItems\" of at most %d in the "
                              "same schema", MEALAPI_UNIQUE_MAX);
        return NULL;
    }

    return node;
}


/* "properties", "required" and "additionalProperties" as one table */

static int
mealapi_compile_members(mealapi_compile_t *cc, mealapi_node_t *node)
{
    char            *p;
    void            *it;
    size_t           i, n, len, nreq, size, saved, saved2;
    uint32_t         h, j;
    json_t          *name;
    const char      *key;
    mealapi_prop_t  *prop;

    nreq = node->c_required ? json_array_size(node->c_required) : 0;
    n = (node->c_properties ? json_object_size(node->c_properties) : 0) + nreq;

    if (n == 0) {
        goto done;
    }

    size = 0;

    if (node->c_properties) {
        for (it = json_object_iter(node->c_properties);
             it;
             it = json_object_iter_next(node->c_properties, it))
        {
            size += json_object_iter_key_len(it) + 1;
        }
    }

    for (i = 0; i < nreq; i++) {
        size += json_string_length(json_array_get(node->c_required, i)) + 1;
    }

    node->mask = 4;

    while (node->mask < 2 * n) {
        node->mask *= 2;
    }

    node->props = calloc(n, sizeof(mealapi_prop_t));
    node->slots = calloc(node->mask, sizeof(uint32_t));
    node->names = malloc(size);
    node->required = calloc(nreq ? nreq : 1, sizeof(uint32_t));

    if (node->props == NULL || node->slots == NULL || node->names == NULL
        || node->required == NULL)
    {
        mealapi_compile_error(cc, "out of memory");
        return -1;
    }

    node->mask--;
    p = node->names;

    if (node->c_properties) {
        saved = mealapi_compile_push(cc, "properties", 10);

        for (it = json_object_iter(node->c_properties);
             it;
             it = json_object_iter_next(node->c_properties, it))
        {
            key = json_object_iter_key(it);
            len = json_object_iter_key_len(it);

            prop = &node->props[node->nprops];
            prop->name = p;
            prop->len = len;
            prop->declared = 1;

            memcpy(p, key, len);
            p[len] = '\0';
            p += len + 1;

            saved2 = mealapi_compile_push(cc, key, len);

            prop->schema = mealapi_compile_node(cc,
                                                json_object_iter_value(it));
            if (prop->schema == NULL) {
                return -1;
            }

            mealapi_compile_pop(cc, saved2);

            if (mealapi_is_trivial(prop->schema)) {
                prop->schema = NULL;

            } else {
                node->applies = 1;
            }

            h = mealapi_key_hash(prop->name, len);

            for (j = h & node->mask; node->slots[j]; j = (j + 1) & node->mask)
            {
                /* void */
            }

            node->slots[j] = ++node->nprops;
        }

        mealapi_compile_pop(cc, saved);
    }

    for (i = 0; i < nreq; i++) {
        name = json_array_get(node->c_required, i);
        key = json_string_value(name);
        len = json_string_length(name);

        prop = (mealapi_prop_t *) mealapi_prop_find(node, key, len);

        if (prop == NULL) {
            prop = &node->props[node->nprops];
            prop->name = p;
            prop->len = len;

            memcpy(p, key, len);
            p[len] = '\0';
            p += len + 1;

            h = mealapi_key_hash(prop->name, len);

            for (j = h & node->mask; node->slots[j]; j = (j + 1) & node->mask)
            {
                /* void */
            }

            node->slots[j] = ++node->nprops;
        }

        prop->required = 1;
        node->required[node->nrequired++] = (uint32_t) (prop - node->props);
    }

done:

    if (node->additional) {
        if (mealapi_is_trivial(node->additional)) {
            node->additional = NULL;

        } else {
            node->applies = 1;
        }
    }

    if (node->nrequired || node->applies) {
        node->keywords |= MEALAPI_K_MEMBERS;
    }

    return 0;
}


/* resolves each "$ref", then refuses cycles of $ref alone */

static int
mealapi_compile_refs(mealapi_compile_t *cc)
{
    size_t             i;
    uintptr_t          walk;
    mealapi_node_t    *node, *n;
    mealapi_schema_t  *schema;

    schema = cc->schema;

    for (node = schema->nodes; node; node = node->next) {
        if (!node->has_ref) {
            continue;
        }

        if (node->ref_root) {
            node->ref = schema->root;
            continue;
        }

        for (i = 0; i < schema->ndefs; i++) {
            if (schema->defs[i].len == node->ref_len
                && memcmp(schema->defs[i].name, node->ref_name,
                          node->ref_len) == 0)
            {
                node->ref = schema->defs[i].node;
                break;
            }
        }

        if (node->ref == NULL) {
            if (cc->errlen) {
                snprintf(cc->err, cc->errlen,
                         "%s: unresolvable reference (no such \"$defs\" "
                         "entry)",
                         node->ref_pointer[0] ? node->ref_pointer : "(root)");
            }

            return -1;
        }
    }

    /*
     * Each node has at most one $ref: follow each chain, marking its nodes
     * with the walk's number; meeting a node of the same walk is a cycle.
     */

    walk = 0;

    for (node = schema->nodes; node; node = node->next) {
        if (node->mark) {
            continue;
        }

        walk++;

        for (n = node; n && n->mark == 0; n = n->ref) {
            n->mark = walk;
        }

        if (n && n->mark == walk) {
            if (cc->errlen) {
                snprintf(cc->err, cc->errlen,
                         "%s: reference cycle that does not descend into "
                         "the instance",
                         n->ref_pointer[0] ? n->ref_pointer : "(root)");
            }

            return -1;
        }
    }

    return 0;
}


static int
mealapi_is_trivial(const mealapi_node_t *node)
{
    return node->keywords == 0 && !node->reject && !node->has_ref;
}


/* appends a token to the schema pointer; returns what restores it */

static size_t
mealapi_compile_push(mealapi_compile_t *cc, const char *key, size_t len)
{
    size_t  saved;

    saved = cc->pb.len * 2 + (cc->pb.full != 0);

    mealapi_pointer_add(&cc->pb, key, len);

    return saved;
}


static void
mealapi_compile_pop(mealapi_compile_t *cc, size_t saved)
{
    cc->pb.len = saved / 2;
    cc->pb.full = saved & 1;
    cc->pointer[cc->pb.len] = '\0';
}


static void
mealapi_compile_error(mealapi_compile_t *cc, const char *fmt, ...)
{
    int      n;
    va_list  args;

    if (cc->errlen == 0) {
        return;
    }

    n = snprintf(cc->err, cc->errlen, "%s: ",
                 cc->pb.len ? cc->pointer : "(root)");

    if (n < 0 || (size_t) n >= cc->errlen) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(cc->err + n, cc->errlen - n, fmt, args);
    va_end(args);
}


/* a non-negative integer; 2020-12 also counts 3.0 as one */

static int
mealapi_get_size(mealapi_compile_t *cc, json_t *value, size_t *size)
{
    double      d;
    json_int_t  i;

    if (json_is_integer(value)) {
        i = json_integer_value(value);

        if (i >= 0) {
            *size = ((json_int_t) (size_t) i == i) ? (size_t) i : SIZE_MAX;
            return 0;
        }

    } else if (json_is_real(value)) {
        d = json_real_value(value);

        if (d >= 0 && mealapi_real_is_integer(d)) {
            *size = (d >= (double) SIZE_MAX) ? SIZE_MAX : (size_t) d;
            return 0;
        }
    }

    mealapi_compile_error(cc, "must be a non-negative integer");

    return -1;
}


static int
mealapi_get_number(mealapi_compile_t *cc, json_t *value, mealapi_num_t *num)
{
    if (!mealapi_is_number(value, num)) {
        mealapi_compile_error(cc, "must be a number");
        return -1;
    }

    return 0;
}


static int
mealapi_kw_type(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    char         num[24];
    size_t       i, n, t, saved;
    json_t      *name;
    unsigned     mask;
    const char  *s;

    n = json_is_array(value) ? json_array_size(value) : 1;

    if (!json_is_string(value) && (!json_is_array(value) || n == 0)) {
        mealapi_compile_error(cc, "must be a type name or a non-empty array "
                              "of them");
        return -1;
    }

    for (i = 0; i < n; i++) {
        name = value;
        saved = 0;

        if (json_is_array(value)) {
            name = json_array_get(value, i);
            snprintf(num, sizeof(num), "%zu", i);
            saved = mealapi_compile_push(cc, num, strlen(num));
        }

        if (!json_is_string(name)) {
            mealapi_compile_error(cc, "must be a type name");
            return -1;
        }

        s = json_string_value(name);
        mask = 0;

        for (t = 0; mealapi_types[t].name; t++) {
            if (strlen(mealapi_types[t].name) == json_string_length(name)
                && strcmp(mealapi_types[t].name, s) == 0)
            {
                mask = mealapi_types[t].mask;
                break;
            }
        }

        if (mask == 0) {
            mealapi_compile_error(cc, "unknown type \"%.32s\"", s);
            return -1;
        }

        if (node->types & mask) {
            mealapi_compile_error(cc, "duplicate type \"%s\"", s);
            return -1;
        }

        node->types |= mask;

        if (json_is_array(value)) {
            mealapi_compile_pop(cc, saved);
        }
    }

    /* "number" includes "integer" */

    if (node->types & MEALAPI_T_NUMBER) {
        node->types |= MEALAPI_T_INTEGER;
    }

    node->keywords |= MEALAPI_K_TYPE;

    return 0;
}


static int
mealapi_kw_enum(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    size_t   i, n;
    json_t  *e;

    if (!json_is_array(value) || json_array_size(value) == 0) {
        mealapi_compile_error(cc, "must be a non-empty array");
        return -1;
    }

    node->enumeration = json_deep_copy(value);
    if (node->enumeration == NULL) {
        mealapi_compile_error(cc, "out of memory");
        return -1;
    }

    n = json_array_size(node->enumeration);

    for (i = 0; i < n; i++) {
        if (!json_is_string(json_array_get(node->enumeration, i))) {
            break;
        }
    }

    if (i == n) {
        /* all strings: compared without jansson calls */

        node->enum_strs = calloc(n, sizeof(mealapi_str_t));
        if (node->enum_strs == NULL) {
            mealapi_compile_error(cc, "out of memory");
            return -1;
        }

        for (i = 0; i < n; i++) {
            e = json_array_get(node->enumeration, i);
            node->enum_strs[i].data = json_string_value(e);
            node->enum_strs[i].len = json_string_length(e);
        }

        node->nenum_strs = n;
    }

    node->keywords |= MEALAPI_K_ENUM;

    return 0;
}


static int
mealapi_kw_const(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    node->constant = json_deep_copy(value);
    if (node->constant == NULL) {
        mealapi_compile_error(cc, "out of memory");
        return -1;
    }

    node->keywords |= MEALAPI_K_CONST;

    return 0;
}


static int
mealapi_kw_properties(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (!json_is_object(value)) {
        mealapi_compile_error(cc, "must be an object of schemas");
        return -1;
    }

    node->c_properties = value;

    return 0;
}


static int
mealapi_kw_required(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    char     num[24];
    size_t   i, j, n;
    json_t  *a, *b;

    if (!json_is_array(value)) {
        mealapi_compile_error(cc, "must be an array of unique strings");
        return -1;
    }

    n = json_array_size(value);

    for (i = 0; i < n; i++) {
        a = json_array_get(value, i);

        snprintf(num, sizeof(num), "%zu", i);

        if (!json_is_string(a)) {
            mealapi_compile_push(cc, num, strlen(num));
            mealapi_compile_error(cc, "must be a string");
            return -1;
        }

        for (j = 0; j < i; j++) {
            b = json_array_get(value, j);

            if (json_string_length(a) == json_string_length(b)
                && memcmp(json_string_value(a), json_string_value(b),
                          json_string_length(a)) == 0)
            {
                mealapi_compile_push(cc, num, strlen(num));
                mealapi_compile_error(cc, "duplicate name");
                return -1;
            }
        }
    }

    node->c_required = value;

    return 0;
}


static int
mealapi_kw_additional(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    node->additional = mealapi_compile_node(cc, value);

    return node->additional ? 0 : -1;
}


static int
mealapi_kw_min_props(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_size(cc, value, &node->min_props) != 0) {
        return -1;
    }

    if (node->min_props) {
        node->keywords |= MEALAPI_K_MINPROPS;
    }

    return 0;
}


static int
mealapi_kw_max_props(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_size(cc, value, &node->max_props) != 0) {
        return -1;
    }

    node->keywords |= MEALAPI_K_MAXPROPS;

    return 0;
}


static int
mealapi_kw_items(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (json_is_array(value)) {
        mealapi_compile_error(cc, "must be a schema (the array form is not "
                              "supported)");
        return -1;
    }

    node->items = mealapi_compile_node(cc, value);
    if (node->items == NULL) {
        return -1;
    }

    if (mealapi_is_trivial(node->items)) {
        node->items = NULL;

    } else {
        node->keywords |= MEALAPI_K_ITEMS;
    }

    return 0;
}


static int
mealapi_kw_min_items(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_size(cc, value, &node->min_items) != 0) {
        return -1;
    }

    if (node->min_items) {
        node->keywords |= MEALAPI_K_MINITEMS;
    }

    return 0;
}


static int
mealapi_kw_max_items(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_size(cc, value, &node->max_items) != 0) {
        return -1;
    }

    node->keywords |= MEALAPI_K_MAXITEMS;

    return 0;
}


static int
mealapi_kw_unique(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (!json_is_boolean(value)) {
        mealapi_compile_error(cc, "must be a boolean");
        return -1;
    }

    if (json_is_true(value)) {
        node->keywords |= MEALAPI_K_UNIQUE;
    }

    return 0;
}


static int
mealapi_kw_min_len(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_size(cc, value, &node->min_len) != 0) {
        return -1;
    }

    if (node->min_len) {
        node->keywords |= MEALAPI_K_MINLEN;
    }

    return 0;
}


static int
mealapi_kw_max_len(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_size(cc, value, &node->max_len) != 0) {
        return -1;
    }

    node->keywords |= MEALAPI_K_MAXLEN;

    return 0;
}


static int
mealapi_kw_pattern(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    int         rc;
    PCRE2_SIZE  offset;
    PCRE2_UCHAR  msg[256];

    if (!json_is_string(value)) {
        mealapi_compile_error(cc, "must be a string");
        return -1;
    }

    /*
     * ECMA-262 semantics where PCRE2 differs by default: "$" matches at
     * the very end only, not before a final newline; no "\C"
     */

    node->re = pcre2_compile((PCRE2_SPTR) json_string_value(value),
                             json_string_length(value),
                             PCRE2_UTF|PCRE2_DOLLAR_ENDONLY
                             |PCRE2_NEVER_BACKSLASH_C,
                             &rc, &offset, NULL);

    if (node->re == NULL) {
        if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0) {
            msg[0] = '\0';
        }

        mealapi_compile_error(cc, "invalid regular expression at offset "
                              "%zu: %s", (size_t) offset, (char *) msg);
        return -1;
    }

    /* JIT where available; without it pcre2_match() interprets */

    (void) pcre2_jit_compile(node->re, PCRE2_JIT_COMPLETE);

    /* only whether it matches: one ovector pair */

    node->match = pcre2_match_data_create(1, NULL);
    if (node->match == NULL) {
        mealapi_compile_error(cc, "out of memory");
        return -1;
    }

    node->keywords |= MEALAPI_K_PATTERN;

    return 0;
}


static int
mealapi_kw_format(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    const char  *s;

    if (!json_is_string(value)) {
        mealapi_compile_error(cc, "must be a string");
        return -1;
    }

    s = json_string_value(value);

    if (strcmp(s, "uuid") == 0) {
        node->format = MEALAPI_FORMAT_UUID;

    } else if (strcmp(s, "date-time") == 0) {
        node->format = MEALAPI_FORMAT_DATE_TIME;

    } else if (strcmp(s, "email") == 0) {
        node->format = MEALAPI_FORMAT_EMAIL;

    } else {
        mealapi_compile_error(cc, "unsupported format \"%.32s\" (supported: "
                              "uuid, date-time, email)", s);
        return -1;
    }

    if (strlen(s) != json_string_length(value)) {
        mealapi_compile_error(cc, "unsupported format");
        return -1;
    }

    node->keywords |= MEALAPI_K_FORMAT;

    return 0;
}


static int
mealapi_kw_minimum(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_number(cc, value, &node->minimum) != 0) {
        return -1;
    }

    node->keywords |= MEALAPI_K_MINIMUM;

    return 0;
}


static int
mealapi_kw_maximum(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_number(cc, value, &node->maximum) != 0) {
        return -1;
    }

    node->keywords |= MEALAPI_K_MAXIMUM;

    return 0;
}


static int
mealapi_kw_exmin(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_number(cc, value, &node->exmin) != 0) {
        return -1;
    }

    node->keywords |= MEALAPI_K_EXMIN;

    return 0;
}


static int
mealapi_kw_exmax(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    if (mealapi_get_number(cc, value, &node->exmax) != 0) {
        return -1;
    }

    node->keywords |= MEALAPI_K_EXMAX;

    return 0;
}


static int
mealapi_kw_multiple(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    mealapi_num_t  *m;

    m = &node->multiple;

    if (!mealapi_is_number(value, m)
        || (m->integer ? m->i <= 0 : !(m->d > 0)))
    {
        mealapi_compile_error(cc, "must be a number greater than 0");
        return -1;
    }

    node->keywords |= MEALAPI_K_MULTIPLE;

    return 0;
}


/* "#" or "#/$defs/<name>", the name escaped as in RFC 6901 */

static int
mealapi_kw_ref(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    char        *d;
    size_t       i, len;
    const char  *s;

    if (!json_is_string(value)) {
        mealapi_compile_error(cc, "must be a string");
        return -1;
    }

    s = json_string_value(value);
    len = json_string_length(value);

    /* kept for errors found once all references are known */

    node->ref_pointer = malloc(cc->pb.len + 1);
    if (node->ref_pointer == NULL) {
        mealapi_compile_error(cc, "out of memory");
        return -1;
    }

    memcpy(node->ref_pointer, cc->pointer, cc->pb.len + 1);

    node->has_ref = 1;

    if (len == 1 && s[0] == '#') {
        node->ref_root = 1;
        return 0;
    }

    if (len < sizeof("#/$defs/") - 1
        || memcmp(s, "#/$defs/", sizeof("#/$defs/") - 1) != 0)
    {
        goto unsupported;
    }

    s += sizeof("#/$defs/") - 1;
    len -= sizeof("#/$defs/") - 1;

    node->ref_name = malloc(len + 1);
    if (node->ref_name == NULL) {
        mealapi_compile_error(cc, "out of memory");
        return -1;
    }

    d = node->ref_name;

    for (i = 0; i < len; i++) {
        if (s[i] == '/') {
            goto unsupported;
        }

        if (s[i] == '~') {
            if (i + 1 < len && s[i + 1] == '0') {
                *d++ = '~';

            } else if (i + 1 < len && s[i + 1] == '1') {
                *d++ = '/';

            } else {
                mealapi_compile_error(cc, "invalid JSON pointer escape");
                return -1;
            }

            i++;
            continue;
        }

        *d++ = s[i];
    }

    *d = '\0';
    node->ref_len = d - node->ref_name;

    return 0;

unsupported:

    mealapi_compile_error(cc, "unsupported reference (only \"#\" and "
                          "\"#/$defs/<name>\")");

    return -1;
}


static int
mealapi_kw_defs(mealapi_compile_t *cc, mealapi_node_t *node,
    json_t *value)
{
    void              *it;
    size_t             n, len, saved;
    const char        *key;
    mealapi_def_t     *def;
    mealapi_schema_t  *schema;

    if (node != cc->top) {
        mealapi_compile_error(cc, "\"$defs\" is supported at the root only");
        return -1;
    }

    if (!json_is_object(value)) {
        mealapi_compile_error(cc, "must be an object of schemas");
        return -1;
    }

    schema = cc->schema;
    n = json_object_size(value);

    schema->defs = calloc(n ? n : 1, sizeof(mealapi_def_t));
    if (schema->defs == NULL) {
        mealapi_compile_error(cc, "out of memory");
        return -1;
    }

    for (it = json_object_iter(value);
         it;
         it = json_object_iter_next(value, it))
    {
        key = json_object_iter_key(it);
        len = json_object_iter_key_len(it);

        def = &schema->defs[schema->ndefs];

        def->name = malloc(len + 1);
        if (def->name == NULL) {
            mealapi_compile_error(cc, "out of memory");
            return -1;
        }

        memcpy(def->name, key, len);
        def->name[len] = '\0';
        def->len = len;

        schema->ndefs++;

        saved = mealapi_compile_push(cc, key, len);

        def->node = mealapi_compile_node(cc, json_object_iter_value(it));
        if (def->node == NULL) {
            return -1;
        }

        mealapi_compile_pop(cc, saved);
    }

    return 0;
}


/* validating */

int
mealapi_schema_validate(const mealapi_schema_t *schema,
    const json_t *instance, mealapi_violation_t *v, int max)
{
    mealapi_validate_t  vc;

    vc.v = v;
    vc.max = (v == NULL || max < 0) ? 0 : (max < INT_MAX ? max : INT_MAX - 1);
    vc.n = 0;
    vc.budget = MEALAPI_REPEAT_BUDGET;
    vc.mctx = schema->mctx;

    (void) mealapi_validate_node(&vc, schema->root, instance, NULL, "false");

    return vc.n;
}


/*
 * Returns non-zero to stop: max + 1 violations are known, or the budget
 * of repeated evaluations is spent.  A $ref chain is followed in the loop;
 * "repeat" notes whether an earlier node of the chain applied subschemas
 * to this object's members (1) or this array's items (2).
 */

static int
mealapi_validate_node(mealapi_validate_t *vc, const mealapi_node_t *node,
    const json_t *inst, const mealapi_frame_t *frame, const char *via)
{
    int        repeat;
    unsigned   kw, t;
    json_type  type;

    type = json_typeof(inst);
    repeat = 0;

    do {
        if (node->reject) {
            if (mealapi_violation(vc, frame, via)) {
                return 1;
            }
        }

        kw = node->keywords;

        if (kw == 0) {
            goto next;
        }

        if (kw & MEALAPI_K_TYPE) {
            switch (type) {
            case JSON_OBJECT:
                t = MEALAPI_T_OBJECT;
                break;
            case JSON_ARRAY:
                t = MEALAPI_T_ARRAY;
                break;
            case JSON_STRING:
                t = MEALAPI_T_STRING;
                break;
            case JSON_INTEGER:
                t = MEALAPI_T_INTEGER|MEALAPI_T_NUMBER;
                break;
            case JSON_REAL:
                t = MEALAPI_T_NUMBER;
                if (mealapi_real_is_integer(json_real_value(inst))) {
                    t |= MEALAPI_T_INTEGER;
                }
                break;
            case JSON_TRUE:
            case JSON_FALSE:
                t = MEALAPI_T_BOOLEAN;
                break;
            default:
                t = MEALAPI_T_NULL;
            }

            if (!(node->types & t) && mealapi_violation(vc, frame, "type")) {
                return 1;
            }
        }

        switch (type) {

        case JSON_OBJECT:
            if (kw & MEALAPI_K_OBJECT) {
                if (mealapi_validate_object(vc, node, inst, frame,
                                            repeat & 1))
                {
                    return 1;
                }

                if (node->applies) {
                    repeat |= 1;
                }
            }

            break;

        case JSON_ARRAY:
            if (kw & MEALAPI_K_ARRAY) {
                if (mealapi_validate_array(vc, node, inst, frame, repeat & 2))
                {
                    return 1;
                }

                if (kw & MEALAPI_K_ITEMS) {
                    repeat |= 2;
                }
            }

            break;

        case JSON_STRING:
            if ((kw & MEALAPI_K_STRING)
                && mealapi_validate_string(vc, node, inst, frame))
            {
                return 1;
            }

            break;

        case JSON_INTEGER:
        case JSON_REAL:
            if ((kw & MEALAPI_K_NUMBER)
                && mealapi_validate_number(vc, node, inst, frame))
            {
                return 1;
            }

            break;

        default:
            break;
        }

        if ((kw & MEALAPI_K_CONST)
            && !mealapi_equal(node->constant, inst)
            && mealapi_violation(vc, frame, "const"))
        {
            return 1;
        }

        if ((kw & MEALAPI_K_ENUM)
            && !mealapi_enum_match(node, inst)
            && mealapi_violation(vc, frame, "enum"))
        {
            return 1;
        }

    next:

        node = node->ref;
        via = "$ref";

    } while (node);

    return 0;
}


static int
mealapi_validate_object(mealapi_validate_t *vc, const mealapi_node_t *node,
    const json_t *inst, const mealapi_frame_t *frame, int repeat)
{
    void                  *it;
    json_t                *object;
    size_t                 n, seen;
    uint32_t               i;
    const mealapi_prop_t  *prop;
    mealapi_frame_t        child;

    object = (json_t *) inst;
    n = json_object_size(object);

    if ((node->keywords & MEALAPI_K_MINPROPS) && n < node->min_props
        && mealapi_violation(vc, frame, "minProperties"))
    {
        return 1;
    }

    if ((node->keywords & MEALAPI_K_MAXPROPS) && n > node->max_props
        && mealapi_violation(vc, frame, "maxProperties"))
    {
        return 1;
    }

    if (!(node->keywords & MEALAPI_K_MEMBERS)) {
        return 0;
    }

    if (repeat && node->applies) {
        vc->budget -= (long) n;

        if (vc->budget < 0) {
            (void) mealapi_violation(vc, frame, "$ref");
            return 1;
        }
    }

    child.parent = frame;
    seen = 0;

    for (it = json_object_iter(object);
         it;
         it = json_object_iter_next(object, it))
    {
        child.key = json_object_iter_key(it);
        child.len = json_object_iter_key_len(it);

        prop = node->nprops ? mealapi_prop_find(node, child.key, child.len)
                            : NULL;

        if (prop) {
            seen += prop->required;

            if (prop->declared) {
                if (prop->schema
                    && mealapi_validate_node(vc, prop->schema,
                                             json_object_iter_value(it),
                                             &child, "properties"))
                {
                    return 1;
                }

                continue;
            }
        }

        if (node->additional
            && mealapi_validate_node(vc, node->additional,
                                     json_object_iter_value(it), &child,
                                     "additionalProperties"))
        {
            return 1;
        }
    }

    if (seen == node->nrequired) {
        return 0;
    }

    /* the missing members, in the order of "required" */

    for (i = 0; i < node->nrequired; i++) {
        prop = &node->props[node->required[i]];

        if (json_object_getn(object, prop->name, prop->len) == NULL) {
            child.key = prop->name;
            child.len = prop->len;

            if (mealapi_violation(vc, &child, "required")) {
                return 1;
            }
        }
    }

    return 0;
}


static int
mealapi_validate_array(mealapi_validate_t *vc, const mealapi_node_t *node,
    const json_t *inst, const mealapi_frame_t *frame, int repeat)
{
    size_t           i, n;
    mealapi_frame_t  child;

    n = json_array_size(inst);

    if ((node->keywords & MEALAPI_K_MINITEMS) && n < node->min_items
        && mealapi_violation(vc, frame, "minItems"))
    {
        return 1;
    }

    if ((node->keywords & MEALAPI_K_MAXITEMS) && n > node->max_items) {
        if (mealapi_violation(vc, frame, "maxItems")) {
            return 1;
        }

    } else if ((node->keywords & MEALAPI_K_UNIQUE) && n > 1
               && !mealapi_unique(inst, n)
               && mealapi_violation(vc, frame, "uniqueItems"))
    {
        /* uniqueItems is bounded by maxItems, checked only within it */
        return 1;
    }

    if (!(node->keywords & MEALAPI_K_ITEMS)) {
        return 0;
    }

    if (repeat) {
        vc->budget -= (long) n;

        if (vc->budget < 0) {
            (void) mealapi_violation(vc, frame, "$ref");
            return 1;
        }
    }

    child.parent = frame;
    child.key = NULL;

    for (i = 0; i < n; i++) {
        child.len = i;

        if (mealapi_validate_node(vc, node->items, json_array_get(inst, i),
                                  &child, "items"))
        {
            return 1;
        }
    }

    return 0;
}


static int
mealapi_validate_string(mealapi_validate_t *vc, const mealapi_node_t *node,
    const json_t *inst, const mealapi_frame_t *frame)
{
    int          ok;
    size_t       len, cps;
    unsigned     kw;
    const char  *s;

    kw = node->keywords;
    s = json_string_value(inst);
    len = json_string_length(inst);

    /*
     * A string of len bytes has between len / 4 (rounded up) and len
     * code points: count them only when those bounds do not decide.
     */

    if (kw & (MEALAPI_K_MINLEN|MEALAPI_K_MAXLEN)) {
        cps = (size_t) -1;

        if (kw & MEALAPI_K_MINLEN) {
            if (len < node->min_len) {
                ok = 0;

            } else if (len / 4 + (len % 4 != 0) >= node->min_len) {
                ok = 1;

            } else {
                cps = mealapi_utf8_length(s, len);
                ok = (cps >= node->min_len);
            }

            if (!ok && mealapi_violation(vc, frame, "minLength")) {
                return 1;
            }
        }

        if ((kw & MEALAPI_K_MAXLEN) && len > node->max_len) {
            if (cps == (size_t) -1) {
                cps = mealapi_utf8_length(s, len);
            }

            if (cps > node->max_len
                && mealapi_violation(vc, frame, "maxLength"))
            {
                return 1;
            }
        }
    }

    if ((kw & MEALAPI_K_PATTERN)
        && pcre2_match(node->re, (PCRE2_SPTR) s, len, 0, 0, node->match,
                       vc->mctx) < 0
        && mealapi_violation(vc, frame, "pattern"))
    {
        return 1;
    }

    if (kw & MEALAPI_K_FORMAT) {
        switch (node->format) {
        case MEALAPI_FORMAT_UUID:
            ok = mealapi_format_uuid((const unsigned char *) s, len);
            break;
        case MEALAPI_FORMAT_DATE_TIME:
            ok = mealapi_format_date_time((const unsigned char *) s, len);
            break;
        default: /* MEALAPI_FORMAT_EMAIL */
            ok = mealapi_format_email((const unsigned char *) s, len);
        }

        if (!ok && mealapi_violation(vc, frame, "format")) {
            return 1;
        }
    }

    return 0;
}


static int
mealapi_validate_number(mealapi_validate_t *vc, const mealapi_node_t *node,
    const json_t *inst, const mealapi_frame_t *frame)
{
    unsigned       kw;
    mealapi_num_t  x;

    kw = node->keywords;

    (void) mealapi_is_number(inst, &x);

    if ((kw & MEALAPI_K_MINIMUM) && mealapi_num_cmp(&x, &node->minimum) < 0
        && mealapi_violation(vc, frame, "minimum"))
    {
        return 1;
    }

    if ((kw & MEALAPI_K_MAXIMUM) && mealapi_num_cmp(&x, &node->maximum) > 0
        && mealapi_violation(vc, frame, "maximum"))
    {
        return 1;
    }

    if ((kw & MEALAPI_K_EXMIN) && mealapi_num_cmp(&x, &node->exmin) <= 0
        && mealapi_violation(vc, frame, "exclusiveMinimum"))
    {
        return 1;
    }

    if ((kw & MEALAPI_K_EXMAX) && mealapi_num_cmp(&x, &node->exmax) >= 0
        && mealapi_violation(vc, frame, "exclusiveMaximum"))
    {
        return 1;
    }

    if ((kw & MEALAPI_K_MULTIPLE) && !mealapi_multiple_of(&x, &node->multiple)
        && mealapi_violation(vc, frame, "multipleOf"))
    {
        return 1;
    }

    return 0;
}


/* records a violation; non-zero once max + 1 are known */

static int
mealapi_violation(mealapi_validate_t *vc, const mealapi_frame_t *frame,
    const char *keyword)
{
    mealapi_pbuf_t        pb;
    mealapi_violation_t  *v;

    if (vc->n < vc->max) {
        v = &vc->v[vc->n];

        pb.buf = v->pointer;
        pb.size = MEALAPI_SCHEMA_POINTER_MAX;
        pb.len = 0;
        pb.full = 0;
        pb.buf[0] = '\0';

        mealapi_pointer_frame(&pb, frame);

        v->keyword = keyword;
    }

    vc->n++;

    return vc->n > vc->max;
}


static const mealapi_prop_t *
mealapi_prop_find(const mealapi_node_t *node, const char *key, size_t len)
{
    uint32_t               i, s;
    const mealapi_prop_t  *prop;

    for (i = mealapi_key_hash(key, len) & node->mask;
         (s = node->slots[i]) != 0;
         i = (i + 1) & node->mask)
    {
        prop = &node->props[s - 1];

        if (prop->len == len && memcmp(prop->name, key, len) == 0) {
            return prop;
        }
    }

    return NULL;
}


/*
 * Property names: the length and three bytes are enough to spread a
 * schema's few names, and cost the same for any key length.  A hostile
 * key can only collide: probes stay bounded by the table size.
 */

static uint32_t
mealapi_key_hash(const char *key, size_t len)
{
    uint32_t  h;

    h = (uint32_t) len * 0x9e3779b1u;

    if (len) {
        h ^= (unsigned char) key[0];
        h = h * 0x01000193u ^ (unsigned char) key[len - 1];
        h = h * 0x01000193u ^ (unsigned char) key[len / 2];
    }

    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;

    return h;
}


static int
mealapi_enum_match(const mealapi_node_t *node, const json_t *inst)
{
    size_t       i, n, len;
    const char  *s;

    if (node->enum_strs) {
        if (!json_is_string(inst)) {
            return 0;
        }

        s = json_string_value(inst);
        len = json_string_length(inst);

        for (i = 0; i < node->nenum_strs; i++) {
            if (node->enum_strs[i].len == len
                && memcmp(node->enum_strs[i].data, s, len) == 0)
            {
                return 1;
            }
        }

        return 0;
    }

    n = json_array_size(node->enumeration);

    for (i = 0; i < n; i++) {
        if (mealapi_equal(json_array_get(node->enumeration, i), inst)) {
            return 1;
        }
    }

    return 0;
}


/* 1 if the n (at most MEALAPI_UNIQUE_MAX) items are pairwise unequal */

static int
mealapi_unique(const json_t *array, size_t n)
{
    size_t         i, j;
    uint16_t       slots[MEALAPI_UNIQUE_SLOTS];
    uint32_t       h, hashes[MEALAPI_UNIQUE_SLOTS];
    const json_t  *e;

    if (n <= 8) {
        for (i = 1; i < n; i++) {
            e = json_array_get(array, i);

            for (j = 0; j < i; j++) {
                if (mealapi_equal(json_array_get(array, j), e)) {
                    return 0;
                }
            }
        }

        return 1;
    }

    memset(slots, 0, sizeof(uint16_t) * MEALAPI_UNIQUE_SLOTS);

    for (i = 0; i < n; i++) {
        e = json_array_get(array, i);
        h = mealapi_hash(e);

        for (j = h & (MEALAPI_UNIQUE_SLOTS - 1);
             slots[j];
             j = (j + 1) & (MEALAPI_UNIQUE_SLOTS - 1))
        {
            if (hashes[j] == h
                && mealapi_equal(json_array_get(array, slots[j] - 1), e))
            {
                return 0;
            }
        }

        slots[j] = (uint16_t) (i + 1);
        hashes[j] = h;
    }

    return 1;
}


/* JSON equality, numbers by value: 1 equals 1.0 */

static int
mealapi_equal(const json_t *a, const json_t *b)
{
    void           *it;
    size_t          i, n;
    json_t         *o, *v;
    json_type       ta, tb;
    mealapi_num_t   na, nb;

    ta = json_typeof(a);
    tb = json_typeof(b);

    if (ta != tb) {
        if (mealapi_is_number(a, &na) && mealapi_is_number(b, &nb)) {
            return mealapi_num_cmp(&na, &nb) == 0;
        }

        return 0;
    }

    switch (ta) {

    case JSON_STRING:
        n = json_string_length(a);

        return n == json_string_length(b)
               && memcmp(json_string_value(a), json_string_value(b), n) == 0;

    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);

    case JSON_REAL:
        return json_real_value(a) == json_real_value(b);

    case JSON_ARRAY:
        n = json_array_size(a);

        if (n != json_array_size(b)) {
            return 0;
        }

        for (i = 0; i < n; i++) {
            if (!mealapi_equal(json_array_get(a, i), json_array_get(b, i))) {
                return 0;
            }
        }

        return 1;

    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }

        o = (json_t *) a;

        for (it = json_object_iter(o); it; it = json_object_iter_next(o, it))
        {
            v = json_object_getn(b, json_object_iter_key(it),
                                 json_object_iter_key_len(it));

            if (v == NULL || !mealapi_equal(json_object_iter_value(it), v)) {
                return 0;
            }
        }

        return 1;

    default:
        /* true, false, null */
        return 1;
    }
}


static uint32_t
mealapi_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;

    return (uint32_t) x;
}


/* consistent with mealapi_equal(): equal values hash alike */

static uint32_t
mealapi_hash(const json_t *json)
{
    void                 *it;
    double                d;
    size_t                i, n;
    json_t               *o;
    uint32_t              h;
    uint64_t              u;
    const unsigned char  *p;

    switch (json_typeof(json)) {

    case JSON_STRING:
        p = (const unsigned char *) json_string_value(json);
        n = json_string_length(json);
        h = 0x811c9dc5u;

        for (i = 0; i < n; i++) {
            h = (h ^ p[i]) * 0x01000193u;
        }

        return h;

    case JSON_INTEGER:
        return mealapi_mix((uint64_t) json_integer_value(json));

    case JSON_REAL:
        d = json_real_value(json);

        if (mealapi_real_is_integer(d)
            && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        {
            return mealapi_mix((uint64_t) (json_int_t) d);
        }

        memcpy(&u, &d, sizeof(uint64_t));

        return mealapi_mix(u ^ 0x5bd1e995u);

    case JSON_ARRAY:
        n = json_array_size(json);
        h = 0x9747b28cu;

        for (i = 0; i < n; i++) {
            h = mealapi_mix(((uint64_t) h << 32) | mealapi_hash(
                                                  json_array_get(json, i)));
        }

        return h;

    case JSON_OBJECT:
        /* members in any order */

        o = (json_t *) json;
        h = 0x27d4eb2fu;

        for (it = json_object_iter(o); it; it = json_object_iter_next(o, it))
        {
            p = (const unsigned char *) json_object_iter_key(it);
            n = json_object_iter_key_len(it);
            u = 0xcbf29ce484222325ULL;

            for (i = 0; i < n; i++) {
                u = (u ^ p[i]) * 0x100000001b3ULL;
            }

            h += mealapi_mix(u ^ mealapi_hash(json_object_iter_value(it)));
        }

        return h;

    case JSON_TRUE:
        return 0x1;

    case JSON_FALSE:
        return 0x2;

    default:
        return 0x3;
    }
}


static int
mealapi_is_number(const json_t *json, mealapi_num_t *num)
{
    if (json_is_integer(json)) {
        num->integer = 1;
        num->i = json_integer_value(json);
        num->d = 0;
        return 1;
    }

    if (json_is_real(json)) {
        num->integer = 0;
        num->i = 0;
        num->d = json_real_value(json);
        return 1;
    }

    return 0;
}


static int
mealapi_num_cmp(const mealapi_num_t *a, const mealapi_num_t *b)
{
    if (a->integer) {
        if (b->integer) {
            return (a->i > b->i) - (a->i < b->i);
        }

        return mealapi_cmp_int_real(a->i, b->d);
    }

    if (b->integer) {
        return -mealapi_cmp_int_real(b->i, a->d);
    }

    return (a->d > b->d) - (a->d < b->d);
}


/* exact, where (double) i would round */

static int
mealapi_cmp_int_real(json_int_t i, double d)
{
    double      f;
    json_int_t  t;

    if (d >= 9223372036854775808.0) {
        return -1;
    }

    if (d < -9223372036854775808.0) {
        return 1;
    }

    t = (json_int_t) d;

    if (i != t) {
        return (i < t) ? -1 : 1;
    }

    f = d - (double) t;

    return (f > 0) ? -1 : (f < 0);
}


static int
mealapi_real_is_integer(double d)
{
    if (d >= 4503599627370496.0 || d <= -4503599627370496.0) {
        /* 2^52 and above: no fraction bits left */
        return isfinite(d);
    }

    return d == (double) (json_int_t) d;
}


/* exact for integers, else within a relative 1e-9 of a whole quotient */

static int
mealapi_multiple_of(const mealapi_num_t *x, const mealapi_num_t *m)
{
    double  q, r;

    if (x->integer && m->integer) {
        return x->i % m->i == 0;
    }

    q = (x->integer ? (double) x->i : x->d)
        / (m->integer ? (double) m->i : m->d);

    if (!isfinite(q)) {
        return 0;
    }

    if (q >= 4503599627370496.0 || q <= -4503599627370496.0) {
        return 1;
    }

    r = q - (double) (json_int_t) (q < 0 ? q - 0.5 : q + 0.5);

    if (r < 0) {
        r = -r;
    }

    if (q < 0) {
        q = -q;
    }

    return r <= 1e-9 * (q > 1 ? q : 1);
}


/* code points of valid UTF-8: the bytes that are not 10xxxxxx */

static size_t
mealapi_utf8_length(const char *s, size_t len)
{
    size_t    i, cont;
    uint64_t  w;

    cont = 0;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, sizeof(uint64_t));

        /* bit 7 of each byte: set in a continuation byte only */
        w = w & ~(w << 1) & 0x8080808080808080ULL;

        /* and their sum, in the top byte */
        cont += (size_t) (((w >> 7) * 0x0101010101010101ULL) >> 56);
    }

    for ( /* void */ ; i < len; i++) {
        cont += (((unsigned char) s[i] & 0xc0) == 0x80);
    }

    return len - cont;
}


static int
mealapi_format_uuid(const unsigned char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len != 36) {
        return 0;
    }

    for (i = 0; i < 36; i++) {
        c = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return 0;
            }

            continue;
        }

        c |= 0x20;

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


static int
mealapi_digits(const unsigned char *p, size_t n)
{
    int  v;

    v = 0;

    while (n--) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        v = v * 10 + (*p++ - '0');
    }

    return v;
}


/* RFC 3339 date-time: 1985-04-12T23:20:50.52Z, 1996-12-19T16:39:57-08:00 */

static int
mealapi_format_date_time(const unsigned char *s, size_t len)
{
    int        year, month, day, hour, minute, second, oh, om, mdays;
    size_t     i, start;
    static const int  days[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (len < 20
        || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't')
        || s[13] != ':' || s[16] != ':')
    {
        return 0;
    }

    year = mealapi_digits(s, 4);
    month = mealapi_digits(s + 5, 2);
    day = mealapi_digits(s + 8, 2);
    hour = mealapi_digits(s + 11, 2);
    minute = mealapi_digits(s + 14, 2);
    second = mealapi_digits(s + 17, 2);

    if (year < 0 || month < 1 || month > 12 || day < 1
        || hour < 0 || hour > 23 || minute < 0 || minute > 59
        || second < 0 || second > 60)
    {
        return 0;
    }

    mdays = days[month - 1];

    if (month == 2
        && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
    {
        mdays = 29;
    }

    if (day > mdays) {
        return 0;
    }

    i = 19;

    if (s[i] == '.') {
        start = ++i;

        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }

        if (i == start || i == len) {
            return 0;
        }
    }

    if (s[i] == 'Z' || s[i] == 'z') {
        return i + 1 == len;
    }

    if ((s[i] != '+' && s[i] != '-') || len - i != 6 || s[i + 3] != ':') {
        return 0;
    }

    oh = mealapi_digits(s + i + 1, 2);
    om = mealapi_digits(s + i + 4, 2);

    return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
}


/*
 * A pragmatic email check: one "@"; a local part of 1-64 bytes without
 * spaces or control characters; a domain of at most 253 bytes, two or
 * more dot-separated labels of 1-63 ASCII letters, digits and hyphens,
 * none starting or ending with a hyphen.
 */

static int
mealapi_format_email(const unsigned char *s, size_t len)
{
    size_t                labels, label;
    const unsigned char  *at, *p, *end;

    at = memchr(s, '@', len);

    if (at == NULL || at == s || at - s > 64) {
        return 0;
    }

    for (p = s; p < at; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            return 0;
        }
    }

    end = s + len;

    if (end - (at + 1) == 0 || end - (at + 1) > 253) {
        return 0;
    }

    labels = 0;
    label = 0;

    for (p = at + 1; p <= end; p++) {

        if (p == end || *p == '.') {
            if (label == 0 || label > 63 || p[-1] == '-') {
                return 0;
            }

            labels++;
            label = 0;
            continue;
        }

        if (*p == '-') {
            if (label == 0) {
                return 0;
            }

        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                     || (*p >= '0' && *p <= '9')))
        {
            return 0;
        }

        label++;
    }

    return labels >= 2;
}


/* appends "/" and the escaped token; cut at a UTF-8 boundary when full */

static void
mealapi_pointer_add(mealapi_pbuf_t *pb, const char *s, size_t len)
{
    size_t         i, n, start;
    unsigned char  c;

    if (pb->full) {
        return;
    }

    if (pb->len + 2 > pb->size) {
        pb->full = 1;
        return;
    }

    start = pb->len;
    pb->buf[pb->len++] = '/';

    for (i = 0; i < len; i += n) {
        c = s[i];

        if (c == '~' || c == '/') {
            if (pb->len + 3 > pb->size) {
                break;
            }

            pb->buf[pb->len++] = '~';
            pb->buf[pb->len++] = (c == '~') ? '0' : '1';
            n = 1;
            continue;
        }

        n = (c < 0xc0) ? 1 : (c < 0xe0) ? 2 : (c < 0xf0) ? 3 : 4;

        if (n > len - i) {
            n = len - i;
        }

        if (pb->len + n + 1 > pb->size) {
            break;
        }

        memcpy(pb->buf + pb->len, s + i, n);
        pb->len += n;
    }

    if (i < len) {
        pb->full = 1;

        if (i == 0) {
            /* not a lone "/": that would name the key "" */
            pb->len = start;
        }
    }

    pb->buf[pb->len] = '\0';
}


/* the root's segment first: recursion as deep as the instance */

static void
mealapi_pointer_frame(mealapi_pbuf_t *pb, const mealapi_frame_t *frame)
{
    int   n;
    char  num[24];

    if (frame == NULL || pb->full) {
        return;
    }

    mealapi_pointer_frame(pb, frame->parent);

    if (frame->key) {
        mealapi_pointer_add(pb, frame->key, frame->len);
        return;
    }

    n = snprintf(num, sizeof(num), "%zu", frame->len);

    mealapi_pointer_add(pb, num, (size_t) n);
}


int
mealapi_json_depth(const json_t *json)
{
    int      d, max;
    void    *it;
    size_t   i, n;
    json_t  *o;

    if (json == NULL) {
        return 0;
    }

    max = 0;

    switch (json_typeof(json)) {

    case JSON_OBJECT:
        o = (json_t *) json;

        for (it = json_object_iter(o); it; it = json_object_iter_next(o, it))
        {
            d = mealapi_json_depth(json_object_iter_value(it));

            if (d > max) {
                max = d;
            }
        }

        return max + 1;

    case JSON_ARRAY:
        n = json_array_size(json);

        for (i = 0; i < n; i++) {
            d = mealapi_json_depth(json_array_get(json, i));

            if (d > max) {
                max = d;
            }
        }

        return max + 1;

    default:
        return 0;
    }
}
