# repeat_each: nginx is not restarted between repetitions, and shutdown logs
# are checked when nginx stops after the block. Also add_cleanup_handler.
use Test::Nginx::Socket 'no_plan';

my %pids;
add_response_body_check(sub {
    my ($block, $body, $req_idx, $rep) = @_;
    push @{ $pids{ $block->name } }, $body if defined $block->collect_pid;
});

my $cleaned = 0;
add_cleanup_handler(sub { $cleaned++ });

repeat_each(3);
no_shuffle();
run_tests();

is $cleaned, 1, 'the cleanup handler ran once at the end of run_tests()';

my @pids = @{ $pids{'TEST 1: same nginx for every repetition'} || [] };
is scalar(@pids), 3, 'three repetitions';
is scalar(keys %{{ map { $_ => 1 } @pids }}), 1, 'the same nginx process served all of them';

__DATA__

=== TEST 1: same nginx for every repetition
--- config
    location = /t { return 200 "$pid"; }
--- request
GET /t
--- collect_pid
--- response_body_like: ^\d+$



=== TEST 2: shared state survives repetitions (limit_req rejects the 2nd and 3rd)
--- http_config
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
--- config
    location = /index.html {
        limit_req zone=one;
        limit_req_status 429;
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request
GET /index.html
--- error_code_like: ^(200|429)$
--- grep_error_log: limiting requests
--- grep_error_log_out eval
["", "limiting requests\n", "limiting requests\n"]



=== TEST 3: shutdown_error_log / no_shutdown_error_log
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- shutdown_error_log
SIGQUIT
shutting down
--- no_shutdown_error_log
[alert]



=== TEST 4: a following block starts a fresh nginx
--- config
    location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
