# The async PostgreSQL layer under load and failure: pool bounds, the wait
# queue, one worker never blocked by a slow query, a database restart,
# hostile parameters, and the gateway role's least privilege.
#
# Checks that need many clients at once run in a response-body check while
# nginx is up: the block's "nutripro_check" section is Perl code run there.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;

no_shuffle();
worker_connections(1024);

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
load_module $TEST_NGINX_MODULES/ngx_controlplane_module.so;
CONF
});

run_tests();

__DATA__

=== TEST 1: 200 concurrent requests on a pool of 4 all succeed
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    max_connections 4;
    queue 1000;
    queue_timeout 10s;
}
--- config
location /api/ { controlplane_api cp; }
--- request
GET /api/v1/health
--- nutripro_check
my $c = concurrent_get("$Base/api/v1/plans?limit=3", 200);
is_deeply($c, { 200 => 200 }, "$name: 200 x 200 OK");
--- no_error_log
[error]
[warn]



=== TEST 2: a low queue bound: the excess gets 503 + Retry-After, none hangs
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    max_connections 4;
    queue 8;
    retry_after 3;
}
--- config
location = /slow { controlplane_query cp "SELECT pg_sleep(0.3) AS slept"; }
location = /ping { return 200 "pong\n"; }
--- request
GET /ping
--- nutripro_check
my $c = concurrent_get("$Base/slow", 100, max_time => 8);
ok(($c->{200} // 0) >= 12, "$name: the pool and the queue were served ($c->{200})");
ok(($c->{503} // 0) > 0, "$name: the excess was refused (" . ($c->{503} // 0) . ")");
is(($c->{200} // 0) + ($c->{503} // 0), 100, "$name: every request answered, none hung");
my $all = concurrent_raw("$Base/slow", 40);
like($all, qr{^HTTP/1.1 503 [^\n]*\n(?:[^\n]+\n)*?Retry-After: 3\r\n(?:[^\n]+\n)*?\r\n\{"type":"https://nutripro.example/problems/database-busy"}m, "$name: 503 carries Retry-After and its type");
--- error_log
wait queue full



=== TEST 3: queue_timeout: a request waiting too long gets 503 busy
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    max_connections 1;
    queue 10;
    queue_timeout 200ms;
}
--- config
location = /slow { controlplane_query cp "SELECT pg_sleep(1) AS slept"; }
location = /ping { return 200 "pong\n"; }
--- request
GET /ping
--- nutripro_check
my $pid = fork() // die;
if ($pid == 0) { curl_get("$Base/slow"); exit 0 }
select(undef, undef, undef, 0.2);
my ($st, $body, $secs) = curl_get("$Base/slow");
waitpid($pid, 0);
is($st, 503, "$name: 503 after the wait timeout");
like($body, qr/database-busy/, "$name: busy problem type");
ok($secs < 0.9, "$name: answered before the slow query ended ($secs s)");
--- error_log
no connection for "controlplane_query" within 200 ms



=== TEST 4: one worker: a query in pg_sleep(2) does not delay another request
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    max_connections 4;
}
--- config
location = /slow { controlplane_query cp "SELECT pg_sleep(2) AS slept"; }
location /api/ { controlplane_api cp; }
--- request
GET /api/v1/health
--- nutripro_check
my $pid = fork() // die;
if ($pid == 0) {
    my ($st, $b, $s) = curl_get("$Base/slow");
    exit($st == 200 && $s >= 1.9 ? 0 : 1);
}
select(undef, undef, undef, 0.3);
my ($st, $body, $secs) = curl_get("$Base/api/v1/plans");
is($st, 200, "$name: the other request succeeded");
ok($secs < 1.0, "$name: and was not delayed ($secs s)");
waitpid($pid, 0);
is($? >> 8, 0, "$name: the slow request finished after its 2 s");
--- no_error_log
[error]



=== TEST 5: query_timeout ends a stuck query with 503
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    query_timeout 300ms;
}
--- config
location = /slow { controlplane_query cp "SELECT pg_sleep(5) AS slept"; }
--- request
GET /slow
--- error_code: 503
--- response_headers
Retry-After: 1
--- response_body_like: database-unavailable
--- error_log
pgasync "cp": "controlplane_query" timed out



=== TEST 6: statement_timeout is set on the pool's connections
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    statement_timeout 250ms;
}
--- config
location = /show { controlplane_query cp "SELECT current_setting('statement_timeout') AS t"; }
--- request
GET /show
--- response_body
[{"t":"250ms"}]



=== TEST 7: a statement past statement_timeout: 503, SQLSTATE logged
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    statement_timeout 250ms;
}
--- config
location = /slow { controlplane_query cp "SELECT pg_sleep(3) AS slept"; }
--- request
GET /slow
--- error_code: 503
--- response_body_like: database-unavailable
--- error_log
"controlplane_query" failed with SQLSTATE 57014



=== TEST 8: a client that goes away cancels its query
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    application_name cancel_test;
}
--- config
location = /slow { controlplane_query cp "SELECT pg_sleep(30) AS slept"; }
location = /ping { return 200 "pong\n"; }
--- request
GET /ping
--- nutripro_check
system("curl -s -m 0.5 $Base/slow >/dev/null 2>&1");
my $left = 1;
for (1 .. 40) {
    $left = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cancel_test' AND state = 'active'");
    last if $left == 0;
    select(undef, undef, undef, 0.1);
}
is($left, 0, "$name: the server no longer runs the query");
--- error_log
cancelled, closing its connection



=== TEST 9: PostgreSQL restarted: 503 while down, then served without reload
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    connect_timeout 1s;
}
--- config
location /api/ { controlplane_api cp; }
--- request
GET /api/v1/health
--- nutripro_check
my ($st) = curl_get("$Base/api/v1/health");
is($st, 200, "$name: up");
pg_ctl('stop');
my ($st2, $b2, $secs) = curl_get("$Base/api/v1/health");
pg_ctl('start');
is($st2, 503, "$name: 503 while the database is down");
ok($secs < 1.5, "$name: within the connect timeout ($secs s)");
my ($st3) = curl_get("$Base/api/v1/health");
is($st3, 200, "$name: served again after the restart");



=== TEST 10: hostile values are parameters, never SQL: quotes and comments
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
--- config
location = /echo {
    controlplane_query cp "SELECT length($1) AS len, $1 AS v" $http_x_value;
}
location = /plans { controlplane_query cp "SELECT count(*) >= 3 AS n FROM plans"; }
--- request eval
["GET /echo", "GET /plans"]
--- more_headers
X-Value: x'; DROP TABLE plans; --
--- response_body eval
[qq{[{"len":24,"v":"x'; DROP TABLE plans; --"}]\n}, qq{[{"n":true}]\n}]



=== TEST 11: hostile values: a statement in a string stays a string
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
--- config
location = /echo {
    controlplane_query cp "SELECT $1 AS v" $http_x_value;
}
--- request
GET /echo
--- more_headers
X-Value: " OR 1=1; SELECT pg_sleep(5) --
--- response_body
[{"v":"\" OR 1=1; SELECT pg_sleep(5) --"}]



=== TEST 12: hostile values: invalid UTF-8 is refused with 400
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
--- config
location = /echo {
    controlplane_query cp "SELECT $1 AS v" $http_x_value;
}
--- request
GET /echo
--- more_headers eval
"X-Value: \xff\xfe\xc3"
--- error_code: 400
--- response_body_like: "type":"https://nutripro.example/problems/invalid-parameter"



=== TEST 13: a 1 MB parameter is data
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
large_client_header_buffers 4 2m;
--- config
location = /echo {
    controlplane_query cp "SELECT length($1) AS len" $http_x_value;
}
--- request
GET /echo
--- more_headers eval
"X-Value: " . ("'" x 1048576)
--- response_body
[{"len":1048576}]



=== TEST 14: the gateway role reads its view but not operators, and cannot write plans
--- http_config
controlplane_database gw {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_gateway;
}
--- config
location = /registry { controlplane_query gw "SELECT count(*) AS n FROM gateway_registry"; }
location = /operators { controlplane_query gw "SELECT count(*) AS n FROM operators"; }
location = /plans { controlplane_query gw "UPDATE plans SET burst = 1"; }
location = /audit { controlplane_query gw "SELECT count(*) FROM audit_log"; }
--- request eval
["GET /registry", "GET /operators", "GET /plans", "GET /audit"]
--- error_code eval
[200, 500, 500, 500]
--- response_body_like eval
[qr/^\[\{"n":\d+\}\]$/, qr/database-error/, qr/database-error/, qr/database-error/]



=== TEST 15: a statement prepared before a migration changed its result type: one failure, then a new connection
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
    max_connections 1;
}
--- config
location = /cached { controlplane_query cp "SELECT v FROM pgasync_migrated"; }
location = /ping { return 200 "pong\n"; }
--- request
GET /ping
--- nutripro_check
psql("DROP TABLE IF EXISTS pgasync_migrated; CREATE TABLE pgasync_migrated (v int);"
     . " INSERT INTO pgasync_migrated VALUES (1);"
     . " GRANT SELECT ON pgasync_migrated TO nutripro_controlplane");
my @r = curl_get("$Base/cached");
is("$r[0] $r[1]", qq{200 [{"v":1}]\n}, "$name: prepared and run");
psql("ALTER TABLE pgasync_migrated ALTER COLUMN v TYPE text");
@r = curl_get("$Base/cached");
is($r[0], 500, "$name: the statement as prepared fails once");
@r = curl_get("$Base/cached");
is("$r[0] $r[1]", qq{200 [{"v":"1"}]\n}, "$name: then runs on a new connection");
psql("DROP TABLE pgasync_migrated");
--- error_log
failed with SQLSTATE 0A000



=== TEST 16: a COPY is refused, not run for ever
--- http_config
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
--- config
location = /copy { controlplane_query cp "COPY (SELECT 1) TO STDOUT"; }
--- request
GET /copy
--- error_code: 500
--- response_body_like: database-error
--- error_log
started a COPY, which is not supported
