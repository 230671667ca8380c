# $TEST_NGINX_* expansion, random ports and the html_dir idiom.
use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_GREETING} = 'hello from env';
$ENV{TEST_NGINX_HTML_DIR} ||= html_dir();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: expansion in config, response_body; nginx variables untouched
--- config
    location = /t {
        return 200 "$TEST_NGINX_GREETING|$uri\n";
    }
--- request
GET /t
--- response_body
$TEST_NGINX_GREETING|/t



=== TEST 2: expansion in http_config
--- http_config
    map $uri $greeting {
        default "$TEST_NGINX_GREETING (mapped)";
    }
--- config
    location = /t {
        return 200 "$greeting\n";
    }
--- request
GET /t
--- response_body
hello from env (mapped)



=== TEST 3: TEST_NGINX_SERVER_PORT and TEST_NGINX_SERVER_ROOT are set
--- config
    location = /t {
        return 200 "$TEST_NGINX_SERVER_PORT $TEST_NGINX_SERVER_ROOT\n";
    }
--- request
GET /t
--- response_body eval
"$ENV{TEST_NGINX_SERVER_PORT} $ENV{TEST_NGINX_SERVER_ROOT}\n"
--- response_body_like
^\d+ /



=== TEST 4: RAND_PORT_n is a free port, the same everywhere in the block
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / {
            if ($server_port = $TEST_NGINX_RAND_PORT_1) {
                return 200 "backend one\n";
            }
            return 500;
        }
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        return 200 "backend two\n";
    }
--- config
    location = /one {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    }
    location = /two {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2/;
    }
--- request eval
["GET /one", "GET /two"]
--- response_body eval
["backend one\n", "backend two\n"]
--- no_error_log
[error]



=== TEST 5: html_dir() idiom
--- user_files
>>> greeting.txt
from a user file
--- config
    location = /t {
        alias $TEST_NGINX_HTML_DIR/greeting.txt;
    }
--- request
GET /t
--- response_body
from a user file
