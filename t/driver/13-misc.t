# Skipping, todo, init, timeouts, abort, shutdown, ignore_response and curl.
use Test::Nginx::Socket 'no_plan';

our $InitRuns = 0;

repeat_each(2);
no_shuffle();
run_tests();

is $InitRuns, 1, '--- init ran once for the block, not once per repetition';

__DATA__

=== TEST 1: skip_eval skips N tests per repetition (this block would fail)
--- skip_eval: 2: 1 + 1 == 2
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 2: skip_eval with a false condition runs the block
--- skip_eval: 2: 0
--- config
    location = /t { return 200 "ran\n"; }
--- request
GET /t
--- response_body
ran



=== TEST 3: skip_nginx
--- skip_nginx: 2: >= 0.1.0
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 4: skip_nginx2 with "or"
--- skip_nginx2: 2: < 0.1.0 or > 0.1.0
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 4b: skip_openssl (nginx is built with OpenSSL >= 1.0.0)
--- skip_openssl: 2: >= 1.0.0
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 5: skip_nginx condition false
--- skip_nginx: 2: < 0.1.0
--- config
    location = /t { return 200 "not skipped\n"; }
--- request
GET /t
--- response_body
not skipped



=== TEST 6: todo: failures are TODO, not failures
--- todo: 2: the expectations are wrong on purpose
--- config
    location = /t { return 200 "actual\n"; }
--- request
GET /t
--- error_code: 201
--- response_body
expected something else



=== TEST 7: init runs once before the requests
--- init
$main::InitRuns++;
--- config
    location = /t { return 200 "init\n"; }
--- request
GET /t
--- response_body
init



=== TEST 8: a client timeout is not a failure with abort
--- config
    location = /slow {
        limit_rate 1;
        return 200 "slow body";
    }
--- request
GET /slow
--- timeout: 300ms
--- abort
--- ignore_response
--- no_error_log
[alert]



=== TEST 9: shutdown half-closes the connection after the request
--- config
    location = /t { return 200 "still answered\n"; }
--- request
GET /t
--- shutdown: 1
--- response_body
still answered



=== TEST 10: ignore_response: nothing about the response is checked
--- config
    location = /t { return 500 "broken"; }
--- raw_request eval
"garbage\r\n\r\n"
--- ignore_response
--- no_error_log
[alert]



=== TEST 11: curl_protocol sends the request with curl
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Body "[$request_body]";
    }
    location = /echo {
        add_header X-Via curl;
        return 200 "$http_x_body $http_x_custom $http_user_agent\n";
    }
--- curl_protocol: http
--- more_headers
X-Custom: custom
--- request
POST /t
curl body
--- response_headers
X-Via: curl
--- response_body_like: ^\[curl body\] custom curl/



=== TEST 12: curl_options and a chunked response
--- config
    location = /t {
        ssi on;
        ssi_types text/plain;
        return 200 "via curl\n";
    }
--- curl_options: --http1.1 --compressed
--- request
GET /t
--- response_headers
Transfer-Encoding: chunked
--- response_body
via curl
