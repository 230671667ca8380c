# Where main_config, http_config, config and post_main_config land in the
# generated nginx.conf, and the effect of the configuration functions.
use Test::Nginx::Socket 'no_plan';

env_to_nginx('DRIVER_TEST_A', 'DRIVER_TEST_B=x y');
worker_connections(128);
workers(1);
no_root_location();
log_level('info');

no_shuffle();
run_tests();

# the last block's server root is still on disk after run_tests()
my $file = server_root() . '/conf/nginx.conf';
open my $in, '<', $file or die "cannot read $file: $!";
my $conf = do { local $/; <$in> };
close $in;

sub pos_of {
    my ($re) = @_;
    return $conf =~ $re ? $-[0] : -1;
}

my %at = (
    main   => pos_of(qr/# MAIN-CONFIG-MARK/),
    http   => pos_of(qr/^http \{/m),
    httpc  => pos_of(qr/# HTTP-CONFIG-MARK/),
    server => pos_of(qr/^    server \{/m),
    config => pos_of(qr/# CONFIG-MARK/),
    post   => pos_of(qr/# POST-MAIN-CONFIG-MARK/),
    events => pos_of(qr/^events \{/m),
);
ok $at{$_} >= 0, "$_ found in nginx.conf" for sort keys %at;
ok $at{main} < $at{http}, 'main_config before http {}';
ok $at{http} < $at{httpc} && $at{httpc} < $at{server}, 'http_config inside http {}, before server {}';
ok $at{server} < $at{config}, 'config inside server {}';
ok $at{config} < $at{post} && $at{post} < $at{events}, 'post_main_config after http {}, before events {}';
like $conf, qr/^env DRIVER_TEST_A;$/m, 'env_to_nginx plain';
like $conf, qr/^env "DRIVER_TEST_B=x y";$/m, 'env_to_nginx value with a space is quoted';
like $conf, qr/^\s*worker_connections\s+128;/m, 'worker_connections()';
like $conf, qr/^worker_processes\s+1;/m, 'workers()';
like $conf, qr/^daemon on;/m, 'daemon on';
like $conf, qr/^master_process off;/m, 'master_process off by default';
like $conf, qr{^error_log \S+/logs/error\.log warn;}m, 'per-block --- log_level';
like $conf, qr/^\s*server_name\s+'example\.com';/m, '--- server_name';
unlike $conf, qr/index index\.html/, 'no_root_location()';

__DATA__

=== TEST 1: default log level from log_level()
--- config
    location = /t {
        return 200 "$server_name\n";
    }
--- request
GET /t
--- response_body
localhost
--- error_log
[notice]
--- no_error_log
[debug]



=== TEST 2: everything in its place
--- main_config
    # MAIN-CONFIG-MARK
    thread_pool driver_pool threads=1;
--- http_config
    # HTTP-CONFIG-MARK
    map $uri $from_http_config { default "mapped"; }
--- config
    # CONFIG-MARK
    location / {
        return 200 "$from_http_config $server_name\n";
    }
--- post_main_config
    # POST-MAIN-CONFIG-MARK
--- server_name: example.com
--- log_level: warn
--- request
GET /
--- response_body
mapped example.com
--- no_error_log
[info]
[notice]
