# The gateway's tenant registry with several workers: one shared-memory
# registry that every worker serves from, synced by exactly one worker at a
# time (the lease), across a reload and after the syncing worker dies.
#
# Layout: master on, 4 workers.  The gateway (mTLS) listens on RAND_PORT_1
# with "reuseport", so the kernel spreads its connections over all four
# workers, and it names the worker that answered in X-Gw-Pid (on refusals
# too).  Behind it an echo on RAND_PORT_2.  The test server's locations /a/
# and /b/ are clients presenting tenant-a's and tenant-b's certificates.
#
# The registry has startup_wait=0: a worker that finds no loaded registry in
# the zone answers 503 at once instead of waiting for a load, so a registry
# lost across a reload (or by a respawned worker) shows as 503s.  That is also
# why each block first waits for the first load ("loaded N certificates").
#
# Every block restarts nginx, so each starts from a fresh error log.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;
use Time::HiRes qw(time sleep);

no_shuffle();
master_on();
workers(4);
worker_connections(256);
log_level('info');

our $TenantA = gateway_fixture();
our $Base = "http://127.0.0.1:" . ($ENV{TEST_NGINX_SERVER_PORT}
                                   || $ENV{TEST_NGINX_PORT} || 1984);
our $Workers = 4;

my $SYNC_RE   = qr/\[notice\] (\d+)#\d+: mealapi registry: this worker syncs the registry/;
my $LOADED_RE = qr/\[info\] (\d+)#\d+: mealapi registry: loaded \d+ certificates/;

# --- helpers ---------------------------------------------------------------

sub errlog_file { server_root() . '/logs/error.log' }
sub errlog_size { -s errlog_file() || 0 }

# the error log from byte offset $off on
sub errlog {
    my $off = shift || 0;
    open my $fh, '<', errlog_file() or return '';
    seek $fh, $off, 0;
    local $/;
    my $text = <$fh> // '';
    close $fh;
    return $text;
}

# pids of the "this worker syncs" lines after $off, in log order
sub sync_pids { my @p = errlog(shift) =~ /$SYNC_RE/g; return @p }
sub loaded_pids { my @p = errlog(shift) =~ /$LOADED_RE/g; return @p }

sub master_pid {
    open my $fh, '<', server_root() . '/logs/nginx.pid' or return undef;
    my $pid = <$fh>;
    close $fh;
    return defined $pid && $pid =~ /(\d+)/ ? $1 : undef;
}

# the master's live (not zombie) children: its workers, old ones that are
# still shutting down included
sub worker_pids {
    my $master = master_pid() or return ();
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $ent (readdir $dh) {
        next unless $ent =~ /^\d+$/;
        open my $fh, '<', "/proc/$ent/stat" or next;
        my $stat = <$fh>;
        close $fh;
        next unless defined $stat && $stat =~ /\)\s+(\S)\s+(\d+)/;
        push @kids, $ent if $2 == $master && $1 ne 'Z';
    }
    closedir $dh;
    return sort { $a <=> $b } @kids;
}

# polls $cond every 20 ms until it returns true or $timeout seconds passed
sub wait_until {
    my ($timeout, $cond) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return undef if time > $deadline;
        sleep 0.02;
    }
}

# $n GETs of $path in parallel (one curl, a new connection each): a list of
# [status, gateway worker pid]
sub gw_batch {
    my ($path, $n) = @_;
    my @args = ('curl', '-s', '--no-progress-meter', '--parallel',
                '--parallel-immediate',
                '--parallel-max', $n, '-m', '5',
                '-w', '%{http_code} %header{x-gw-pid}\n');
    push @args, "$Base$path", '-o', '/dev/null' for 1 .. $n;
    open my $fh, '-|', @args or die "curl: $!";
    my @res;
    while (my $line = <$fh>) {
        my ($st, $pid) = $line =~ /^(\d+) ?(\d*)/ or next;
        push @res, [$st, $pid];
    }
    close $fh;
    push @res, ['000', ''] while @res < $n;
    return \@res;
}

sub fmt_counts {
    my $h = shift;
    return join ', ', map { "$_ x$h->{$_}" } sort keys %$h;
}

# startup: all workers up, one of them synced and the first load done;
# returns (syncing pid, worker pids)
sub startup {
    my $name = shift;
    my @w = @{ wait_until(3, sub { my @w = worker_pids(); @w == $Workers ? \@w : undef }) || [] };
    is(scalar @w, $Workers, "$name: $Workers workers running");
    my $ok = wait_until(3, sub { sync_pids(0) && loaded_pids(0) });
    ok($ok, "$name: a worker synced and loaded the registry")
        or diag(errlog(0));
    my ($owner) = sync_pids(0);
    return ($owner // 0, @w);
}

# tenant-b served by every worker, revoked in the database, refused by every
# worker within a second (and, once refused by one, by all: one registry);
# then the fixture restored
sub revocation_refused_everywhere {
    my ($name) = @_;
    my @workers = worker_pids();

    my $before = gw_batch('/b/v1/samples', 16);
    is(scalar(grep { $_->[0] == 200 } @$before), 16,
       "$name: tenant-b served before the revocation")
        or diag(join ' ', map { "$_->[0]/$_->[1]" } @$before);

    my $t0 = time;
    psql("UPDATE tenant_certificates SET status = 'revoked', revoked_at = now() "
         . "WHERE subject = 'CN=tenant-b'");

    my (%refused, $first, $all_at, @late, $batches);
    while (time - $t0 < 3) {
        my $r = gw_batch('/b/v1/samples', 16);
        $batches++;
        # a batch sent after one that saw a refusal must be all refusals
        push @late, grep { $_->[0] != 403 } @$r if defined $first;
        $refused{$_->[1]}++ for grep { $_->[0] == 403 } @$r;
        $first = time if !defined $first && grep { $_->[0] == 403 } @$r;
        if (!grep { !$refused{$_} } @workers) {
            $all_at = time;
            last;
        }
    }

    # and once more, now that every worker has refused
    push @late, grep { $_->[0] != 403 } @{ gw_batch('/b/v1/samples', 16) };

    ok(defined $all_at, "$name: every worker (@workers) refuses tenant-b")
        or diag("refused by: " . fmt_counts(\%refused));
    my $dt = defined $all_at ? $all_at - $t0 : 999;
    # make asan sets NUTRIPRO_TIME_SCALE: there a batch of 16 TLS
    # handshakes alone can take a second
    ok($dt < ($ENV{NUTRIPRO_TIME_SCALE} || 1),
       sprintf("%s: within a second (%.3f s, %d batches)", $name, $dt,
               $batches // 0));
    is(scalar @late, 0, "$name: once refused, refused by every worker")
        or diag(join ' ', map { "$_->[0]/$_->[1]" } @late);

    my ($st, $body) = curl_get("$Base/b/v1/samples");
    is($st, 403, "$name: tenant-b refused");
    like($body, qr/certificate-revoked/, "$name: as revoked");

    # revocation is final in the schema: re-insert the test certificates
    gateway_fixture();
    ok(wait_until(3, sub { (curl_get("$Base/b/v1/samples"))[0] == 200 }),
       "$name: tenant-b served again after the fixture is restored");
}

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

    $block->set_value('http_config', <<'CONF') unless defined $block->http_config;
mealapi_database gw {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_gateway;
}
mealapi_registry zone=tenants:1m database=gw startup_wait=0;

# the gateway: reuseport, so that connections reach every worker
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 ssl reuseport;
    ssl_certificate $TEST_NGINX_PKI/gateway.crt;
    ssl_certificate_key $TEST_NGINX_PKI/gateway.key;
    ssl_client_certificate $TEST_NGINX_PKI/tenant-ca.crt;
    ssl_verify_client optional_no_ca;

    mealapi_route samples.list GET /v1/samples;

    add_header X-Gw-Pid $pid always;

    location / {
        mealapi on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
}

server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    location / {
        return 200 "tenant=$http_x_mealapi_tenant plan=$http_x_mealapi_plan\n";
    }
}
CONF

    $block->set_value('config', <<'CONF') unless defined $block->config;
# each client location is another tenant: no TLS session resumed across them
proxy_ssl_session_reuse off;

location = /ping {
    return 200 "pong\n";
}
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

=== TEST 1: four workers, one syncs; every worker serves from the shared registry
--- request
GET /ping
--- response_body
pong
--- nutripro_check
my ($owner, @workers) = startup($name);
my $t_sync = time;
ok((grep { $_ == $owner } @workers), "$name: the syncing worker ($owner) is a worker");

my ($st, $body) = curl_get("$Base/a/v1/samples");
is($st, 200, "$name: tenant-a served");
is($body, "tenant=tenant-a plan=standard\n", "$name: as tenant-a");

my (%codes, %served);
for (1 .. 5) {
    for my $r (@{ gw_batch('/a/v1/samples', 8) }) {
        $codes{$r->[0]}++;
        $served{$r->[1]}++ if $r->[0] == 200;
    }
}
is(fmt_counts(\%codes), "200 x40", "$name: 40 requests, all 200");
is_deeply([sort { $a <=> $b } keys %served], \@workers,
          "$name: served by every worker")
    or diag("served by: " . fmt_counts(\%served));

# settle: two lease renewals later, still exactly one syncing worker
sleep($t_sync + 1.2 - time) if time < $t_sync + 1.2;
my @sync = sync_pids(0);
is(scalar @sync, 1, "$name: exactly one worker syncs (@sync)");
my %by = map { $_ => 1 } loaded_pids(0);
is_deeply([keys %by], [$owner], "$name: only the syncing worker loads the registry");
unlike(errlog(0), qr/sync lease lost/, "$name: no lease lost");
--- no_error_log
[error]
[alert]



=== TEST 2: a revocation is refused by every worker within a second
--- request
GET /ping
--- response_body
pong
--- nutripro_check
my ($owner) = startup($name);
revocation_refused_everywhere($name);
my @sync = sync_pids(0);
is(scalar @sync, 1, "$name: still exactly one worker syncs (@sync)");
my %by = map { $_ => 1 } loaded_pids(0);
is_deeply([keys %by], [$owner], "$name: only the syncing worker loads");
--- no_error_log
[error]
[alert]



=== TEST 3: reload: served throughout without a 503, one new worker syncs
--- request
GET /ping
--- response_body
pong
--- nutripro_check
my ($owner, @old) = startup($name);
my %old = map { $_ => 1 } @old;
my $master = master_pid();
my $off = errlog_size();

ok(kill('HUP', $master), "$name: HUP sent to the master ($master)");
my $t0 = time;

# requests all along the reload, until the new generation is complete, the
# old one has exited, a new worker syncs and every new worker has served
my (%codes, %served, @new, $new_owner, $gone_at, $synced_at, $n, $early);
while (time - $t0 < 6) {
    for my $r (@{ gw_batch('/a/v1/samples', 8) }) {
        $n++;
        $codes{$r->[0]}++;
        $served{$r->[1]}++ if $r->[0] == 200;
        # served by a new worker before any new worker synced: from the
        # registry the zone kept across the reload
        $early++ if !defined $new_owner && $r->[0] == 200
                    && $r->[1] ne '' && !$old{$r->[1]};
    }
    my @cur = worker_pids();
    @new = grep { !$old{$_} } @cur;
    my %new = map { $_ => 1 } @new;
    $gone_at //= time if !grep { $old{$_} } @cur;
    if (!defined $new_owner) {
        ($new_owner) = grep { $new{$_} } sync_pids($off);
        $synced_at = time if defined $new_owner;
    }
    last if @new == $Workers && $gone_at && defined $new_owner
            && !grep { !$served{$_} } @new;
}

is(fmt_counts(\%codes), "200 x$n", "$name: $n requests during the reload, all 200");
ok(!$codes{503}, "$name: no 503");
is(scalar @new, $Workers, "$name: a new generation of $Workers workers (@new)");
ok($gone_at, sprintf("%s: the old workers exited (%.3f s)", $name,
                     ($gone_at // $t0) - $t0));
ok(defined $new_owner, sprintf("%s: a new worker syncs (%s, %.3f s after HUP)",
                               $name, $new_owner // 'none',
                               ($synced_at // $t0) - $t0))
    or diag(errlog($off));
# the old syncing worker gave its lease up when it exited: the new
# generation did not wait for the lease (3 s) to run out
ok(defined $synced_at && $synced_at - $t0 < 2,
   "$name: the new worker synced without waiting for the old lease to run out");
is((grep { !$served{$_} } @new), 0, "$name: every new worker served")
    or diag("served by: " . fmt_counts(\%served));
note("$name: " . ($early // 0) . " requests served by new workers before a new worker synced");

# settle: still exactly one syncing worker in the new generation
$synced_at //= time;
sleep($synced_at + 1.2 - time) if time < $synced_at + 1.2;
my @sync = sync_pids($off);
is(scalar @sync, 1, "$name: exactly one syncs after the reload (@sync)");
unlike(errlog(0), qr/sync lease lost/, "$name: no lease lost");

revocation_refused_everywhere("$name (after the reload)");
--- no_error_log
[error]
[alert]



=== TEST 4: the syncing worker killed: another takes over when the lease runs out
--- request
GET /ping
--- response_body
pong
--- nutripro_check
my ($victim, @before) = startup($name);
my %before = map { $_ => 1 } @before;
my $off = errlog_size();

ok(kill('KILL', $victim), "$name: the syncing worker ($victim) killed");
my $t0 = time;

# the registry stays in force while nobody syncs; the respawned worker serves
# from it too
my (%codes, %served, $new_owner, $synced_at, $n);
while (time - $t0 < 6) {
    for my $r (@{ gw_batch('/a/v1/samples', 8) }) {
        $n++;
        $codes{$r->[0]}++;
        $served{$r->[1]}++ if $r->[0] == 200;
    }
    ($new_owner) = grep { $_ != $victim } sync_pids($off);
    if (defined $new_owner) {
        $synced_at = time;
        last;
    }
}
my $dt = defined $synced_at ? $synced_at - $t0 : 999;
my @workers = worker_pids();
my @respawned = grep { !$before{$_} } @workers;

ok(defined $new_owner, "$name: another worker syncs (" . ($new_owner // 'none') . ")")
    or diag(errlog($off));
ok($dt < 5, sprintf("%s: within 5 s (%.3f s)", $name, $dt));
ok($dt > 2, sprintf("%s: not before the lease (3 s) ran out (%.3f s)", $name, $dt));
ok((grep { $_ == ($new_owner // -1) } @workers), "$name: the new syncing worker is alive");
is(scalar @workers, $Workers, "$name: $Workers workers again");
is(scalar @respawned, 1, "$name: the master respawned one worker (@respawned)");
is(fmt_counts(\%codes), "200 x$n", "$name: $n requests meanwhile, all 200");
is((grep { !$served{$_} } @respawned), 0, "$name: the respawned worker served")
    or diag("served by: " . fmt_counts(\%served));

$synced_at //= time;
sleep($synced_at + 1.2 - time) if time < $synced_at + 1.2;
my @sync = sync_pids($off);
is(scalar @sync, 1, "$name: exactly one syncs after the takeover (@sync)");

revocation_refused_everywhere("$name (after the takeover)");
--- error_log eval
qr/\[alert\] \d+#\d+: worker process \d+ exited on signal 9/
--- no_error_log
[error]
