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






=== TEST 3: the syncing worker stalls and loses the lease: its unsent deltas go to the new syncing worker
--- flush: 300ms
--- request
GET /ping
--- nutripro_check
my $syncer = sub {
    open my $f, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/error.log" or return;
    my $pid;
    while (<$f>) { $pid = $1 if /(\d+)#\d+: mealapi registry: this worker syncs the registry/ }
    return $pid;
};
psql("DELETE FROM usage_daily WHERE tenant_id = $::TenantA");
psql("REVOKE INSERT (requests) ON usage_daily FROM nutripro_gateway");
my $k = 0;
for (1 .. 2) { my ($st) = curl_get("$Base/a/v1/samples"); $k++ if $st == 200 }
my $failed = wait_for(sub { error_log_has(qr/mealapi usage: flush failed/) }, 5);
my $w1 = $syncer->();
# stopped past the lease (3 s): another worker takes over, the deltas
# stay in flight under the stopped worker's pid
kill 'STOP', $w1;
my $taken = wait_for(sub { ($syncer->() // $w1) != $w1 }, 6);
psql("GRANT INSERT (requests) ON usage_daily TO nutripro_gateway");
kill 'CONT', $w1;
ok($failed && $k > 0, "$name: $k requests counted, their flush failed first");
ok($taken, "$name: another worker took the lease");
ok(wait_for(sub { usage_of($::TenantA, 'requests') == $k }, 5),
   "$name: the $k requests arrived while every worker still runs");
ok(kill(0, $w1), "$name: the stalled worker is still there");
