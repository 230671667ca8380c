# The TEST_NGINX_* environment variables that change how a whole run goes.
# Each case runs a generated test file in a child process (see ChildRun.pm).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../..";
use t::driver::ChildRun;
use Test::More;
use Time::HiRes ();

# A child test file that prints the nginx pid serving each block.
my $pid_blocks = <<'_EOT_';
use Test::Nginx::Socket 'no_plan';
add_response_body_check(sub { print "# PID $_[0]{name}[0] = $_[1]\n" });
run_tests();
__DATA__

=== TEST 1: first
--- config
    location = /t { return 200 "$pid"; }
--- request
GET /t

=== TEST 2: second, same config
--- config
    location = /t { return 200 "$pid"; }
--- request
GET /t
_EOT_

sub pids { my %p = $_[0] =~ /^# PID (TEST \d+):.*? = (\d+)$/mg; return @p{'TEST 1', 'TEST 2'} }

subtest 'TEST_NGINX_FORCE_RESTART_ON_TEST' => sub {
    my ($status, $out) = run_child('restart', $pid_blocks);
    is $status, 0, 'default run passes' or diag $out;
    my ($p1, $p2) = pids($out);
    ok $p1 && $p2 && $p1 != $p2, 'by default nginx is restarted for every block';

    ($status, $out) = run_child('norestart', $pid_blocks, TEST_NGINX_FORCE_RESTART_ON_TEST => 0);
    is $status, 0, 'run passes' or diag $out;
    ($p1, $p2) = pids($out);
    ok $p1 && $p2 && $p1 == $p2, 'with 0, an unchanged config keeps nginx running';
};

subtest 'TEST_NGINX_IGNORE_MISSING_DIRECTIVES' => sub {
    my $code = $PREAMBLE . <<'_EOT_';
=== TEST 1: needs a module we do not have
--- config
    location = /t {
        some_module_directive on;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- suppress_stderr
_EOT_
    my ($status, $out) = run_child('missing', $code, TEST_NGINX_IGNORE_MISSING_DIRECTIVES => 1);
    is $status, 0, 'the run passes' or diag $out;
    my @r = results($out);
    is scalar(@r), 2, 'the block still reports its two checks';
    is scalar(grep { /# skip .*lack of directive some_module_directive/ } @r), 2, '... as skipped';
};

subtest 'TEST_NGINX_LOAD_MODULES' => sub {
    my $code = $PREAMBLE . <<'_EOT_';
=== TEST 1: the module path reaches nginx as a load_module line
--- config
--- must_die
--- suppress_stderr
--- error_log
/nonexistent/ngx_fake_module.so
_EOT_
    my ($status, $out) = run_child('modules', $code,
        TEST_NGINX_LOAD_MODULES => '/nonexistent/ngx_fake_module.so');
    is $status, 0, 'nginx refused the missing module, as the block expects' or diag $out;
};

subtest 'TEST_NGINX_LOG_LEVEL, TEST_NGINX_MASTER_PROCESS, TEST_NGINX_TIMEOUT' => sub {
    my $code = <<'_EOT_';
use Test::Nginx::Socket 'no_plan';
run_tests();
open my $in, '<', server_root() . '/conf/nginx.conf' or die $!;
print map { "# CONF $_" } <$in>;
__DATA__

=== TEST 1: slow response, no --- timeout
--- config
    location = /t {
        limit_rate 1;
        return 200 "slow";
    }
--- request
GET /t
--- ignore_response
_EOT_
    my $t0 = Time::HiRes::time();
    my ($status, $out) = run_child('envs', $code, TEST_NGINX_LOG_LEVEL => 'warn',
        TEST_NGINX_MASTER_PROCESS => 'on', TEST_NGINX_TIMEOUT => 0.3);
    like $out, qr/^# CONF error_log \S+ warn;$/m, 'log level';
    like $out, qr/^# CONF master_process on;$/m, 'master process';
    like $out, qr/^not ok .*client socket timed out/m, 'client timeout from the environment';
    ok Time::HiRes::time() - $t0 < 3, '... which is shorter than the default 3 s';
};

subtest 'TEST_NGINX_RANDOMIZE and TEST_NGINX_NO_CLEAN' => sub {
    my $code = <<'_EOT_';
use Test::Nginx::Socket 'no_plan';
print "# PORT ", server_port(), "\n# ROOT ", server_root(), "\n";
run_tests();
__DATA__

=== TEST 1: served on the random port
--- config
    location = /t { return 200 "$server_port\n"; }
--- request
GET /t
--- response_body
$ServerPort
_EOT_
    my ($status, $out, $env) = run_child('random', $code, TEST_NGINX_RANDOMIZE => 1,
        TEST_NGINX_SERVROOT => undef, TEST_NGINX_PORT => undef, TEST_NGINX_NO_CLEAN => 1);
    is $status, 0, 'the run passes' or diag $out;
    my ($port) = $out =~ /^# PORT (\d+)$/m;
    my ($root) = $out =~ /^# ROOT (\S+)$/m;
    ok $port && $port != 1984, 'a random port';
    is $root, child_tmp() . "/t/servroot_$port", 'server root t/servroot_<port>';

    # TEST_NGINX_NO_CLEAN left nginx running: find it and stop it
    my $pid;
    if (open my $in, '<', "$root/logs/nginx.pid") {
        chomp($pid = <$in>);
        close $in;
    }
    ok $pid && kill(0, $pid), 'TEST_NGINX_NO_CLEAN leaves nginx running';
    if ($pid) {
        kill 'QUIT', $pid;
        for (1 .. 300) {
            last unless kill 0, $pid;
            my $stat = '';
            if (open my $fh, '<', "/proc/$pid/stat") { $stat = <$fh>; close $fh }
            last if $stat =~ /\)\s+Z\s/;
            Time::HiRes::sleep(0.01);
        }
    }
};

done_testing();
