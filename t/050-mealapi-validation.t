# Input validation at the gateway: query parameters, media type, size,
# JSON syntax (duplicates, UTF-8, trailing data, depth) and compiled JSON
# Schemas; bodies in one buffer, many, chunked, slow, or spooled to disk;
# nothing read before the client is authenticated.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;

no_shuffle();

our $TenantA = gateway_fixture();
our $Base = "http://127.0.0.1:" . ($ENV{TEST_NGINX_SERVER_PORT}
                                   || $ENV{TEST_NGINX_PORT} || 1984);

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $code = $block->nutripro_check or return;
    return if $dry_run || $req_idx > 0;
    my $name = $block->name;
    eval "$code; 1" or fail("$name: check died: $@");
});

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('main_config', <<'CONF') unless defined $block->main_config;
load_module $TEST_NGINX_MODULES/ngx_mealapi_module.so;
CONF

    my $extra = $block->gateway_extra // '';

    $block->set_value('http_config', <<CONF) unless defined $block->http_config;
mealapi_database gw {
    server unix:\$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_gateway;
}
mealapi_registry zone=tenants:1m database=gw;

server {
    listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1 ssl;
    ssl_certificate \$TEST_NGINX_PKI/gateway.crt;
    ssl_certificate_key \$TEST_NGINX_PKI/gateway.key;
    ssl_client_certificate \$TEST_NGINX_PKI/tenant-ca.crt;
    ssl_verify_client optional_no_ca;

    mealapi_route samples.create POST /v1/samples
                  schema=\$TEST_NGINX_TOP/conf/schemas/samples.create.json;
    mealapi_route generations.create POST /v1/generations
                  schema=\$TEST_NGINX_TOP/conf/schemas/generations.create.json;
    mealapi_route samples.list GET /v1/samples;
    mealapi_query_param samples.list limit "[1-9][0-9]?" ;
    mealapi_query_param samples.list kind "diet_introduction|meal_plan|recipe|newsletter";
    mealapi_route tests.keywords POST /v1/keywords
                  schema=\$TEST_NGINX_TOP/t/schemas/keywords.json;
    mealapi_route tests.required GET /v1/required;
    mealapi_query_param tests.required id "[0-9]+" required;
    mealapi_route tests.lenient GET /v1/lenient query=lenient;
    mealapi_query_param tests.lenient id "[0-9]+";
    mealapi_signing_key \$TEST_NGINX_PKI/identity.key;
    mealapi_max_body 8k;
    mealapi_json_max_depth 8;
    client_max_body_size 16k;
    $extra

    error_page 413 \@refused;
    location \@refused { mealapi on; }

    location / {
        mealapi on;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_RAND_PORT_2;
    }
}

server {
    listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_2;
    location / { return 200 "passed \$http_x_mealapi_body_sha256\\n"; }
}
CONF

    $block->set_value('config', <<'CONF') unless defined $block->config;
proxy_ssl_session_reuse off;
proxy_request_buffering off;
proxy_http_version 1.1;
location = /ping { return 200 "pong\n"; }
location /a/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-a.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-a.key;
}
location /none/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
}
CONF
});

run_tests();

__DATA__

=== TEST 1: each schema keyword, valid and invalid
--- request
GET /ping
--- timeout: 30
--- nutripro_check
my @cases = (
  # [body, status, pointer, keyword]
  ['{"t_string":"x"}', 200],           ['{"t_string":1}', 422, '/t_string', 'type'],
  ['{"t_multi":null}', 200],           ['{"t_multi":1.5}', 422, '/t_multi', 'type'],
  ['{"min_len":"abc"}', 200],          ['{"min_len":"ab"}', 422, '/min_len', 'minLength'],
  ['{"max_len":"\u00e9\u00e9\u00e9"}', 200],  ['{"max_len":"abcd"}', 422, '/max_len', 'maxLength'],
  ['{"pat":"abc"}', 200],              ['{"pat":"ab1"}', 422, '/pat', 'pattern'],
  ['{"en":null}', 200],                ['{"en":"b"}', 422, '/en', 'enum'],
  ['{"co":{"x":1}}', 200],             ['{"co":{"x":2}}', 422, '/co', 'const'],
  ['{"mn":5}', 200],                   ['{"mn":4.9}', 422, '/mn', 'minimum'],
  ['{"mx":5}', 200],                   ['{"mx":5.1}', 422, '/mx', 'maximum'],
  ['{"emn":5.1}', 200],                ['{"emn":5}', 422, '/emn', 'exclusiveMinimum'],
  ['{"emx":4.9}', 200],                ['{"emx":5}', 422, '/emx', 'exclusiveMaximum'],
  ['{"mul":9}', 200],                  ['{"mul":10}', 422, '/mul', 'multipleOf'],
  ['{"arr":[1,2]}', 200],              ['{"arr":[]}', 422, '/arr', 'minItems'],
  ['{"arr":[1,2,3,4]}', 422, '/arr', 'maxItems'], ['{"arr":[1,1]}', 422, '/arr', 'uniqueItems'],
  ['{"arr":[1,"x"]}', 422, '/arr/1', 'type'],
  ['{"obj":{"a":1,"b":"x"}}', 200],    ['{"obj":{"a":1}}', 422, '/obj', 'minProperties'],
  ['{"obj":{"b":"x","c":"y"}}', 422, '/obj/a', 'required'], ['{"obj":{"a":1,"b":2}}', 422, '/obj/b', 'type'],
  ['{"obj":{"a":1,"b":"x","c":"y","d":"z"}}', 422, '/obj', 'maxProperties'],
  ['{"uuid":"0c7e4ad2-1f3b-4c1d-9e2a-5b6c7d8e9f00"}', 200], ['{"uuid":"0c7e4ad2"}', 422, '/uuid', 'format'],
  ['{"dt":"2026-12-04T08:00:00Z"}', 200], ['{"dt":"2026-02-30T08:00:00Z"}', 422, '/dt', 'format'],
  ['{"em":"dietitian@example.com"}', 200], ['{"em":"not an email"}', 422, '/em', 'format'],
  ['{"ref":1}', 200],                  ['{"ref":0}', 422, '/ref', 'minimum'],
  ['{"nope":1}', 422, '/nope', 'additionalProperties'],
  ['[]', 422, '', 'type'],
);
for my $c (@cases) {
    my ($body, $want, $ptr, $kw) = @$c;
    my ($st, $h, $b) = http_req('POST', "$Base/a/v1/keywords", json => $body);
    is($st, $want, "$name: $body");
    if ($want == 422) {
        my $doc = json_dec($b) // {};
        is($doc->{type}, 'https://nutripro.example/problems/validation-failed', "$name: $body: type");
        is_deeply([map { [$_->{pointer}, $_->{keyword}] } @{ $doc->{errors} // [] }], [[$ptr, $kw]],
                  "$name: $body: pointer and keyword");
    }
}



=== TEST 2: the errors never echo the submitted values, and are bounded
--- request
POST /a/v1/samples
{"title":"","kind":"secret-kind-value","language":"XX-secret","text":"","tags":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]}
--- more_headers
Content-Type: application/json
--- error_code: 422
--- response_body_unlike: secret
--- response_body_like: "truncated":true



=== TEST 3: an AI Nutrition-Pro sample passes and its digest is signed
--- request
POST /a/v1/samples
{"title":"Mediterranean week","kind":"meal_plan","language":"en-GB","text":"Olive oil, fish, vegetables.","tags":["mediterranean","heart"]}
--- more_headers
Content-Type: application/json; charset=utf-8
--- response_body_like: ^passed [0-9a-f]{64}$



=== TEST 4: media type: JSON only where a schema applies
--- request eval
["POST /a/v1/samples\n{\"title\":\"x\"}", "POST /a/v1/samples\n{\"title\":\"x\"}", "POST /a/v1/samples\n{\"title\":\"x\"}"]
--- more_headers eval
["Content-Type: text/plain", "", "Content-Type: application/jsonp"]
--- error_code eval
[415, 415, 415]
--- response_body_like eval
[qr/unsupported-media-type/, qr/unsupported-media-type/, qr/unsupported-media-type/]



=== TEST 5: malformed JSON: 400, with the position only
--- request
GET /ping
--- nutripro_check
my @cases = (
  ['{"title":"a","title":"b"}', 'duplicate key'],
  ["{\"title\":\"\xff\xfe\"}", 'invalid UTF-8'],
  ['{"title":"a"} {"x":1}', 'trailing data'],
  ['{"title":"a"', 'truncated'],
  ['', 'empty'],
  ['{"title":"a\u0000b"}', 'a NUL character'],
);
for my $c (@cases) {
    my ($st, $h, $b) = http_req('POST', "$Base/a/v1/samples", json => $c->[0]);
    is($st, 400, "$name: $c->[1]");
    like($b, qr/"type":"https:\/\/nutripro.example\/problems\/invalid-json".*"line":\d+,"column":\d+/, "$name: $c->[1]: position");
}
my ($st, $h, $b) = http_req('POST', "$Base/a/v1/samples", json => ('[' x 9) . (']' x 9));
is($st, 400, "$name: nesting past the bound");
like($b, qr/json-too-deep/, "$name: as too deep");



=== TEST 6: size: Content-Length over the bound is refused before reading
--- request eval
"POST /a/v1/samples\n" . ('{"title":"' . ("x" x 9000) . '"}')
--- more_headers
Content-Type: application/json
--- error_code: 413
--- response_body_like: body-too-large



=== TEST 7: a chunked body in many chunks is read and validated
--- raw_request eval
my $body = '{"title":"Chunked","kind":"recipe","language":"fr","text":"Ratatouille"}';
my @chunks = map { sprintf("%x\r\n%s\r\n", length $_, $_) } ($body =~ /(.{1,9})/gs);
["POST /a/v1/samples HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
 @chunks[0 .. 3], CORE::join('', @chunks[4 .. $#chunks]) . "0\r\n\r\n"]
--- response_body_like: ^passed [0-9a-f]{64}$



=== TEST 8: a chunked body over the bound: 413 problem document
--- raw_request eval
my $chunk = "x" x 4000;
["POST /a/v1/samples HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
 (sprintf("%x\r\n%s\r\n", 4000, $chunk)) x 3, "0\r\n\r\n"]
--- error_code: 413
--- response_body_like: body-too-large



=== TEST 9: a body spooled to a temporary file is validated the same
--- gateway_extra
client_body_buffer_size 1k;
--- request eval
"POST /a/v1/samples\n" . '{"title":"Spooled","kind":"newsletter","language":"en","text":"' . ("word " x 800) . '"}'
--- more_headers
Content-Type: application/json
--- response_body_like: ^passed [0-9a-f]{64}$



=== TEST 10: a slow body times out (client_body_timeout) instead of holding on
--- gateway_extra
client_body_timeout 1s;
--- raw_request eval
["POST /a/v1/samples HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"title\":",
 "\"late\""]
--- raw_request_middle_delay: 2.5
--- timeout: 6
--- abort
--- ignore_response
--- error_log
upstream prematurely closed connection while reading response header



=== TEST 11: unauthenticated requests never have their body read
--- request eval
"POST /none/v1/samples\n" . ('{"title":"' . ("x" x 12000) . '"}')
--- more_headers
Content-Type: application/json
--- error_code: 401
--- response_body_like: client-certificate-required



=== TEST 12: query parameters: declared, matching, single; unknown ones refused
--- request eval
["GET /a/v1/samples?limit=10&kind=recipe", "GET /a/v1/samples?limit=1000",
 "GET /a/v1/samples?limit=1&limit=2", "GET /a/v1/samples?debug=1",
 "GET /a/v1/samples?kind=recipe%00", "GET /a/v1/samples?kind=%27%3B--",
 "GET /a/v1/required", "GET /a/v1/required?id=7",
 "GET /a/v1/lenient?x=1&x=2&id=3", "GET /a/v1/lenient?id=abc"]
--- error_code eval
[200, 400, 400, 400, 400, 400, 400, 200, 200, 400]
--- response_body_like eval
[qr/^passed/, qr{"parameter":"limit","keyword":"pattern"}, qr{"parameter":"limit","keyword":"repeated-parameter"},
 qr{"errors":\[\{"keyword":"unknown-parameter"\}\]}, qr{"parameter":"kind","keyword":"pattern"},
 qr{"parameter":"kind","keyword":"pattern"}, qr{"parameter":"id","keyword":"required"}, qr/^passed/,
 qr/^passed/, qr{"parameter":"id","keyword":"pattern"}]



=== TEST 13: an unknown keyword fails the configuration, naming file and pointer
--- http_config
mealapi_route x POST /x schema=$TEST_NGINX_TOP/t/schemas/bad-keyword.json;
--- config
--- must_die
--- error_log
/properties/name/maxLenght



=== TEST 14: an invalid pattern fails the configuration
--- http_config
mealapi_route x POST /x schema=$TEST_NGINX_TOP/t/schemas/bad-pattern.json;
--- config
--- must_die
--- error_log
bad-pattern.json



=== TEST 15: a value matches whole: no trailing newline; lenient repeats are checked too
--- request eval
["GET /a/v1/samples?limit=5%0A", "GET /a/v1/samples?kind=recipe%0A",
 "GET /a/v1/samples?kind=recipe%0D%0A", "GET /a/v1/samples?limit=5",
 "GET /a/v1/lenient?id=3&id=abc", "GET /a/v1/lenient?id=3&id=4"]
--- error_code eval
[400, 400, 400, 200, 400, 200]
--- response_body_like eval
[qr{"parameter":"limit","keyword":"pattern"}, qr{"parameter":"kind","keyword":"pattern"},
 qr{"parameter":"kind","keyword":"pattern"}, qr/^passed/,
 qr{"parameter":"id","keyword":"pattern"}, qr/^passed/]
