package t::Throttle;

# The shared harness of t/030 and t/031 (throttling and metering): the test
# plans and tenants, a gateway with registry, throttle zone and usage, the
# "nutripro_check" hook, and helpers.  Loaded after Test::Nginx::Socket:
#
#   use Test::Nginx::Socket 'no_plan';
#   use t::NutriPro;
#   use t::Throttle;

package main;

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);

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

# a graceful shutdown, waited for (the workers' final flushes included)
sub quit_nginx {
    my $pid = master_pid();
    kill 'QUIT', $pid;
    return wait_for(sub { !kill(0, $pid) }, 5);
}

sub error_log_has {
    my $re = shift;
    open my $f, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/error.log" or return 0;
    while (<$f>) { return 1 if /$re/ }
    return 0;
}

$ENV{TEST_NGINX_SERVROOT} ||= Test::Nginx::Socket::server_root();

Test::Nginx::Socket::add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $code = $block->nutripro_check or return;
    return if $dry_run || $req_idx > 0;
    my $name = $block->name;
    eval "$code; 1" or fail("$name: check died: $@");
});

Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('main_config', <<'CONF') unless defined $block->main_config;
load_module $TEST_NGINX_MODULES/ngx_mealapi_module.so;
CONF

    my $mode = $block->throttle_mode // 'on';
    my $flush = $block->flush // '1s';
    my $extra = $block->extra_http_config // '';
    my $first = $block->first_server ? "server " . $block->first_server . ";\n    " : '';
    my ($udb, $usage_db) = ('gw', '');
    if (my $us = $block->usage_server) {
        ($udb, $usage_db) = ('gwu', "mealapi_database gwu {\n    server $us;\n"
                             . "    dbname nutripro;\n    user nutripro_gateway;\n"
                             . "    query_timeout 1s;\n}");
    }

    $block->set_value('http_config', <<CONF) unless defined $block->http_config;
mealapi_database gw {
    ${first}server unix:\$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_gateway;
}
mealapi_registry zone=tenants:1m database=gw;
mealapi_throttle_zone limits:1m;
$usage_db
mealapi_usage database=$udb flush=$flush;
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


1;
