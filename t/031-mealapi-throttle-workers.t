# Throttling and metering with several workers and a master: one shared
# limit, and exact usage across a database outage and a reload.
#
# tenant-a gets plan "test-throttle" (1 r/s, burst 3, quota 1000) and
# tenant-b plan "test-quota" (100 r/s, burst 100, quota 3).

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX qw(floor);

no_shuffle();
worker_connections(256);
master_on();
workers(4);

our $TenantA = gateway_fixture();
our $TenantB = psql("SELECT id FROM tenants WHERE slug = 'tenant-b'");
psql(<<SQL);
INSERT INTO plans (name, description, rate_per_sec, burst, monthly_quota)
VALUES ('test-throttle', 'tests', 1, 3, 1000), ('test-quota', 'tests', 100, 100, 3)
ON CONFLICT (name) DO UPDATE SET rate_per_sec = EXCLUDED.rate_per_sec,
    burst = EXCLUDED.burst, monthly_quota = EXCLUDED.monthly_quota, routes = NULL;
UPDATE tenants SET plan_id = (SELECT id FROM plans WHERE name = 'test-throttle') WHERE slug = 'tenant-a';
UPDATE tenants SET plan_id = (SELECT id FROM plans WHERE name = 'test-quota') WHERE slug = 'tenant-b';
DELETE FROM usage_daily WHERE tenant_id IN ($TenantA, $TenantB);
SQL

# seconds in this UTC month, and until its end
our ($MonthLen, $MonthLeft);
{
    my @t = gmtime(time);
    my ($y, $m) = ($t[5] + 1900, $t[4] + 1);
    require Time::Local;
    my $start = Time::Local::timegm(0, 0, 0, 1, $m - 1, $y);
    my $end = $m == 12 ? Time::Local::timegm(0, 0, 0, 1, 0, $y + 1)
                       : Time::Local::timegm(0, 0, 0, 1, $m, $y);
    $MonthLen = $end - $start;
    $MonthLeft = $end - time;
}

our $Base = "http://127.0.0.1:" . ($ENV{TEST_NGINX_SERVER_PORT}
                                   || $ENV{TEST_NGINX_PORT} || 1984);

sub usage_of {
    my ($tenant, $col) = @_;
    return psql("SELECT coalesce(sum($col), 0) FROM usage_daily WHERE tenant_id = $tenant") + 0;
}

sub wait_for {
    my ($cond, $secs) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->();
}

sub master_pid {
    open my $f, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/nginx.pid" or return;
    my $pid = <$f>;
    chomp $pid;
    return $pid;
}

sub error_log_has {
    my $re = shift;
    open my $f, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/error.log" or return 0;
    while (<$f>) { return 1 if /$re/ }
    return 0;
}

$ENV{TEST_NGINX_SERVROOT} ||= server_root();

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

    my $mode = $block->throttle_mode // 'on';
    my $flush = $block->flush // '1s';
    my $extra = $block->extra_http_config // '';

    $block->set_value('http_config', <<CONF) unless defined $block->http_config;
mealapi_database gw {
    server unix:\$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_gateway;
}
mealapi_registry zone=tenants:1m database=gw;
mealapi_throttle_zone limits:1m;
mealapi_usage database=gw flush=$flush;
$extra

server {
    listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1 ssl;
    ssl_certificate \$TEST_NGINX_PKI/gateway.crt;
    ssl_certificate_key \$TEST_NGINX_PKI/gateway.key;
    ssl_client_certificate \$TEST_NGINX_PKI/tenant-ca.crt;
    ssl_verify_client optional_no_ca;

    mealapi_route samples.list GET /v1/samples;
    mealapi_route generations.create POST /v1/generations cost=2;
    mealapi_throttle $mode;

    location / {
        mealapi on;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_RAND_PORT_2;
    }
}

server {
    listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_2;
    location / { return 200 "ok \$http_x_mealapi_tenant\\n"; }
}
CONF

    $block->set_value('config', <<'CONF') unless defined $block->config;
proxy_ssl_session_reuse off;
location = /ping { return 200 "pong\n"; }
location /a/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-a.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-a.key;
}
location /b/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-b.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-b.key;
}
CONF
});

run_tests();

__DATA__

=== TEST 1: four workers share one limit
--- request
GET /ping
--- nutripro_check
my $c = concurrent_get("$Base/a/v1/samples", 10);
is($c->{200} // 0, 3, "$name: exactly the burst passed");
is($c->{429} // 0, 7, "$name: the rest was refused");



=== TEST 2: K requests, a database outage and a reload: exactly K in usage_daily
--- flush: 500ms
--- request
GET /ping
--- nutripro_check
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantA");
my $k = 0;
my $send = sub {
    for (1 .. shift) {
        sleep 0.35;     # within 1 r/s, burst 3
        my ($st) = curl_get("$Base/a/v1/samples");
        $k++ if $st == 200;
    }
};
$send->(3);
pg_ctl('stop');
$send->(3);
kill 'HUP', master_pid();
sleep 0.5;
$send->(3);
pg_ctl('start');
ok(wait_for(sub { usage_of($::TenantA, 'requests') >= $k }, 10),
   "$name: the deltas arrived after the outage");
sleep 1.5;
is(usage_of($::TenantA, 'requests'), $k, "$name: exactly $k requests, none lost or doubled");
is(usage_of($::TenantA, 'status_2xx'), $k, "$name: all of them 2xx");
ok($k >= 6, "$name: requests passed during the outage ($k)");



