# The request side: defaults, comments, body and Content-Length, more_headers.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: defaults: HTTP/1.1, Host: localhost, Connection: close, no body
--- config
    location = /t {
        return 200 "$request|$http_host|$http_connection|$http_content_length\n";
    }
--- request
GET /t
--- response_body
GET /t HTTP/1.1|localhost|close|



=== TEST 2: a method alone means URI /
--- config
    location = / {
        return 200 "$request\n";
    }
--- request
GET
--- response_body
GET / HTTP/1.1



=== TEST 3: explicit HTTP version
--- config
    location = /t {
        return 200 "$server_protocol $http_host\n";
    }
--- request
GET /t HTTP/1.0
--- response_body
HTTP/1.0 localhost



=== TEST 4: leading blank space and comment lines are skipped
--- config
    location = /t {
        return 200 "$request\n";
    }
--- request eval
"\n\n# first comment\n   # indented comment\n  GET /t?a=1&b=2\n"
--- response_body
GET /t?a=1&b=2 HTTP/1.1



=== TEST 5: body is trimmed and Content-Length set
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Body "[$request_body]";
    }
    location = /echo {
        return 200 "$http_x_body len=$http_content_length\n";
    }
--- request eval
"POST /t\n   hello world  \n\n"
--- response_body
[hello world] len=11



=== TEST 6: multi-line body keeps its inner newlines
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Len $content_length;
    }
    location = /echo {
        return 200 "len=$http_x_len\n";
    }
--- request
POST /t
line one
line two
--- response_body
len=17



=== TEST 7: more_headers, with comment lines skipped and Host replaced
--- config
    location = /t {
        return 200 "$http_x_foo|$http_x_bar|$http_x_empty|$http_host\n";
    }
--- more_headers
X-Foo: foo value
# X-Bar: commented out
X-Empty:
Host: example.com
--- request
GET /t
--- response_body
foo value|||example.com



=== TEST 8: a Connection header in more_headers replaces the automatic one
--- config
    location = /t {
        return 200 "$http_connection\n";
    }
--- more_headers
Connection: Close
--- request
GET /t
--- response_body
Close



=== TEST 9: Content-Length in more_headers: the body is sent untouched
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Body "[$request_body]";
    }
    location = /echo {
        return 200 "$http_x_body len=$http_content_length\n";
    }
--- more_headers
Content-Length: 7
--- request eval
"POST /t\n  hello"
--- response_body
[  hello] len=7



=== TEST 10: Transfer-Encoding: chunked turns off the automatic Content-Length
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Body "[$request_body]";
        proxy_set_header X-TE $http_transfer_encoding;
    }
    location = /echo {
        return 200 "$http_x_body te=$http_x_te\n";
    }
--- more_headers
Transfer-Encoding: chunked
--- request eval
"POST /t\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
--- response_body
[hello world] te=chunked



=== TEST 11: HEAD: headers only
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
HEAD /t
--- response_headers
Content-Length: 6
--- response_body



=== TEST 12: more_headers given by eval, with mixed line ends
--- config
    location = /t {
        return 200 "$http_x_a|$http_x_b\n";
    }
--- more_headers eval
"X-A: 1\r\nX-B: 2\n"
--- request
GET /t
--- response_body
1|2
