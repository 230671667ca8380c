# error_log / no_error_log / grep_error_log / access_log, repeated twice:
# every check only sees the log lines written since the previous one.
use Test::Nginx::Socket 'no_plan';

# The driver only warns about [alert]/[crit]/[emerg] lines; collect them.
my @warnings;
$SIG{__WARN__} = sub { push @warnings, $_[0]; print STDERR $_[0] unless $_[0] =~ /\[crit\]/ };

repeat_each(2);
no_shuffle();
run_tests();

my @crit = grep { /TEST 7: .*\[crit\]/ } @warnings;
is scalar(@crit), 2, 'an unexpected [crit] line only warns, once per repetition';

__DATA__

=== TEST 1: every line of a plain error_log value is one literal pattern
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /missing.txt
--- error_code: 404
--- error_log
open() "
missing.txt" failed (2: No such file or directory)
[error]



=== TEST 2: no_error_log on a clean request
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- no_error_log
[error]
[warn]



=== TEST 3: eval: a regex, or an array mixing strings and regexes
--- config
--- request
GET /gone.html
--- error_code: 404
--- error_log eval
[qr/open\(\) "[^"]+gone\.html" failed/, "No such file or directory"]
--- no_error_log eval
qr/\[(?:alert|crit|emerg)\]/



=== TEST 4: grep_error_log sees only this repetition's lines (one match, not two)
--- config
--- request
GET /missing.txt
--- error_code: 404
--- grep_error_log: No such file or directory
--- grep_error_log_out
No such file or directory



=== TEST 5: grep_error_log with a regex; $TEST_NGINX_ expansion in grep_error_log_out
--- config
--- request
GET /nope.txt
--- error_code: 404
--- grep_error_log eval
qr/open\(\) "[^"]+"/
--- grep_error_log_out
open() "$TEST_NGINX_SERVER_ROOT/html/nope.txt"



=== TEST 6: access_log / no_access_log, and wait
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t?from=access_log
--- wait: 0.05
--- access_log
"GET /t?from=access_log HTTP/1.1" 200
--- no_access_log
/other



=== TEST 7: an unexpected [crit] line makes no failure (only a warning)
--- config
    location = /t {
        proxy_pass http://unix:$TEST_NGINX_SERVER_ROOT/no-such.sock;
    }
--- request
GET /t
--- error_code: 502



=== TEST 8: a [crit] line asked for is a plain check, no warning
--- config
    location = /t {
        proxy_pass http://unix:$TEST_NGINX_SERVER_ROOT/no-such.sock;
    }
--- request
GET /t
--- error_code: 502
--- error_log
[crit]
connect() to unix:
