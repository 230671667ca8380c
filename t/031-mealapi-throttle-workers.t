# Throttling and metering with several workers and a master: one shared
# limit, and exact usage across a database outage and a reload.
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
master_on();
workers(4);

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



