# Wrong expectations must make a run fail. Each case writes a small .t file,
# runs it with `perl -I t/lib` in a child process (own server root, own
# port; see ChildRun.pm) and looks at the child's exit status and TAP output.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../..";
use t::driver::ChildRun;
use Test::More;

my $preamble = $PREAMBLE;

subtest 'wrong body, status, header and error_log pattern each fail' => sub {
    my ($status, $out) = run_child('wrong', $preamble . <<'_EOT_');
=== TEST 1: wrong expectations
--- config
    location = /t {
        add_header X-Foo foo;
        return 200 "right body\n";
    }
--- request
GET /t
--- error_code: 201
--- response_headers
X-Foo: bar
--- response_body
wrong body
--- error_log
this pattern never appears

=== TEST 2: right expectations
--- config
    location = /t {
        add_header X-Foo foo;
        return 200 "right body\n";
    }
--- request
GET /t
--- error_code: 200
--- response_headers
X-Foo: foo
--- response_body
right body
--- no_error_log
[error]
_EOT_
    isnt $status, 0, 'the child run fails';
    my @r = results($out);
    my $t1 = qr/\S+\.t TEST 1: wrong expectations/;
    my $t2 = qr/\S+\.t TEST 2: right expectations/;
    ok((grep { /^not ok \d+ - $t1 - status code ok$/ } @r), 'wrong status: not ok');
    ok((grep { /^not ok \d+ - $t1 - header X-Foo ok$/ } @r), 'wrong header: not ok');
    ok((grep { /^not ok \d+ - $t1 - response_body - response is expected \(req 0\)$/ } @r),
       'wrong body: not ok');
    ok((grep { /^not ok \d+ - $t1 - pattern "this pattern never appears" matches a line in error\.log \(req 0\)$/ } @r),
       'missing error_log pattern: not ok');
    is scalar(grep { /^not ok/ } @r), 4, 'exactly those four fail';
    my @t2 = grep { /$t2/ } @r;
    is scalar(@t2), 4, 'four checks for the correct block';
    is scalar(grep { /^ok \d+ - / } @t2), 4, '... all ok';
    like $out, qr/^1\.\.8$/m, 'plan: 8 tests';
    diag $out if $status == 0;
};

subtest 'no_error_log, response_body_like and anchored response_headers_like fail' => sub {
    my ($status, $out) = run_child('wrong2', $preamble . <<'_EOT_');
=== TEST 1: more wrong expectations
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /missing.html
--- error_code: 404
--- response_body_like: ^hello
--- response_headers_like
Content-Type: text
--- no_error_log
No such file or directory
_EOT_
    isnt $status, 0, 'the child run fails';
    my @r = results($out);
    ok((grep { /^not ok .* - response_body_like - response is expected/ } @r), 'body_like: not ok');
    ok((grep { /^not ok .* - header Content-Type like ok$/ } @r), 'headers_like is anchored: not ok');
    ok((grep { /^not ok .* - pattern "No such file or directory" should not match any line in error\.log but matches line ".*No such file/ } @r),
       'no_error_log: not ok');
    ok((grep { /^ok .* - status code ok$/ } @r), 'status: ok');
};

subtest 'error_log checks only see new lines' => sub {
    my $block = <<'_EOT_';
=== TEST 1: logged by the first request only
--- config
    location = /t { return 200 "ok\n"; }
--- request eval
["GET /missing.html", "GET /t"]
--- error_code eval
[404, 200]
--- error_log
No such file or directory
_EOT_
    my ($status, $out) = run_child('incremental', $preamble . $block);
    my @checks = grep { /pattern "No such file or directory"/ } results($out);
    is scalar(@checks), 2, 'the pattern is checked after each request';
    like $checks[0], qr/^ok /, 'after the first request: ok';
    like $checks[1], qr/^not ok /, 'after the second request: not ok (no new line)';
    isnt $status, 0, 'the child run fails';

    ($status, $out) = run_child('accum', "use Test::Nginx::Socket 'no_plan';\n"
        . "check_accum_error_log();\nrun_tests();\n__DATA__\n\n" . $block);
    is $status, 0, 'with check_accum_error_log() both checks pass' or diag $out;
};

subtest 'a client timeout fails without abort' => sub {
    my ($status, $out) = run_child('timeout', $preamble . <<'_EOT_');
=== TEST 1: slow
--- config
    location = /slow {
        limit_rate 1;
        return 200 "slow body";
    }
--- request
GET /slow
--- timeout: 0.2
--- ignore_response
_EOT_
    isnt $status, 0, 'the child run fails';
    like $out, qr/^not ok \d+ - ERROR: client socket timed out - \S+ TEST 1: slow/m,
        'timed out';
};

subtest '--- ONLY runs one block' => sub {
    my ($status, $out) = run_child('only', $preamble . <<'_EOT_');
=== TEST 1: not run
--- config
    location = /t { return 500; }
--- request
GET /t

=== TEST 2: the only one
--- ONLY
--- config
    location = /t { return 200 "only\n"; }
--- request
GET /t
--- response_body
only

=== TEST 3: not run either
--- config
    location = /t { return 500; }
--- request
GET /t
_EOT_
    is $status, 0, 'the child run passes' or diag $out;
    my @r = results($out);
    is scalar(@r), 2, 'two checks ran';
    is scalar(grep { /TEST 2: the only one/ } @r), 2, '... both from the ONLY block';
    like $out, qr/ONLY/, 'a warning mentions ONLY';
};

subtest 'an undefined $TEST_NGINX_ variable bails out' => sub {
    my ($status, $out) = run_child('undefined', $preamble . <<'_EOT_');
=== TEST 1: undefined variable
--- config
    location = /t { return 200 "$TEST_NGINX_NOT_DEFINED_ANYWHERE\n"; }
--- request
GET /t
_EOT_
    isnt $status, 0, 'the child run fails';
    like $out, qr/^Bail out!.*TEST_NGINX_NOT_DEFINED_ANYWHERE/m, 'Bail out! names the variable';
};

subtest 'nginx failing to start fails the block' => sub {
    my ($status, $out) = run_child('nostart', $preamble . <<'_EOT_');
=== TEST 1: bad config
--- config
    no_such_directive_here on;
--- request
GET /t
--- suppress_stderr
_EOT_
    isnt $status, 0, 'the child run fails';
    like $out, qr/^not ok \d+ - \S+ TEST 1: bad config - failed to start nginx/m, 'not ok';
};

done_testing();
