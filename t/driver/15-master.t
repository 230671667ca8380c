# master_on() with two workers: the workers (running as "nobody" when the
# tests run as root) can read the html files and write the temp directories.
use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a worker answers, not the master
--- config
    location = /t {
        return 200 "$pid\n";
    }
--- request
GET /t
--- response_body_like: ^\d+$



=== TEST 2: user files are readable by the workers
--- user_files
>>> w.txt
readable
--- config
--- request
GET /w.txt
--- response_body
readable



=== TEST 3: the request body temp dir is writable by the workers
--- config
    client_body_buffer_size 1k;
    client_body_in_file_only clean;
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/len;
    }
    location = /len {
        return 200 "$http_content_length\n";
    }
--- request eval
"POST /t\n" . ("x" x 5000)
--- response_body
5000
--- no_error_log
[crit]
[error]



=== TEST 4: graceful shutdown of the master is logged
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- shutdown_error_log
gracefully shutting down
