# The response side: status, headers, body matching, chunked decoding.
use Test::Nginx::Socket 'no_plan';

# A custom body check driven by a custom section.
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $want = $block->body_contains;
    return unless defined $want;
    ok(index($body, $want) >= 0,
       $block->name . " - body_contains (req $repeated_req_idx)");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: exact body; chomp for a body without a final newline
--- config
    location = /t {
        return 200 "no newline";
    }
--- request
GET /t
--- response_body chomp
no newline



=== TEST 2: empty response_body section means an empty body
--- config
    location = /t {
        return 200 "";
    }
--- request
GET /t
--- response_body



=== TEST 3: response_body given as a regex through eval
--- config
    location = /t {
        return 200 "hello 12345\n";
    }
--- request
GET /t
--- response_body eval
qr/^hello \d+$/



=== TEST 4: response_body_like, inline; unanchored, /s
--- config
    location = /t {
        return 200 "first\nsecond\n";
    }
--- request
GET /t
--- response_body_like: first.second



=== TEST 5: response_body_like with anchors
--- config
    location = /t {
        return 200 "abc";
    }
--- request
GET /t
--- response_body_like: ^abc$



=== TEST 6: response_body_unlike
--- config
    location = /t {
        return 200 "all good\n";
    }
--- request
GET /t
--- response_body_unlike: error|fail



=== TEST 7: response_headers: exact values, repeats joined, missing is "", !Name
--- config
    location = /t {
        add_header X-One one;
        add_header X-Rep a;
        add_header X-Rep b;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers
X-One: one
X-Rep: a, b
X-Missing:
!X-Missing
!X-Other
Content-Type: text/plain
--- response_body
ok



=== TEST 8: response_headers_like is anchored
--- config
    location = /t {
        add_header X-Num 12345;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
X-Num: \d+
Server: nginx/[\d.]+
Content-Type: text/\w+



=== TEST 9: raw_response_headers_like / _unlike see the CRLFs
--- config
    location = /t {
        add_header X-Raw raw;
        return 200 "ok\n";
    }
--- request
GET /t
--- raw_response_headers_like: X-Raw: raw\r\n
--- raw_response_headers_unlike: X-Raw: raw\n



=== TEST 10: error_code
--- config
    location = /t {
        return 404;
    }
--- request
GET /t
--- error_code: 404
--- response_body_like: 404 Not Found



=== TEST 11: error_code_like
--- config
    location = /t {
        return 302 /elsewhere;
    }
--- request
GET /t
--- error_code_like: ^30[12]$
--- response_headers_like
Location: http://localhost(:\d+)?/elsewhere



=== TEST 12: chunked responses are decoded
--- config
    location = /t {
        ssi on;
        ssi_types text/plain;
        return 200 "chunked\nbody\n";
    }
--- request
GET /t
--- raw_response_headers_like: Transfer-Encoding: chunked
--- response_headers
!Content-Length
--- response_body
chunked
body



=== TEST 13: $ServerPort in response_body and response_headers
--- config
    location = /t {
        add_header X-Port $server_port;
        return 200 "port=$server_port\n";
    }
--- request
GET /t
--- response_headers
X-Port: $ServerPort
--- response_body
port=$ServerPort



=== TEST 14: add_response_body_check with a custom section
--- config
    location = /t {
        return 200 "some needle here\n";
    }
--- request
GET /t
--- body_contains: needle
--- response_body_like: needle



=== TEST 15: response_body_filters
--- config
    location = /t {
        return 200 "Hello";
    }
--- request
GET /t
--- response_body_filters: uc
--- response_body chomp
HELLO
