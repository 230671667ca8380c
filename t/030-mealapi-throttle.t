# Per-tenant throttling (GCRA rate with burst, monthly quota), the
# RateLimit headers, dry run, and usage metering into usage_daily.
#
# tenant-a gets plan "test-throttle" (1 r/s, burst 3, quota 1000) and
# tenant-b plan "test-quota" (100 r/s, burst 100, quota 3).

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use t::Throttle;
use Test::More;
use Time::HiRes qw(time sleep);

no_shuffle();
worker_connections(256);

run_tests();

__DATA__

=== TEST 1: a burst of 3 passes, the 4th is refused with 429, one more after 1/rate
--- request
GET /ping
--- nutripro_check
my $t0 = time;
my @st = map { (curl_get("$Base/a/v1/samples"))[0] } 1 .. 4;
my $dt = time - $t0;
SKIP: {
    skip "the burst took $dt s on this machine, over the 1 s it must fit in", 2 if $dt >= 0.9;
    is_deeply(\@st, [200, 200, 200, 429], "$name: 3 pass, the 4th is refused");
    my ($st5) = curl_get("$Base/a/v1/samples");
    is($st5, 429, "$name: still refused before 1/rate");
}
sleep(1.1 - (time - $t0)) if time - $t0 < 1.1;
my ($st6) = curl_get("$Base/a/v1/samples");
is($st6, 200, "$name: one more passes after 1/rate (1 s)");



=== TEST 2: 429 is a problem document with Retry-After and RateLimit headers
--- request eval
["GET /a/v1/samples", "GET /a/v1/samples", "GET /a/v1/samples", "GET /a/v1/samples"]
--- error_code eval
[200, 200, 200, 429]
--- response_headers_like eval
[qq{RateLimit-Policy: "rate";q=3;w=3, "quota";q=1000;w=$::MonthLen\nRateLimit: "rate";r=2;t=1, "quota";r=\\d+;t=\\d+\n},
 qq{RateLimit: "rate";r=1;t=2, "quota";r=\\d+;t=\\d+\n},
 qq{RateLimit: "rate";r=0;t=3, "quota";r=\\d+;t=\\d+\n},
 qq{RateLimit: "rate";r=0;t=3, "quota";r=\\d+;t=\\d+\nRetry-After: 1\nContent-Type: application/problem\\+json\n}]
--- response_body_like eval
[qr/^ok tenant-a$/, qr/^ok/, qr/^ok/,
 qr{^\{"type":"https://nutripro.example/problems/rate-limited","title":"Too Many Requests","status":429\}$}]



=== TEST 3: a route's cost
--- request eval
["POST /a/v1/generations", "GET /a/v1/samples", "GET /a/v1/samples"]
--- error_code eval
[200, 200, 429]



=== TEST 4: dry run: refusals are logged, requests pass, headers stay true
--- throttle_mode: dry_run
--- request
GET /ping
--- nutripro_check
my @st = map { (curl_get("$Base/a/v1/samples"))[0] } 1 .. 5;
is_deeply(\@st, [200, 200, 200, 200, 200], "$name: every request passed");
my @h = `curl -s -i -m 5 $Base/a/v1/samples`;
ok((grep { /^RateLimit: "rate";r=0;/ } @h), "$name: the headers say the limit is reached");
ok(error_log_has(qr/dry run: would refuse 429 rate-limited, tenant "tenant-a"/),
   "$name: the would-be refusals are logged");



=== TEST 5: the monthly quota: 3 pass, then 429 quota-exhausted until the month ends
--- request eval
["GET /b/v1/samples", "GET /b/v1/samples", "GET /b/v1/samples", "GET /b/v1/samples"]
--- error_code eval
[200, 200, 200, 429]
--- response_body_like eval
[qr/^ok/, qr/^ok/, qr/^ok/, qr{"type":"https://nutripro.example/problems/quota-exhausted"}]
--- response_headers_like eval
[qq{RateLimit: "rate";r=99;t=1, "quota";r=2;t=\\d+\n}, "", "",
 qq{RateLimit: "rate";r=\\d+;t=\\d+, "quota";r=0;t=\\d+\nRetry-After: \\d+\n}]



=== TEST 6: the quota survives a restart: what was flushed is loaded again
--- request
GET /ping
--- nutripro_check
ok(wait_for(sub { error_log_has(qr/quota use of \d+ tenants loaded/) }, 5),
   "$name: quota use loaded");
is(usage_of($::TenantB, 'requests'), 3, "$name: 3 requests of tenant-b in usage_daily");
my ($st, $body) = curl_get("$Base/b/v1/samples");
is($st, 429, "$name: tenant-b still over its quota after the restart");
like($body, qr/quota-exhausted/, "$name: as quota-exhausted");



=== TEST 7: month rollover: the next month starts from zero
--- extra_http_config
mealapi_clock_offset 32d;
--- request
GET /ping
--- nutripro_check
ok(wait_for(sub { error_log_has(qr/quota use of \d+ tenants loaded/) }, 5),
   "$name: quota use loaded");
my ($st) = curl_get("$Base/b/v1/samples");
is($st, 200, "$name: tenant-b served in the next month");



=== TEST 8: a graceful shutdown flushes what is left
--- flush: 1h
--- request
GET /ping
--- nutripro_check
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantA");
my $n = 0;
for (1 .. 2) { my ($st) = curl_get("$Base/a/v1/samples"); $n++ if $st == 200 }
my ($st) = curl_get("$Base/a/v1/nothing");
quit_nginx();
is(usage_of($::TenantA, 'requests'), $n, "$name: the $n requests were flushed at exit");
is(usage_of($::TenantA, 'refused_route'), 1, "$name: and the refused one, by reason");
ok(usage_of($::TenantA, 'bytes_out') > 0, "$name: bytes out counted");



=== TEST 9: a shutdown after failed flushes sends the inflight deltas and the newer ones
--- flush: 300ms
--- request
GET /ping
--- nutripro_check
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantA");
# the gateway may not write usage for a while: its flushes fail, the
# deltas they carried stay inflight, the next requests count beside them
psql("REVOKE INSERT (requests) ON usage_daily FROM nutripro_gateway");
my $n = 0;
for (1 .. 2) { my ($st) = curl_get("$Base/a/v1/samples"); $n++ if $st == 200 }
my $failed = wait_for(sub { error_log_has(qr/mealapi usage: flush failed/) }, 5);
for (1 .. 2) { my ($st) = curl_get("$Base/a/v1/samples"); $n++ if $st == 200 }
psql("GRANT INSERT (requests) ON usage_daily TO nutripro_gateway");
quit_nginx();
ok($failed, "$name: a flush failed first");
is(usage_of($::TenantA, 'requests'), $n, "$name: all $n requests arrived, none lost at exit");



=== TEST 10: a tenant deleted before its usage was flushed: the usage is still recorded
--- flush: 300ms
--- request
GET /ping
--- nutripro_check
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantA");
psql("REVOKE INSERT (requests) ON usage_daily FROM nutripro_gateway");
my $n = 0;
for (1 .. 2) { my ($st) = curl_get("$Base/a/v1/samples"); $n++ if $st == 200 }
my $failed = wait_for(sub { error_log_has(qr/mealapi usage: flush failed/) }, 5);
psql("UPDATE tenants SET deleted_at = now() WHERE id = $::TenantA");
psql("GRANT INSERT (requests) ON usage_daily TO nutripro_gateway");
my $arrived = wait_for(sub { usage_of($::TenantA, 'requests') >= $n }, 5);
psql("UPDATE tenants SET deleted_at = NULL WHERE id = $::TenantA");
ok($failed, "$name: a flush failed first");
ok($n > 0 && $arrived, "$name: the deleted tenant's $n requests were recorded");



=== TEST 11: a flush sent again is applied once (its batch id is known)
--- flush: 300ms
--- request
GET /ping
--- nutripro_check
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantA");
# the server logs the gateway's statements with their parameters for a
# moment: the test then sends the gateway's flush again, as the gateway
# would after losing the answer to a committed flush
my $log = "$ENV{TEST_NGINX_PG_DIR}/postgres.log";
my $from = -s $log;
psql("ALTER SYSTEM SET log_statement = 'mod'");
psql("SELECT pg_reload_conf()");
sleep 0.3;
my ($st) = curl_get("$Base/a/v1/samples");
my $flushed = wait_for(sub { usage_of($::TenantA, 'requests') == 1 }, 5);
psql("ALTER SYSTEM RESET log_statement");
psql("SELECT pg_reload_conf()");
open my $f, '<', $log or die "$log: $!";
seek $f, $from, 0;
my ($sql, $params);
while (my $line = <$f>) {
    if ($line =~ /execute [^:]*: (WITH v AS \(SELECT \* FROM unnest.*)$/) {
        my $cand = $1;
        my $next = <$f> // '';
        if ($next =~ /DETAIL:\s+parameters: (.*)$/) {
            ($sql, $params) = ($cand, $1);
        }
    }
}
close $f;
ok($flushed, "$name: the request was flushed once");
ok($sql && $params, "$name: the flush and its parameters were logged");
my %v = $params =~ /\$(\d+) = ('[^']*')/g;
$sql =~ s/\$(\d+)\b/$v{$1}/g for 1;
is(scalar keys %v, 15, "$name: fifteen parameters, the batch ids among them");
psql($sql, user => 'nutripro_gateway');
is(usage_of($::TenantA, 'requests'), 1, "$name: the same flush again changes nothing");



=== TEST 12: the final flush tries every server of the database block
--- first_server: unix:/nonexistent/.s.PGSQL.15432
--- flush: 1h
--- request
GET /ping
--- nutripro_check
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantA");
my $n = 0;
for (1 .. 2) { my ($st) = curl_get("$Base/a/v1/samples"); $n++ if $st == 200 }
quit_nginx();
ok($n > 0, "$name: served through the second server");
is(usage_of($::TenantA, 'requests'), $n, "$name: the $n requests were flushed at exit");



=== TEST 13: a database that takes the final flush's connection and never answers does not keep the worker
--- usage_server eval
"127.0.0.1:" . main::silent_pg()
--- flush: 1h
--- request
GET /ping
--- nutripro_check
my $n = 0;
for (1 .. 2) { my ($st) = curl_get("$Base/a/v1/samples"); $n++ if $st == 200 }
ok($n > 0, "$name: served");
ok(quit_nginx(), "$name: nginx exited, the final flush given up after query_timeout");
ok(error_log_has(qr/final flush of \d+ rows failed with no answer within query_timeout/),
   "$name: and said so");



=== TEST 14: while the month's quota use cannot be loaded, flushes go on
--- flush: 300ms
--- request
GET /ping
--- nutripro_check
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantB");
# a fresh start, with the quota use unreadable: its load fails and is
# tried again every few seconds
quit_nginx();
psql("REVOKE SELECT ON gateway_usage_month FROM nutripro_gateway");
my $root = $ENV{TEST_NGINX_SERVROOT};
system($ENV{TEST_NGINX_BINARY}, '-p', "$root/", '-c', "$root/conf/nginx.conf") == 0
    or die "nginx did not start";
my $failed = wait_for(sub { error_log_has(qr/loading quota use failed/) }, 5);
my $n = 0;
for (1 .. 2) { my ($st) = curl_get("$Base/b/v1/samples"); $n++ if $st == 200 }
my $flushed = wait_for(sub { usage_of($::TenantB, 'requests') == $n }, 3);
psql("GRANT SELECT ON gateway_usage_month TO nutripro_gateway");
ok($failed, "$name: the quota load failed");
ok($n > 0 && $flushed, "$name: the $n requests were flushed meanwhile");
