# Several requests per block, packets, pipelining and raw requests.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an array of requests: one connection each, expectations per index
--- config
    location = /a { return 200 "a $http_connection\n"; }
    location = /b { return 404; }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 404]
--- response_body_like eval
["^a close\$", "404 Not Found"]



=== TEST 2: response_body array
--- config
    location /echo/ { return 200 "$uri\n"; }
--- request eval
["GET /echo/1", "GET /echo/2", "GET /echo/3"]
--- response_body eval
["/echo/1\n", "/echo/2\n", "/echo/3\n"]



=== TEST 3: a request split in packets, with delay_before
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Body "[$request_body]";
    }
    location = /echo {
        return 200 "$http_x_body\n";
    }
--- request eval
[["POST /t\nhel", {value => "lo wor", delay_before => 0.1}, "ld"]]
--- response_body
[hello world]



=== TEST 4: packets splitting the request line
--- config
    location = /t { return 200 "$args\n"; }
--- request eval
[["GET /t?x", "=1&y=2"]]
--- response_body
x=1&y=2



=== TEST 5: pipelined requests share one keep-alive connection
--- config
    location /p/ {
        return 200 "$uri $http_connection $connection_requests\n";
    }
--- pipelined_requests eval
["GET /p/1", "GET /p/2", "GET /p/3"]
--- response_body eval
["/p/1 keep-alive 1\n", "/p/2 keep-alive 2\n", "/p/3 close 3\n"]



=== TEST 6: pipelined requests with per-request status codes
--- config
    location = /ok { return 200 "ok\n"; }
--- pipelined_requests eval
["GET /ok", "GET /nope/missing", "HEAD /ok", "GET /ok"]
--- error_code eval
[200, 404, 200, 200]
--- response_body_like eval
["^ok\n\$", "Not Found", "^\$", "^ok\n\$"]



=== TEST 7: raw_request is sent exactly as given
--- config
    location = /t { return 200 "$server_protocol $http_host $http_x_raw\n"; }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: raw.example\r\nX-Raw: yes\r\n\r\n"
--- response_body
HTTP/1.0 raw.example yes



=== TEST 8: raw_request split in packets
--- config
    location = /t { return 200 "$http_x_split\n"; }
--- raw_request eval
["GET /t HTTP/1.1\r\nHost: localhost\r\nX-Sp", "lit: two writes\r\nConnection: close\r\n\r\n"]
--- response_body
two writes



=== TEST 9: http09: no status line, no headers
--- config
    location = /t { return 200 "simple\n"; }
--- raw_request eval
"GET /t\r\n"
--- http09
--- response_body
simple
