# must_die: nginx has to refuse the configuration; error_log then checks the
# startup error. The next block starts nginx normally again.
use Test::Nginx::Socket;

# the classic plan: two checks per block (must_die blocks run once)
plan tests => repeat_each() * 2 * blocks();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: unknown directive
--- config
    no_such_directive_here on;
--- must_die
--- suppress_stderr
--- error_log
unknown directive "no_such_directive_here"



=== TEST 2: expected exit code
--- http_config
    server_tokens maybe;
--- config
--- must_die: 1
--- suppress_stderr
--- error_log eval
qr/invalid value "maybe"/



=== TEST 3: nginx starts again after a must_die block
--- config
    location = /t { return 200 "alive\n"; }
--- request
GET /t
--- response_body
alive
