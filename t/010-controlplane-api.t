# The control plane's first endpoints over the async PostgreSQL layer.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;

no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('main_config', <<'CONF') unless defined $block->main_config;
load_module $TEST_NGINX_MODULES/ngx_controlplane_module.so;
CONF

    $block->set_value('http_config', <<'CONF') unless defined $block->http_config;
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    max_connections 2;
}
CONF

    $block->set_value('config', <<'CONF') unless defined $block->config;
location /api/ {
    controlplane_api cp;
    controlplane_page_limit 100;
}
CONF
});

run_tests();

__DATA__

=== TEST 1: health reports the database and its round trip
--- request
GET /api/v1/health
--- response_headers
Content-Type: application/json
Cache-Control: no-store
--- response_body_like: ^\{"status":"ok","database":\{"name":"cp","reachable":true,"round_trip_ms":\d+,"wait_ms":\d+\}\}$
--- no_error_log
[error]



=== TEST 2: health over TCP with TLS verify-full to the database
--- http_config
controlplane_database cp {
    server 127.0.0.1:$TEST_NGINX_PG_PORT;
    dbname nutripro;
    user nutripro_controlplane;
    ssl_mode verify-full;
    ssl_root_cert $TEST_NGINX_PKI/infra-ca.crt;
}
--- request
GET /api/v1/health
--- response_body_like: "reachable":true
--- no_error_log
[error]



=== TEST 3: verify-full against the wrong CA fails closed with 503
--- http_config
controlplane_database cp {
    server 127.0.0.1:$TEST_NGINX_PG_PORT;
    dbname nutripro;
    user nutripro_controlplane;
    ssl_mode verify-full;
    ssl_root_cert $TEST_NGINX_PKI/tenant-ca.crt;
}
--- request
GET /api/v1/health
--- error_code: 503
--- response_headers
Content-Type: application/problem+json
Retry-After: 1
--- response_body_like: ^\{"type":"https://nutripro.example/problems/database-unavailable","title":"Service Unavailable","status":503,
--- error_log
certificate verify failed



=== TEST 4: database unreachable: 503 problem document with Retry-After
--- http_config
controlplane_database cp {
    server 127.0.0.1:1;
    dbname nutripro;
    user nutripro_controlplane;
    retry_after 7;
}
--- request
GET /api/v1/health
--- error_code: 503
--- response_headers
Content-Type: application/problem+json
Retry-After: 7
--- response_body_like: "type":"https://nutripro.example/problems/database-unavailable"
--- error_log
pgasync "cp": connect failed



=== TEST 5: the plan catalogue, first page
--- request
GET /api/v1/plans?limit=2
--- response_body_like: ^\{"items":\[\{"id":1,"name":"free",.*\},\{"id":2,"name":"standard",.*\}\],"limit":2,"next_cursor":"2"\}$



=== TEST 6: the next page from the cursor; no unit prices or route scopes in public
--- request
GET /api/v1/plans?limit=2&cursor=2
--- response_body_like: ^\{"items":\[\{"id":3,"name":"enterprise","description":"[^"]*","rate_per_sec":100(\.0+)?,"burst":200,"monthly_quota":null\}(,\{[^]]*)?\],"limit":2,"next_cursor":("\d+"|null)\}$



=== TEST 7: limit is bounded
--- request eval
["GET /api/v1/plans?limit=101", "GET /api/v1/plans?limit=0",
 "GET /api/v1/plans?limit=-1", "GET /api/v1/plans?limit=abc",
 "GET /api/v1/plans?limit=99999999999999999999"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body_like eval
[qr{"type":"https://nutripro.example/problems/invalid-pagination"},
 qr{invalid-pagination}, qr{invalid-pagination}, qr{invalid-pagination},
 qr{invalid-pagination}]



=== TEST 8: hostile cursors are refused, never SQL
--- request eval
["GET /api/v1/plans?cursor=1%27%3B%20DROP%20TABLE%20plans%3B--",
 "GET /api/v1/plans?cursor=1;--", "GET /api/v1/plans?cursor=%00",
 "GET /api/v1/plans?cursor=%FF%FE", "GET /api/v1/plans?cursor=9999999999999999999"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body_like eval
[qr/invalid-pagination/, qr/invalid-pagination/, qr/invalid-pagination/,
 qr/invalid-pagination/, qr/invalid-pagination/]



=== TEST 9: unknown resource: 404 problem document
--- request
GET /api/v1/nothing
--- error_code: 404
--- response_headers
Content-Type: application/problem+json
--- response_body
{"type":"https://nutripro.example/problems/not-found","title":"Not Found","status":404,"detail":"no such resource"}



=== TEST 10: wrong method: 405 with Allow
--- request
DELETE /api/v1/plans
--- error_code: 405
--- response_headers
Allow: GET, HEAD, POST
Content-Type: application/problem+json
--- response_body_like: "type":"https://nutripro.example/problems/method-not-allowed"



=== TEST 11: an undefined database fails the configuration
--- config
location /api/ { controlplane_api nowhere; }
--- must_die
--- error_log
unknown database "nowhere"



=== TEST 12: ssl_mode prefer is refused at configuration time
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    ssl_mode prefer;
}
--- must_die
--- error_log
"ssl_mode" must be disable, require, verify-ca or verify-full



=== TEST 13: access log variables: wait, query time and status
--- http_config
log_format db '$request_uri wait=$controlplane_db_wait time=$controlplane_db_time st=$controlplane_db_status';
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
--- config
location /api/ {
    controlplane_api cp;
    access_log logs/access.log db;
}
--- request
GET /api/v1/health
--- access_log eval
qr{^/api/v1/health wait=\d+ time=\d+ st=ok$}m
