
/*
 * Unit tests of ngx_http_mealapi_schema.c: each keyword valid and invalid,
 * the violations' pointers and keywords, compile errors and their schema
 * pointers, the project's schemas.  Prints TAP; exits non-zero on failure.
 *
 *     fuzz/run.sh selftest
 */


#define _POSIX_C_SOURCE  200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "ngx_http_mealapi_schema.h"


#define MAXV  16


static int  tests, failed;


static void
ok(int cond, const char *what, const char *detail)
{
    tests++;

    printf("%sok %d - %s\n", cond ? "" : "not ", tests, what);

    if (!cond) {
        failed++;

        if (detail) {
            printf("#   %s\n", detail);
        }
    }
}


static json_t *
parse(const char *text)
{
    json_t        *j;
    json_error_t   e;

    j = json_loads(text, JSON_REJECT_DUPLICATES|JSON_DECODE_ANY|JSON_ALLOW_NUL,
                   &e);

    if (j == NULL) {
        printf("# bad test JSON: %s: %s\n", text, e.text);
        exit(2);
    }

    return j;
}


/* the violations as "pointer:keyword pointer:keyword" */

static void
describe(mealapi_violation_t *v, int n, char *out, size_t len)
{
    int     i;
    size_t  used;

    out[0] = '\0';
    used = 0;

    for (i = 0; i < n && i < MAXV; i++) {
        used += snprintf(out + used, len - used, "%s%s:%s", i ? " " : "",
                         v[i].pointer, v[i].keyword);
        if (used >= len) {
            break;
        }
    }
}


/* instance against schema: expect "" (valid) or the violations */

static void
check(const char *schema_text, const char *instance, const char *expect)
{
    int                   n;
    char                  err[256], got[1024], what[1200], detail[1400];
    json_t               *doc, *inst;
    mealapi_schema_t     *schema;
    mealapi_violation_t   v[MAXV];

    doc = parse(schema_text);
    schema = mealapi_schema_compile(doc, err, sizeof(err));
    json_decref(doc);

    snprintf(what, sizeof(what), "%s | %s -> %s", schema_text, instance,
             expect[0] ? expect : "valid");

    if (schema == NULL) {
        snprintf(detail, sizeof(detail), "compile failed: %s", err);
        ok(0, what, detail);
        return;
    }

    inst = parse(instance);

    n = mealapi_schema_validate(schema, inst, v, MAXV);
    describe(v, n, got, sizeof(got));

    snprintf(detail, sizeof(detail), "got (%d) \"%s\"", n, got);
    ok(strcmp(got, expect) == 0, what, detail);

    json_decref(inst);
    mealapi_schema_free(schema);
}


static void
compile_error(const char *schema_text, const char *expect)
{
    char               err[256], what[1024], detail[512];
    json_t            *doc;
    mealapi_schema_t  *schema;

    doc = parse(schema_text);
    schema = mealapi_schema_compile(doc, err, sizeof(err));
    json_decref(doc);

    snprintf(what, sizeof(what), "compile error: %s -> %s", schema_text,
             expect);

    if (schema) {
        mealapi_schema_free(schema);
        ok(0, what, "compiled");
        return;
    }

    snprintf(detail, sizeof(detail), "got \"%s\"", err);
    ok(strncmp(err, expect, strlen(expect)) == 0, what, detail);
}


static void
test_type(void)
{
    check("{\"type\":\"string\"}", "\"x\"", "");
    check("{\"type\":\"string\"}", "1", ":type");
    check("{\"type\":\"integer\"}", "1", "");
    check("{\"type\":\"integer\"}", "1.0", "");
    check("{\"type\":\"integer\"}", "1.5", ":type");
    check("{\"type\":\"number\"}", "1", "");
    check("{\"type\":\"number\"}", "1.5", "");
    check("{\"type\":\"number\"}", "\"1\"", ":type");
    check("{\"type\":\"null\"}", "null", "");
    check("{\"type\":\"null\"}", "false", ":type");
    check("{\"type\":\"boolean\"}", "false", "");
    check("{\"type\":\"boolean\"}", "0", ":type");
    check("{\"type\":\"object\"}", "{}", "");
    check("{\"type\":\"object\"}", "[]", ":type");
    check("{\"type\":\"array\"}", "[]", "");
    check("{\"type\":[\"string\",\"null\"]}", "null", "");
    check("{\"type\":[\"string\",\"null\"]}", "\"a\"", "");
    check("{\"type\":[\"string\",\"null\"]}", "{}", ":type");

    compile_error("{\"type\":\"strin\"}", "/type: unknown type");
    compile_error("{\"type\":[\"string\",3]}", "/type/1: must be a type");
    compile_error("{\"type\":[]}", "/type: must be");
    compile_error("{\"type\":[\"null\",\"null\"]}", "/type/1: duplicate");
}


static void
test_object(void)
{
    const char  *s;

    s = "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\"},"
        "\"n\":{\"type\":\"integer\"}},\"required\":[\"title\",\"kind\"],"
        "\"additionalProperties\":false}";

    check(s, "{\"title\":\"a\",\"kind\":1}", "/kind:additionalProperties");
    check(s, "{\"title\":\"a\"}", "/kind:required");
    check(s, "{}", "/title:required /kind:required");
    check(s, "{\"title\":1,\"n\":\"x\",\"kind\":0,\"x\":0}",
          "/title:type /n:type /kind:additionalProperties"
          " /x:additionalProperties");

    s = "{\"properties\":{\"a\":{\"type\":\"string\"}},"
        "\"additionalProperties\":{\"type\":\"integer\"}}";

    check(s, "{\"a\":\"x\",\"b\":1,\"c\":2}", "");
    check(s, "{\"a\":\"x\",\"b\":\"y\"}", "/b:type");
    check(s, "[1]", "");

    check("{\"additionalProperties\":true}", "{\"a\":1}", "");
    check("{\"properties\":{\"a\":true,\"b\":false}}", "{\"a\":1}", "");
    check("{\"properties\":{\"a\":true,\"b\":false}}", "{\"b\":1}",
          "/b:properties");
    check("{\"required\":[\"a~b\",\"c/d\"]}", "{}",
          "/a~0b:required /c~1d:required");
    check("{\"required\":[\"a\"]}", "\"not an object\"", "");
    check("{\"required\":[]}", "{}", "");
    check("{\"minProperties\":2}", "{\"a\":1}", ":minProperties");
    check("{\"minProperties\":2}", "{\"a\":1,\"b\":2}", "");
    check("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}", ":maxProperties");
    check("{\"maxProperties\":1}", "{\"a\":1}", "");

    /* many properties: the hash table with collisions */
    check("{\"properties\":{\"a1\":{\"type\":\"string\"},\"a2\":{},"
          "\"a3\":{},\"a4\":{},\"a5\":{},\"a6\":{},\"b1\":{},\"b2\":{},"
          "\"\":{\"type\":\"null\"}},\"additionalProperties\":false}",
          "{\"a1\":\"\",\"a6\":1,\"b2\":2,\"\":1,\"a7\":0}",
          "/:type /a7:additionalProperties");

    compile_error("{\"properties\":[]}", "/properties: must be an object");
    compile_error("{\"properties\":{\"name\":{\"maxLenght\":3}}}",
                  "/properties/name/maxLenght: unknown keyword");
    compile_error("{\"properties\":{\"a/b\":{\"type\":1}}}",
                  "/properties/a~1b/type: must be");
    compile_error("{\"required\":\"a\"}", "/required: must be an array");
    compile_error("{\"required\":[\"a\",1]}", "/required/1: must be a string");
    compile_error("{\"required\":[\"a\",\"b\",\"a\"]}",
                  "/required/2: duplicate");
    compile_error("{\"additionalProperties\":1}",
                  "/additionalProperties: a schema must be");
    compile_error("{\"minProperties\":-1}", "/minProperties: must be a non");
    compile_error("{\"maxProperties\":\"1\"}", "/maxProperties: must be a non");
}


static void
test_array(void)
{
    check("{\"items\":{\"type\":\"string\"}}", "[\"a\",\"b\"]", "");
    check("{\"items\":{\"type\":\"string\"}}", "[\"a\",1,\"b\",null]",
          "/1:type /3:type");
    check("{\"items\":false}", "[]", "");
    check("{\"items\":false}", "[1]", "/0:items");
    check("{\"minItems\":1}", "[]", ":minItems");
    check("{\"minItems\":1}", "[0]", "");
    check("{\"maxItems\":1}", "[0,1]", ":maxItems");
    check("{\"maxItems\":1.0}", "[0]", "");

    check("{\"uniqueItems\":true,\"maxItems\":100}", "[1,2,3]", "");
    check("{\"uniqueItems\":true,\"maxItems\":100}", "[1,2,1.0]",
          ":uniqueItems");
    check("{\"uniqueItems\":true,\"maxItems\":100}",
          "[{\"a\":1,\"b\":[1]},{\"b\":[1.0],\"a\":1}]", ":uniqueItems");
    check("{\"uniqueItems\":true,\"maxItems\":100}",
          "[{\"a\":1,\"b\":[1]},{\"b\":[2],\"a\":1}]", "");
    check("{\"uniqueItems\":true,\"maxItems\":100}",
          "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"]", "");
    check("{\"uniqueItems\":true,\"maxItems\":100}",
          "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"a\"]",
          ":uniqueItems");
    check("{\"uniqueItems\":true,\"maxItems\":100}",
          "[0,1,2,3,4,5,6,7,8,9,true,false,null,[],{},-0.0,\"0\"]",
          ":uniqueItems");
    check("{\"uniqueItems\":true,\"maxItems\":100}",
          "[0,1,2,3,4,5,6,7,8,9,true,false,null,[],{},0.5,\"0\"]", "");
    check("{\"uniqueItems\":false}", "[1,1]", "");

    compile_error("{\"items\":[{}]}", "/items: must be a schema");
    compile_error("{\"items\":{\"type\":\"x\"}}", "/items/type: unknown");
    compile_error("{\"minItems\":1.5}", "/minItems: must be a non-negative");
    compile_error("{\"uniqueItems\":1}", "/uniqueItems: must be a boolean");
    compile_error("{\"uniqueItems\":true}", "/uniqueItems: needs \"maxItems\"");
    compile_error("{\"uniqueItems\":true,\"maxItems\":5000}",
                  "/uniqueItems: needs");
}


static void
test_string(void)
{
    check("{\"minLength\":2,\"maxLength\":3}", "\"ab\"", "");
    check("{\"minLength\":2,\"maxLength\":3}", "\"a\"", ":minLength");
    check("{\"minLength\":2,\"maxLength\":3}", "\"abcd\"", ":maxLength");
    /* code points, not bytes: "\u00e9\u00e9\u00e9" is 6 bytes */
    check("{\"maxLength\":3}", "\"\\u00e9\\u00e9\\u00e9\"", "");
    check("{\"minLength\":4}", "\"\\u00e9\\u00e9\\u00e9\"", ":minLength");
    check("{\"maxLength\":2}", "\"\\ud83c\\udf4e\\ud83c\\udf4f\"", "");
    check("{\"maxLength\":1}", "\"\\ud83c\\udf4e\\ud83c\\udf4f\"",
          ":maxLength");
    check("{\"maxLength\":9}", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
          "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", ":maxLength");
    check("{\"maxLength\":10}", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
          "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", "");
    check("{\"minLength\":3}", "\"\\ud83c\\udf4e\\ud83c\\udf4f\"",
          ":minLength");
    check("{\"minLength\":1}", "1", "");

    check("{\"pattern\":\"^[a-z]{2}(-[A-Z]{2})?$\"}", "\"en-GB\"", "");
    check("{\"pattern\":\"^[a-z]{2}(-[A-Z]{2})?$\"}", "\"en-gb\"",
          ":pattern");
    check("{\"pattern\":\"^[a-z]{2}$\"}", "\"en\\n\"", ":pattern");
    check("{\"pattern\":\"b\"}", "\"abc\"", "");
    check("{\"pattern\":\"^.$\"}", "\"\\u00e9\"", "");
    check("{\"pattern\":\"^\\\\p{Lu}\"}", "\"\\u00c9t\\u00e9\"", "");
    check("{\"pattern\":\"^(a+)+$\"}",
          "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"",
          ":pattern");

    check("{\"format\":\"uuid\"}", "\"3f1c9a52-8d5e-4b0a-9c1e-2a7b6d4e8f01\"",
          "");
    check("{\"format\":\"uuid\"}", "\"3F1C9A52-8D5E-4B0A-9C1E-2A7B6D4E8F01\"",
          "");
    check("{\"format\":\"uuid\"}", "\"3f1c9a52-8d5e-4b0a-9c1e-2a7b6d4e8f0\"",
          ":format");
    check("{\"format\":\"uuid\"}", "\"3f1c9a52x8d5e-4b0a-9c1e-2a7b6d4e8f01\"",
          ":format");
    check("{\"format\":\"uuid\"}", "\"3f1c9a52-8d5e-4b0a-9c1e-2a7b6d4e8g01\"",
          ":format");

    check("{\"format\":\"date-time\"}", "\"1985-04-12T23:20:50.52Z\"", "");
    check("{\"format\":\"date-time\"}", "\"1996-12-19T16:39:57-08:00\"", "");
    check("{\"format\":\"date-time\"}", "\"1990-12-31t23:59:60z\"", "");
    check("{\"format\":\"date-time\"}", "\"2024-02-29T00:00:00+14:00\"", "");
    check("{\"format\":\"date-time\"}", "\"2000-02-29T00:00:00Z\"", "");
    check("{\"format\":\"date-time\"}", "\"2023-02-29T00:00:00Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"1900-02-29T00:00:00Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-04-31T00:00:00Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-13-01T00:00:00Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-00-01T00:00:00Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T24:00:00Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:60:00Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:59:61Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01 23:59:59Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:59:59\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:59:59.Z\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:59:59.5\"", ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:59:59+0100\"",
          ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:59:59+24:00\"",
          ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01T23:59:59Z \"",
          ":format");
    check("{\"format\":\"date-time\"}", "\"2024-01-01\"", ":format");

    check("{\"format\":\"email\"}", "\"anna.kowalska@dietetyk.example.pl\"",
          "");
    check("{\"format\":\"email\"}", "\"a+b@x-y.co\"", "");
    check("{\"format\":\"email\"}", "\"j\\u00f6rg@example.com\"", "");
    check("{\"format\":\"email\"}", "\"@example.com\"", ":format");
    check("{\"format\":\"email\"}", "\"a b@example.com\"", ":format");
    check("{\"format\":\"email\"}", "\"a@b@example.com\"", ":format");
    check("{\"format\":\"email\"}", "\"a@localhost\"", ":format");
    check("{\"format\":\"email\"}", "\"a@-x.com\"", ":format");
    check("{\"format\":\"email\"}", "\"a@x-.com\"", ":format");
    check("{\"format\":\"email\"}", "\"a@x..com\"", ":format");
    check("{\"format\":\"email\"}", "\"a@x.com.\"", ":format");
    check("{\"format\":\"email\"}", "\"a@x_y.com\"", ":format");
    check("{\"format\":\"email\"}", "\"a\\u0001@x.com\"", ":format");
    check("{\"format\":\"email\"}", "42", "");

    compile_error("{\"minLength\":\"3\"}", "/minLength: must be a non-neg");
    compile_error("{\"minLength\":-3}", "/minLength: must be a non-neg");
    compile_error("{\"maxLength\":true}", "/maxLength: must be a non-neg");
    compile_error("{\"pattern\":\"a(b\"}",
                  "/pattern: invalid regular expression at offset 3: "
                  "missing closing parenthesis");
    compile_error("{\"pattern\":1}", "/pattern: must be a string");
    compile_error("{\"format\":\"uri\"}", "/format: unsupported format");
    compile_error("{\"format\":5}", "/format: must be a string");
}


static void
test_number(void)
{
    check("{\"minimum\":1}", "1", "");
    check("{\"minimum\":1}", "0.999", ":minimum");
    check("{\"minimum\":1.5}", "1", ":minimum");
    check("{\"minimum\":1.5}", "2", "");
    check("{\"maximum\":10}", "10.0", "");
    check("{\"maximum\":10}", "10.000001", ":maximum");
    check("{\"exclusiveMinimum\":0}", "0", ":exclusiveMinimum");
    check("{\"exclusiveMinimum\":0}", "0.0", ":exclusiveMinimum");
    check("{\"exclusiveMinimum\":0}", "1e-9", "");
    check("{\"exclusiveMaximum\":1}", "1", ":exclusiveMaximum");
    check("{\"exclusiveMaximum\":1}", "0.99", "");
    check("{\"maximum\":9007199254740993}", "9007199254740992.0", "");
    check("{\"minimum\":9007199254740993}", "9007199254740992.0",
          ":minimum");
    check("{\"maximum\":9223372036854775807}", "1e19", ":maximum");
    check("{\"minimum\":-9223372036854775808}", "-1e19", ":minimum");
    check("{\"minimum\":1}", "\"0\"", "");

    check("{\"multipleOf\":5}", "25", "");
    check("{\"multipleOf\":5}", "26", ":multipleOf");
    check("{\"multipleOf\":5}", "-25", "");
    check("{\"multipleOf\":5}", "25.0", "");
    check("{\"multipleOf\":0.01}", "19.99", "");
    check("{\"multipleOf\":0.01}", "19.995", ":multipleOf");
    check("{\"multipleOf\":0.1}", "0.3", "");
    check("{\"multipleOf\":0.5}", "3", "");
    check("{\"multipleOf\":0.5}", "3.25", ":multipleOf");
    check("{\"multipleOf\":1e-300}", "1e300", ":multipleOf");

    compile_error("{\"minimum\":\"1\"}", "/minimum: must be a number");
    compile_error("{\"exclusiveMinimum\":true}",
                  "/exclusiveMinimum: must be a number");
    compile_error("{\"multipleOf\":0}", "/multipleOf: must be a number gr");
    compile_error("{\"multipleOf\":-0.5}", "/multipleOf: must be a number");
}


static void
test_enum_const(void)
{
    check("{\"enum\":[\"recipe\",\"meal_plan\"]}", "\"recipe\"", "");
    check("{\"enum\":[\"recipe\",\"meal_plan\"]}", "\"recipes\"", ":enum");
    check("{\"enum\":[\"recipe\",\"meal_plan\"]}", "1", ":enum");
    check("{\"enum\":[1,\"a\",null,[1,2],{\"x\":1}]}", "1.0", "");
    check("{\"enum\":[1,\"a\",null,[1,2],{\"x\":1}]}", "null", "");
    check("{\"enum\":[1,\"a\",null,[1,2],{\"x\":1}]}", "[1,2.0]", "");
    check("{\"enum\":[1,\"a\",null,[1,2],{\"x\":1}]}", "{\"x\":1.0}", "");
    check("{\"enum\":[1,\"a\",null,[1,2],{\"x\":1}]}", "[2,1]", ":enum");
    check("{\"enum\":[1,\"a\",null,[1,2],{\"x\":1}]}", "false", ":enum");
    check("{\"enum\":[1,\"a\",null,[1,2],{\"x\":1}]}", "{\"x\":1,\"y\":2}",
          ":enum");
    check("{\"const\":1}", "1.0", "");
    check("{\"const\":1.0}", "1", "");
    check("{\"const\":1}", "true", ":const");
    check("{\"const\":false}", "0", ":const");
    check("{\"const\":{\"a\":[1,{\"b\":null}]}}", "{\"a\":[1,{\"b\":null}]}",
          "");
    check("{\"const\":{\"a\":[1,{\"b\":null}]}}", "{\"a\":[1,{\"b\":0}]}",
          ":const");
    check("{\"const\":\"a\\u0000b\"}", "\"a\\u0000b\"", "");
    check("{\"const\":\"a\\u0000b\"}", "\"a\\u0000c\"", ":const");

    compile_error("{\"enum\":[]}", "/enum: must be a non-empty array");
    compile_error("{\"enum\":\"a\"}", "/enum: must be a non-empty array");
}


static void
test_ref(void)
{
    const char  *tree;

    check("{\"$defs\":{\"id\":{\"type\":\"string\",\"format\":\"uuid\"}},"
          "\"properties\":{\"a\":{\"$ref\":\"#/$defs/id\"}}}",
          "{\"a\":\"x\"}", "/a:format");
    check("{\"$defs\":{\"a/b~c\":{\"type\":\"string\"}},"
          "\"$ref\":\"#/$defs/a~1b~0c\"}", "1", ":type");
    check("{\"$defs\":{\"no\":false},\"$ref\":\"#/$defs/no\"}", "1", ":$ref");

    /* $ref with siblings: both apply */
    check("{\"$defs\":{\"s\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/s\","
          "\"maxLength\":2}", "\"abc\"", ":maxLength");
    check("{\"$defs\":{\"s\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/s\","
          "\"maxLength\":2}", "12", ":type");

    /* a chain of references */
    check("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":"
          "\"#/$defs/c\"},\"c\":{\"minimum\":5}},\"$ref\":\"#/$defs/a\"}",
          "4", ":minimum");

    /* recursion that descends: a tree */
    tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"required\":"
           "[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},"
           "\"children\":{\"type\":\"array\",\"maxItems\":10,"
           "\"items\":{\"$ref\":\"#/$defs/node\"}}},"
           "\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}";

    check(tree, "{\"name\":\"a\",\"children\":[{\"name\":\"b\"},{\"name\":"
          "\"c\",\"children\":[{\"name\":\"d\",\"children\":[]}]}]}", "");
    check(tree, "{\"name\":\"a\",\"children\":[{\"name\":\"b\"},{\"name\":"
          "\"c\",\"children\":[{\"nam\":\"d\"}]}]}",
          "/children/1/children/0/nam:additionalProperties"
          " /children/1/children/0/name:required");

    check("{\"properties\":{\"next\":{\"$ref\":\"#\"},\"v\":{\"type\":"
          "\"integer\"}}}", "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":"
          "\"x\"}}}", "/next/next/v:type");

    /* a chain with two applicators: evaluated twice, still bounded */
    check("{\"$defs\":{\"a\":{\"properties\":{\"x\":{\"$ref\":\"#/$defs/a\"}}"
          ",\"$ref\":\"#/$defs/b\"},\"b\":{\"properties\":{\"x\":{\"$ref\":"
          "\"#/$defs/a\"}},\"maxProperties\":1}},\"$ref\":\"#/$defs/a\"}",
          "{\"x\":{\"x\":{\"x\":{}}}}", "");

    compile_error("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}}}",
                  "/$defs/a/$ref: reference cycle");
    compile_error("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":"
                  "{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}",
                  "/$defs/");
    compile_error("{\"$ref\":\"#\"}", "/$ref: reference cycle");
    compile_error("{\"$defs\":{\"a\":{\"type\":\"string\"}},"
                  "\"$ref\":\"#/$defs/b\"}", "/$ref: unresolvable reference");
    compile_error("{\"$ref\":\"other.json#/x\"}", "/$ref: unsupported ref");
    compile_error("{\"$ref\":\"#/properties/a\"}", "/$ref: unsupported ref");
    compile_error("{\"$ref\":\"#/$defs/a/b\"}", "/$ref: unsupported ref");
    compile_error("{\"$ref\":\"#/$defs/a~2\"}", "/$ref: invalid JSON pointer");
    compile_error("{\"properties\":{\"a\":{\"$defs\":{}}}}",
                  "/properties/a/$defs: \"$defs\" is supported at the root");
    compile_error("{\"$defs\":{\"a\":{\"type\":\"nope\"}}}",
                  "/$defs/a/type: unknown type");
}


static void
test_misc(void)
{
    int                   n, i;
    char                  err[256], big[4096];
    json_t               *doc, *inst, *o;
    mealapi_schema_t     *schema;
    mealapi_violation_t   v[4];

    check("true", "{\"anything\":[1]}", "");
    check("false", "1", ":false");
    check("{}", "null", "");
    check("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
          "\"$id\":\"x\",\"title\":\"t\",\"description\":\"d\","
          "\"$comment\":\"c\",\"examples\":[1],\"default\":0}", "1", "");

    compile_error("3", "(root): a schema must be an object or a boolean");
    compile_error("{\"allOf\":[]}", "/allOf: unknown keyword");
    compile_error("{\"properties\":{\"a\":{\"items\":{\"foo\":1}}}}",
                  "/properties/a/items/foo: unknown keyword");

    /* bounded: at most max are written, max + 1 counted */

    doc = parse("{\"items\":{\"type\":\"string\"}}");
    schema = mealapi_schema_compile(doc, err, sizeof(err));
    json_decref(doc);

    inst = parse("[1,2,3,4,5,6,7,8,9,10]");

    n = mealapi_schema_validate(schema, inst, v, 2);
    ok(n == 3 && strcmp(v[0].pointer, "/0") == 0
       && strcmp(v[1].pointer, "/1") == 0, "stops after max + 1", NULL);

    n = mealapi_schema_validate(schema, inst, NULL, 0);
    ok(n == 1, "max 0: one violation counted", NULL);

    json_decref(inst);
    mealapi_schema_free(schema);

    /* long pointers are cut at a UTF-8 boundary */

    doc = parse("{\"additionalProperties\":false}");
    schema = mealapi_schema_compile(doc, err, sizeof(err));
    json_decref(doc);

    memset(big, 0, sizeof(big));

    for (i = 0; i < 100; i++) {
        memcpy(big + 2 * i, "\xc3\xa9", 2);     /* e acute, 2 bytes */
    }

    big[0] = 'x';
    big[1] = '~';

    inst = json_object();
    json_object_set_new(inst, big, json_true());

    n = mealapi_schema_validate(schema, inst, v, 1);
    ok(n == 1 && strlen(v[0].pointer) == MEALAPI_SCHEMA_POINTER_MAX - 2
       && strncmp(v[0].pointer, "/x~0\xc3\xa9", 6) == 0,
       "long pointer cut at a code point", v[0].pointer);

    json_decref(inst);
    mealapi_schema_free(schema);

    /* depth */

    inst = parse("[1,{\"a\":[[]]},{}]");
    ok(mealapi_json_depth(inst) == 4, "depth 4", NULL);
    json_decref(inst);

    inst = parse("\"s\"");
    ok(mealapi_json_depth(inst) == 0, "depth of a scalar", NULL);
    json_decref(inst);

    /* a deep instance against a recursive schema */

    doc = parse("{\"items\":{\"$ref\":\"#\"},\"maxItems\":1}");
    schema = mealapi_schema_compile(doc, err, sizeof(err));
    json_decref(doc);

    inst = json_array();
    o = inst;

    for (i = 0; i < 2000; i++) {
        json_array_append_new(o, json_array());
        o = json_array_get(o, 0);
    }

    json_array_append_new(o, json_true());
    json_array_append_new(o, json_true());

    n = mealapi_schema_validate(schema, inst, v, 4);
    ok(n == 1 && strcmp(v[0].keyword, "maxItems") == 0
       && strlen(v[0].pointer) == MEALAPI_SCHEMA_POINTER_MAX - 2
       && strncmp(v[0].pointer, "/0/0/0/", 7) == 0
       && v[0].pointer[MEALAPI_SCHEMA_POINTER_MAX - 3] == '0',
       "2000 levels deep, pointer cut", v[0].pointer);
    ok(mealapi_json_depth(inst) == 2001, "depth 2001", NULL);

    json_decref(inst);
    mealapi_schema_free(schema);

    /* exponential $ref fan-out is cut by the budget */

    doc = parse("{\"$defs\":{\"a\":{\"items\":{\"$ref\":\"#/$defs/a\"},"
                "\"$ref\":\"#/$defs/b\"},\"b\":{\"items\":{\"$ref\":"
                "\"#/$defs/a\"}}},\"$ref\":\"#/$defs/a\"}");
    schema = mealapi_schema_compile(doc, err, sizeof(err));
    json_decref(doc);

    inst = json_array();
    o = inst;

    for (i = 0; i < 40; i++) {
        json_array_append_new(o, json_array());
        o = json_array_get(o, 0);
    }

    n = mealapi_schema_validate(schema, inst, v, 4);
    ok(n == 1 && strcmp(v[0].keyword, "$ref") == 0, "fan-out budget, items",
       NULL);

    json_decref(inst);
    mealapi_schema_free(schema);

    doc = parse("{\"$defs\":{\"a\":{\"properties\":{\"x\":{\"$ref\":"
                "\"#/$defs/a\"}},\"$ref\":\"#/$defs/b\"},\"b\":{"
                "\"additionalProperties\":{\"$ref\":\"#/$defs/a\"}}},"
                "\"$ref\":\"#/$defs/a\"}");
    schema = mealapi_schema_compile(doc, err, sizeof(err));
    json_decref(doc);

    inst = json_object();
    o = inst;

    for (i = 0; i < 40; i++) {
        json_object_set_new(o, "x", json_object());
        o = json_object_get(o, "x");
    }

    n = mealapi_schema_validate(schema, inst, v, 4);
    ok(n == 1 && strcmp(v[0].keyword, "$ref") == 0,
       "fan-out budget, members", NULL);

    json_decref(inst);
    mealapi_schema_free(schema);
}


static void
test_files(const char *dir)
{
    char                  path[1024], err[256], detail[512];
    json_t               *inst;
    mealapi_schema_t     *schema;
    int                   n, i;
    FILE                 *f;
    json_error_t          e;
    mealapi_violation_t   v[MAXV];

    static const struct {
        const char  *file;
        const char  *body;
        const char  *expect;
    } cases[] = {
        { "samples.create.json",
          "{\"title\":\"Mediterranean week\",\"kind\":\"meal_plan\","
          "\"language\":\"en-GB\",\"text\":\"Day 1: ...\","
          "\"tags\":[\"mediterranean\",\"high fibre\"],"
          "\"source_url\":\"https://blog.example.com/posts/42\","
          "\"author_email\":\"anna@dietitians.example.org\","
          "\"written_at\":\"2026-03-01T09:30:00+01:00\",\"servings\":4}",
          "" },
        { "samples.create.json",
          "{\"title\":\"\",\"kind\":\"poem\",\"language\":\"english\","
          "\"tags\":[\"a\",\"a\"],\"source_url\":\"http://x\","
          "\"extra\":1}",
          "/title:minLength /kind:enum /language:pattern /tags:uniqueItems"
          " /source_url:pattern /extra:additionalProperties /text:required" },
        { "generations.create.json",
          "{\"kind\":\"recipe\",\"sample_ids\":"
          "[\"3f1c9a52-8d5e-4b0a-9c1e-2a7b6d4e8f01\"],"
          "\"audience\":{\"age_group\":\"adults\",\"dietary_restrictions\":"
          "[\"vegan\",\"gluten_free\"],\"daily_calories\":1800},"
          "\"max_words\":600,\"tone\":\"friendly\",\"language\":\"pl\"}",
          "" },
        { "generations.create.json",
          "{\"kind\":\"recipe\",\"sample_ids\":[\"3f1c9a52\","
          "\"3f1c9a52\"],\"audience\":{\"age_group\":\"toddlers\","
          "\"daily_calories\":1825,\"x\":1},\"max_words\":20.5}",
          "/sample_ids:uniqueItems /sample_ids/0:format /sample_ids/1:format"
          " /audience/age_group:enum /audience/daily_calories:multipleOf"
          " /audience/x:additionalProperties /max_words:type"
          " /max_words:minimum" },
        { NULL, NULL, NULL }
    };

    for (i = 0; cases[i].file; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);

        schema = mealapi_schema_load(path, err, sizeof(err));
        if (schema == NULL) {
            snprintf(detail, sizeof(detail), "%s", err);
            ok(0, path, detail);
            continue;
        }

        inst = json_loads(cases[i].body, JSON_REJECT_DUPLICATES, &e);
        if (inst == NULL) {
            printf("# bad test JSON: %s\n", e.text);
            exit(2);
        }

        n = mealapi_schema_validate(schema, inst, v, MAXV);
        describe(v, n, detail, sizeof(detail));

        snprintf(path, sizeof(path), "%s case %d -> %s", cases[i].file, i,
                 cases[i].expect[0] ? cases[i].expect : "valid");
        ok(strcmp(detail, cases[i].expect) == 0, path, detail);

        json_decref(inst);
        mealapi_schema_free(schema);
    }

    snprintf(path, sizeof(path), "%s/no-such-file.json", dir);
    schema = mealapi_schema_load(path, err, sizeof(err));
    ok(schema == NULL && err[0] != '\0', "missing file is an error", err);

    /* duplicate keys in a schema file */

    snprintf(path, sizeof(path), "/tmp/mealapi-selftest-%ld.json",
             (long) getpid());
    f = fopen(path, "w");

    if (f == NULL) {
        ok(0, "temporary file", path);
        return;
    }

    fputs("{\"type\": \"object\",\n \"type\": \"array\"}\n", f);
    fclose(f);

    schema = mealapi_schema_load(path, err, sizeof(err));
    ok(schema == NULL
       && strcmp(err, "line 2, column 7: duplicate object key near "
                      "'\"type\"'") == 0,
       "duplicate keys in a file are an error", err);
    remove(path);
}


int
main(int argc, char **argv)
{
    test_type();
    test_object();
    test_array();
    test_string();
    test_number();
    test_enum_const();
    test_ref();
    test_misc();
    test_files(argc > 1 ? argv[1] : "conf/schemas");

    printf("1..%d\n", tests);

    if (failed) {
        printf("# %d of %d failed\n", failed, tests);
        return 1;
    }

    return 0;
}
