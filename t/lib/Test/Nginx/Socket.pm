package Test::Nginx::Socket;

# A Test::Nginx compatible test driver built on Test::Base.
#
# It reads the same data format as openresty's Test::Nginx::Socket: a Perl
# preamble with configuration calls and run_tests(), then __DATA__ with
# "=== TEST n: name" blocks made of "--- section" values. For every block it
# writes nginx.conf, (re)starts nginx, sends the request(s) repeat_each()
# times and reports every check as one TAP test.
#
# See /work/shared/TEST-DRIVER.md (the project's specification) for the
# meaning of every section and function. The code is organised as:
#
#   configuration functions  (exported; called before run_tests)
#   run_tests / per-block flow
#   request list building
#   response checks
#   log checks
#   helpers
#
# Server management lives in Test::Nginx::Driver::Server and the HTTP client
# in Test::Nginx::Driver::Client.

use strict;
use warnings;

use Test::Base ();            # loaded without import(): see below
our @ISA = ('Test::Base');    # so `use Test::Nginx::Socket -Base` subclasses work

use Cwd ();
use File::Spec ();
use IO::Socket::INET ();
use List::Util ();
use Scalar::Util ();
use Time::HiRes ();

use Test::Nginx::Driver::Client;
use Test::Nginx::Driver::Server;

our $VERSION = '0.01';

# Test::Base::import (inherited) handles the plan arguments ('no_plan',
# tests => N), the -Base subclassing and the export of everything below plus
# Test::Base's and Test::More's own functions.
our @EXPORT = qw(
    run_tests repeat_each no_shuffle
    log_level workers master_on master_off master_process_enabled
    worker_connections no_root_location env_to_nginx config_preamble
    add_block_preprocessor add_cleanup_handler add_response_body_check
    no_long_string check_accum_error_log use_hup bail_out
    server_port server_port_for_client server_root html_dir server_addr
    server_name timeout sleep_time error_log_data is_str
    $ServerPort $ServerPortForClient $ServRoot $NginxBinary $NginxVersion
    $ServerAddr $ServerName $RepeatEach $NoLongString
);

# ---------------------------------------------------------------------------
# settings (package variables so that subclasses can look at them)

my $cwd = Cwd::cwd() || '.';

our $NginxBinary = $ENV{TEST_NGINX_BINARY} || _find_nginx();
our $NginxVersion;          # canonical x.yyyzzz number, set by run_tests
our $NginxRawVersion;       # "1.22.1"
our $OpenSSLVersion;        # canonical number of the OpenSSL nginx was built with

our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServRoot            = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT} || "$cwd/t/servroot");
if ($ENV{TEST_NGINX_RANDOMIZE}) {
    # parallel runs (prove -j): a private port and server root per process
    $ServerPort = $ServerPortForClient = _free_port({});
    $ServRoot = "$cwd/t/servroot_$ServerPort" unless $ENV{TEST_NGINX_SERVROOT};
}

our $RepeatEach        = 1;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $Workers           = 1;
our $MasterProcess     = ($ENV{TEST_NGINX_MASTER_PROCESS} || '') =~ /^(?:on|1|yes)$/i ? 'on' : 'off';
our $WorkerConnections = 64;
our $NoRootLocation    = 0;
our $ConfigPreamble    = '';
our $ServerAddr        = '127.0.0.1';
our $ServerName        = 'localhost';
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep    = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $CheckAccumErrLog  = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG} || 0;
our $NoLongString      = 0;
our $UseHup            = $ENV{TEST_NGINX_USE_HUP} || 0;    # accepted, not used
our $NoClean           = $ENV{TEST_NGINX_NO_CLEAN} || 0;
our $ForceRestart      = defined $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST}
                         ? $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} : 1;
our $IgnoreMissingDirectives = $ENV{TEST_NGINX_IGNORE_MISSING_DIRECTIVES} || 0;

our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @ResponseBodyChecks);

# Sections the real tool has and this driver does not implement: a block
# using one gets a warning rather than a silently different meaning.
my @UNSUPPORTED = qw(
    tcp_listen tcp_reply tcp_query tcp_query_len tcp_reply_delay tcp_no_close
    tcp_shutdown udp_listen udp_reply udp_query udp_reply_delay stap stap_out
    stap_out_like stap_out_unlike response_body_json_sort reload_fails
    error_log_file server_addr_for_client http3
);

# run-time state
our $Server;              # Test::Nginx::Driver::Server
my $RunningConf;          # nginx.conf text of the running nginx
my $LastConf;             # nginx.conf text of the last block that had a config
my $ShutdownCtx;          # block context whose shutdown logs are pending
my $CleanedUp = 0;

# ---------------------------------------------------------------------------
# configuration functions

# Setter/getter helper: with an argument set, without one return.
sub _accessor {
    my ($ref, @args) = @_;
    $$ref = $args[0] if @args;
    return $$ref;
}

sub repeat_each            { _accessor(\$RepeatEach, @_) }
sub workers                { _accessor(\$Workers, @_) }
sub worker_connections     { _accessor(\$WorkerConnections, @_) }
sub log_level              { _accessor(\$LogLevel, @_) }
sub server_addr            { _accessor(\$ServerAddr, @_) }
sub server_name            { _accessor(\$ServerName, @_) }
sub timeout                { _accessor(\$Timeout, @_) }
sub server_port_for_client { _accessor(\$ServerPortForClient, @_) }
sub server_port            { _accessor(\$ServerPort, @_) }
sub server_root            { $ServRoot }
sub html_dir               { "$ServRoot/html" }
sub sleep_time             { $TestNginxSleep }
sub no_shuffle             { $NoShuffle = 1 }
sub master_on              { $MasterProcess = 'on' }
sub master_off             { $MasterProcess = 'off' }
sub no_root_location       { $NoRootLocation = 1 }
sub no_long_string         { $NoLongString = 1 }
sub check_accum_error_log  { $CheckAccumErrLog = 1 }
sub use_hup                { $UseHup = 1 }
sub config_preamble        { $ConfigPreamble = shift }

sub master_process_enabled {
    if (@_) {
        $MasterProcess = $_[0] ? 'on' : 'off';
    }
    return $MasterProcess eq 'on';
}

sub env_to_nginx {
    push @EnvToNginx, @_;
}

# The real tool runs the last registered preprocessor first.
sub add_block_preprocessor(&) {
    unshift @BlockPreprocessors, shift;
}

sub add_cleanup_handler($) {
    unshift @CleanupHandlers, shift;
}

sub add_response_body_check($) {
    push @ResponseBodyChecks, shift;
}

# Stop everything and abort the whole test run.
sub bail_out {
    my @msg = @_;
    _cleanup();
    Test::More::BAIL_OUT(join '', @msg);
}

# String comparison that honours regex expectations and shows a diff for
# multi-line strings.
sub is_str {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    my $ok = defined $got && defined $expected ? $got eq $expected
           : !defined $got && !defined $expected;
    if ($ok || $NoLongString || $ENV{TEST_SHOW_NO_DIFFS}
        || !defined $got || !defined $expected
        || $expected !~ /\n./s || !eval { require Text::Diff; 1 })
    {
        return Test::More::is($got, $expected, $desc);
    }
    Test::More::ok(0, $desc);
    Test::More::diag(Text::Diff::diff(\$expected, \$got,
                                      { FILENAME_A => 'expected', FILENAME_B => 'got' }));
    return 0;
}

# The error.log lines written since the previous look (arrayref).
sub error_log_data {
    Time::HiRes::sleep($TestNginxSleep * 3);
    return $Server ? $Server->new_log_lines('error', accum => $CheckAccumErrLog) : [];
}

# ---------------------------------------------------------------------------
# run_tests

sub run_tests {
    my $tb = Test::More->builder;
    Test::More::plan('no_plan') unless $tb->has_plan;

    _detect_versions();
    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;
    $ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

    $Server ||= Test::Nginx::Driver::Server->new(
        binary => $NginxBinary, servroot => $ServRoot, port => $ServerPort);
    $Server->set_port($ServerPort);
    $Server->stop_stale;

    my @blocks = Test::Base::blocks();
    if (grep { exists $_->{ONLY} } @blocks) {
        warn "\n*** WARNING: $0: a block has --- ONLY, all the others are skipped ***\n\n";
    }
    @blocks = List::Util::shuffle(@blocks) unless $NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        _run_block($block);
    }

    _cleanup();
}

# Stop nginx (unless TEST_NGINX_NO_CLEAN) and run the cleanup handlers, once.
sub _cleanup {
    return if $CleanedUp++;
    if ($Server && !$NoClean) {
        _stop_nginx();
    }
    for my $handler (@CleanupHandlers) {
        eval { $handler->(); 1 } or warn "WARNING: cleanup handler failed: $@";
    }
}

END {
    local $?;
    _cleanup() if $Server;
}

# ---------------------------------------------------------------------------
# one block

sub _run_block {
    my ($block) = @_;
    my $ctx = {
        block      => $block,
        name       => "$0 " . $block->name,
        rand_ports => {},
        dry_run    => undef,
        expanded   => {},
    };
    my $name = $ctx->{name};

    # random ports are per block (they are also put in %ENV for Perl code)
    delete $ENV{$_} for grep { /^TEST_NGINX_RAND_PORT_\d+$/ } keys %ENV;

    for my $sec (@UNSUPPORTED) {
        warn "WARNING: $name - --- $sec is not supported by the bundled Test::Nginx driver\n"
            if defined _sec($block, $sec);
    }

    # --- skip_* / todo
    my ($skip_n, $skip_reason) = _skip_info($ctx);
    if (defined $skip_n) {
        my $tb = Test::More->builder;
        for (1 .. $RepeatEach) {
            $tb->skip("$name - $skip_reason") for 1 .. $skip_n;
        }
        return;
    }
    my $todo = _sec($block, 'todo');
    my $todo_reason;
    if (defined $todo) {
        ($todo_reason) = $todo =~ /^\s*\d+\s*:\s*(.*?)\s*$/s;
        $todo_reason = $todo unless defined $todo_reason;
    }

    # --- nginx
    my $config = _sec($block, 'config');
    my $conf_text;
    if (defined $config) {
        $conf_text = _render_conf($ctx);
        $LastConf = $conf_text;
    }
    my $must_die = _sec($block, 'must_die');

    if (defined $must_die) {
        _stop_nginx();
        return _run_must_die($ctx, $conf_text // $LastConf, $must_die);
    }

    my $keep = $Server->is_running
        && (!defined $config || (!$ForceRestart && $conf_text eq ($RunningConf // '')));
    if (!$keep) {
        $conf_text //= $LastConf;
        unless (defined $conf_text) {
            bail_out("$name - No '--- config' section specified and could not get previous one");
        }
        _stop_nginx();
        _prepare_servroot($ctx, $conf_text);
        my $res = $Server->start;
        if ($res->{ok}) {
            _show_stderr($ctx, $res->{stderr});
            $RunningConf = $conf_text;
        } else {
            my $directive = _missing_directive($res);
            $Server->stop;
            if ($IgnoreMissingDirectives && defined $directive) {
                # run the block "dry": every check is reported as skipped
                $ctx->{dry_run} = "the lack of directive $directive";
            } else {
                Test::More::fail("$name - failed to start nginx: $res->{error}");
                Test::More::diag($res->{stderr}) if $res->{stderr} ne '';
                return;
            }
        }
    }
    $ShutdownCtx = $ctx;

    # --- init
    if (defined(my $init = _sec($block, 'init'))) {
        _run_perl($ctx, 'init', $init);
    }

    # --- the requests, repeat_each times
    my $tb = Test::More->builder;
    $tb->todo_start("$name - $todo_reason") if defined $todo_reason;
    for my $rep (0 .. $RepeatEach - 1) {
        if ($rep > 0 && defined _sec($block, 'user_files')) {
            my $err = $Server->write_user_files(_user_files($ctx));
            Test::More::fail("$name - user_files: $err") if $err;
        }
        _run_requests($ctx, $rep);
    }
    $tb->todo_end if defined $todo_reason;
}

# Write the server root for a block: directories, user files, nginx.conf,
# then run post_setup_server_root. Bails out when that is impossible.
sub _prepare_servroot {
    my ($ctx, $conf_text) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};
    my $err = $Server->setup_root
        || $Server->write_user_files(_user_files($ctx))
        || $Server->write_conf($conf_text);
    if ($err) {
        bail_out("$name - cannot set up the server root: $err");
    }
    if (defined(my $code = _sec($block, 'post_setup_server_root'))) {
        _run_perl($ctx, 'post_setup_server_root', $code);
    }
}

# A block whose nginx must fail to start.
sub _run_must_die {
    my ($ctx, $conf_text, $expected) = @_;
    my $name = $ctx->{name};
    bail_out("$name - No '--- config' section specified and could not get previous one")
        unless defined $conf_text;
    _prepare_servroot($ctx, $conf_text);
    my $res = $Server->start;
    _show_stderr($ctx, $res->{stderr});
    $Server->stop;    # in case it did start
    $RunningConf = undef;

    if (Scalar::Util::looks_like_number($expected)) {
        Test::More::is($res->{exit_code}, $expected, "$name - die with the expected exit code");
    } else {
        Test::More::ok(!$res->{ok}, "$name - die as expected");
    }

    # The startup error is in error.log once nginx has opened it; earlier
    # errors only reach stderr. Look at both, without duplicates.
    my @lines = @{ $Server->new_log_lines('error') };
    my $logged = join '', @lines;
    for my $line (split /\n/, $res->{stderr}) {
        (my $msg = $line) =~ s/^nginx: \[\w+\] //;
        push @lines, "$line\n" if index($logged, $msg) < 0;
    }
    _check_logs($ctx, 0, lines => \@lines);
}

# Print nginx's stderr unless the block has suppress_stderr.
sub _show_stderr {
    my ($ctx, $stderr) = @_;
    return if !defined $stderr || $stderr eq '';
    return if defined _sec($ctx->{block}, 'suppress_stderr');
    warn $stderr;
}

# The directive nginx complained about as unknown, if any.
sub _missing_directive {
    my ($res) = @_;
    my $text = $res->{stderr};
    if (open my $in, '<', $Server->error_log_file) {
        local $/;
        $text .= <$in> // '';
        close $in;
    }
    return $text =~ /unknown directive "([^"]+)"/ ? $1 : undef;
}

# Stop nginx and check the shutdown logs of the block that used it.
sub _stop_nginx {
    return unless $Server;
    my $running = $Server->is_running;
    $Server->stop;
    $RunningConf = undef;
    my $ctx = $ShutdownCtx;
    undef $ShutdownCtx;
    return unless $running && $ctx;

    my $block = $ctx->{block};
    my $want   = _sec($block, 'shutdown_error_log');
    my $forbid = _sec($block, 'no_shutdown_error_log');
    return unless defined $want || defined $forbid;

    Time::HiRes::sleep($TestNginxSleep * 3);
    my $lines = $Server->new_log_lines('error', accum => $CheckAccumErrLog);
    _match_patterns($ctx, $lines, $want, 1, 'error.log', '(shutdown)') if defined $want;
    _match_patterns($ctx, $lines, $forbid, 0, 'error.log', '(shutdown)') if defined $forbid;
}

# Run an init / post_setup_server_root value: Perl code text or a coderef.
sub _run_perl {
    my ($ctx, $what, $code) = @_;
    my $ok = ref $code eq 'CODE'
        ? eval { $code->($ctx->{block}); 1 }
        : eval "package main; no strict;\n$code\n;1";
    bail_out("$ctx->{name} - $what failed: $@") unless $ok;
}

# ---------------------------------------------------------------------------
# skipping

sub _detect_versions {
    return if defined $NginxVersion;
    my $out = `$NginxBinary -V 2>&1`;
    $out = '' unless defined $out;
    if ($out =~ m{(?:nginx|openresty)/(\d+)\.(\d+)\.(\d+)}) {
        $NginxRawVersion = "$1.$2.$3";
        $NginxVersion = _canon_version($1, $2, $3);
    } else {
        warn "WARNING: cannot get the version of $NginxBinary: $out\n";
    }
    if ($out =~ /built with OpenSSL (\d+)\.(\d+)\.(\d+)/) {
        $OpenSSLVersion = _canon_version($1, $2, $3);
    }
}

sub _canon_version { sprintf '%d.%03d%03d', @_[0 .. 2] }

# Compare $have (canonical) with "op x.y.z".
sub _version_matches {
    my ($have, $op, $ver) = @_;
    return $op =~ /^</ ? 1 : 0 unless defined $have;
    return $op eq '<'  ? $have <  $ver
         : $op eq '<=' ? $have <= $ver
         : $op eq '>'  ? $have >  $ver
         :               $have >= $ver;
}

# Returns (number of tests to skip, reason) when the block is to be skipped.
sub _skip_info {
    my ($ctx) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};
    my $ver = qr/([<>]=?)\s*(\d+)\.(\d+)\.(\d+)/;

    if (defined(my $spec = _sec($block, 'skip_eval'))) {
        my ($n, $code) = $spec =~ /^\s*(\d+)\s*:\s*(.*)$/s
            or bail_out("$name - invalid --- skip_eval spec: $spec");
        my $skip = eval "package main; no strict;\n$code\n";
        bail_out("$name - skip_eval - failed to eval \"$code\": $@") if $@;
        return ($n, 'skip_eval') if $skip;
    }
    for my $what (['skip_nginx', \$NginxVersion, 'nginx'],
                  ['skip_openssl', \$OpenSSLVersion, 'OpenSSL'])
    {
        my ($sec, $have, $label) = @$what;
        my $spec = _sec($block, $sec);
        next unless defined $spec;
        my ($n, $op, @v) = $spec =~ /^\s*(\d+)\s*:\s*$ver(?:\s*:\s*(.*?))?\s*$/s
            or bail_out("$name - invalid --- $sec spec: $spec");
        my $reason = $v[3];
        $reason = "$label version $op $v[0].$v[1].$v[2]" unless defined $reason && $reason ne '';
        return ($n, $reason) if _version_matches($$have, $op, _canon_version(@v[0 .. 2]));
    }
    if (defined(my $spec = _sec($block, 'skip_nginx2'))) {
        my ($n, $op1, $a1, $a2, $a3, $join, $op2, $b1, $b2, $b3, $reason) = $spec =~
            /^\s*(\d+)\s*:\s*$ver\s*(and|or)\s*$ver(?:\s*:\s*(.*?))?\s*$/s
            or bail_out("$name - invalid --- skip_nginx2 spec: $spec");
        my $x = _version_matches($NginxVersion, $op1, _canon_version($a1, $a2, $a3));
        my $y = _version_matches($NginxVersion, $op2, _canon_version($b1, $b2, $b3));
        $reason = "nginx version $op1 $a1.$a2.$a3 $join $op2 $b1.$b2.$b3"
            unless defined $reason && $reason ne '';
        return ($n, $reason) if $join eq 'and' ? ($x && $y) : ($x || $y);
    }
    return;
}

# ---------------------------------------------------------------------------
# nginx.conf

sub _render_conf {
    my ($ctx) = @_;
    my $block = $ctx->{block};

    my @env = map { "env $_;" } qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS UBSAN_OPTIONS);
    for my $var (@EnvToNginx) {
        if ($var =~ /\s/) {
            (my $q = $var) =~ s/(["\\])/\\$1/g;
            push @env, qq{env "$q";};
        } else {
            push @env, "env $var;";
        }
    }

    my @modules = grep { length } split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
    my $level = _sec($block, 'log_level');
    $level = $LogLevel unless defined $level && $level ne '';
    my $server_name = _sec($block, 'server_name');
    $server_name = $ServerName unless defined $server_name && $server_name ne '';

    return $Server->render_conf(
        workers            => $Workers,
        master             => $MasterProcess,
        log_level          => $level,
        env_lines          => \@env,
        load_modules       => \@modules,
        main_config        => _expanded($ctx, 'main_config'),
        http_config        => _expanded($ctx, 'http_config'),
        preamble           => $ConfigPreamble,
        config             => _expanded($ctx, 'config'),
        server_name        => $server_name,
        port               => $ServerPort,
        no_root_location   => $NoRootLocation,
        post_main_config   => _expanded($ctx, 'post_main_config'),
        worker_connections => $WorkerConnections,
    );
}

# "--- user_files" as a list of [name, content, mtime].
sub _user_files {
    my ($ctx) = @_;
    my $files = _sec($ctx->{block}, 'user_files');
    return [] unless defined $files;
    if (ref $files eq 'ARRAY') {
        return [ map { [ $_->[0], _expand_env($ctx, $_->[1]), $_->[2] ] } @$files ];
    }
    bail_out("$ctx->{name} - --- user_files must be text or an array") if ref $files;

    my (@list, $cur);
    for my $line (split /^/m, _expand_env($ctx, $files)) {
        if ($line =~ /^>>> (\S+)(?:[ \t]+(\S.*?))?[ \t]*\r?$/) {
            $cur = [$1, '', $2];
            push @list, $cur;
        } elsif ($cur) {
            $cur->[1] .= $line;
        }
    }
    return \@list;
}

# ---------------------------------------------------------------------------
# $TEST_NGINX_* expansion

# A section's value with $TEST_NGINX_* variables expanded (cached per block).
sub _expanded {
    my ($ctx, $sec) = @_;
    return $ctx->{expanded}{$sec} if exists $ctx->{expanded}{$sec};
    return $ctx->{expanded}{$sec} = _expand_env($ctx, _sec($ctx->{block}, $sec));
}

sub _expand_env {
    my ($ctx, $text) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s/\$(TEST_NGINX_[_A-Z0-9]+)/_env_value($ctx, $1)/ge;
    return $text;
}

sub _env_value {
    my ($ctx, $var) = @_;
    if ($var =~ /^TEST_NGINX_RAND_PORT_(\d+)$/) {
        my $n = $1;
        unless (defined $ctx->{rand_ports}{$n}) {
            $ctx->{rand_ports}{$n} = _free_port($ctx->{rand_ports});
            $ENV{$var} = $ctx->{rand_ports}{$n};
        }
        return $ctx->{rand_ports}{$n};
    }
    return $ENV{$var} if defined $ENV{$var};
    bail_out("$ctx->{name} - No environment $var defined.\n");
}

# A random TCP port that is free right now on 127.0.0.1 and not in %$taken.
sub _free_port {
    my ($taken) = @_;
    my %used = map { $_ => 1 } values %$taken;
    $used{$_} = 1 for grep { defined } $ServerPort, $ServerPortForClient;
    for (1 .. 1000) {
        my $port = 10000 + int rand 50000;
        next if $used{$port};
        my $sock = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => $port,
            Proto => 'tcp', Listen => 1, ReuseAddr => 1) or next;
        close $sock;
        return $port;
    }
    die "cannot find a free TCP port\n";
}

# ---------------------------------------------------------------------------
# requests

# The list of exchanges for a block. Each element is a hashref:
#   packets => [...]   what to send (socket mode)
#   heads   => [...]   one HEAD flag per expected response
#   req     => {...}   the parsed request (curl mode)
#   curl    => 1       send with the curl binary
#   pipelined => 1     all the requests go out on one connection
sub _request_list {
    my ($ctx) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};
    my $more = _sec($block, 'more_headers');
    my $host = $ServerName;
    my @list;

    my $build = sub {
        my ($packets, $conn, $hdrs) = @_;
        my $req = Test::Nginx::Driver::Client::build_request(
            packets => $packets, more_headers => $hdrs,
            connection => $conn, host => $host);
        bail_out("$name - invalid request: $req->{error}") if $req->{error};
        return $req;
    };

    if (defined(my $raw = _sec($block, 'raw_request'))) {
        my @packets = ref $raw eq 'ARRAY'
            ? map { Test::Nginx::Driver::Client::packet($_) } @$raw
            : ({ value => $raw });
        my $all = join '', map { $_->{value} } @packets;
        push @list, { packets => \@packets, heads => [ $all =~ /^\s*HEAD\s/ ? 1 : 0 ] };

    } elsif (defined(my $pipe = _sec($block, 'pipelined_requests'))) {
        bail_out("$name - --- pipelined_requests must be an array (use eval)")
            unless ref $pipe eq 'ARRAY';
        my ($bytes, @heads) = ('');
        for my $i (0 .. $#$pipe) {
            my $hdrs = ref $more eq 'ARRAY' ? $more->[$i] : $more;
            my $conn = $i == $#$pipe ? 'close' : 'keep-alive';
            my $req = $build->([{ value => _expand_env($ctx, $pipe->[$i]) }], $conn, $hdrs);
            $bytes .= join '', map { $_->{value} } @{ $req->{packets} };
            push @heads, $req->{head};
        }
        push @list, { packets => [{ value => $bytes }], heads => \@heads, pipelined => 1 };

    } elsif (defined(my $request = _sec($block, 'request'))) {
        my $use_curl = grep { defined _sec($block, $_) }
                       qw(curl_protocol curl_options curl_error http2);
        my @reqs = ref $request eq 'ARRAY' ? @$request : ($request);
        bail_out("$name - invalid --- request value") if ref $request && ref $request ne 'ARRAY';
        for my $one (@reqs) {
            my @packets = ref $one eq 'ARRAY'
                ? map { Test::Nginx::Driver::Client::packet($_) } @$one
                : ({ value => $one });
            my $req = $build->(\@packets, 'close', ref $more eq 'ARRAY' ? $more->[0] : $more);
            push @list, { packets => $req->{packets}, heads => [ $req->{head} ],
                          req => $req, curl => $use_curl };
        }
    }
    return \@list;
}

sub _parse_time {
    my ($t) = @_;
    return undef unless defined $t && $t =~ /\S/;
    return $1 / 1000 if $t =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1 if $t =~ /^\s*([\d.]+)\s*s?\s*$/;
    return $t;
}

# Send a block's requests once (repetition $rep) and run all the checks.
sub _run_requests {
    my ($ctx, $rep) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};

    my $list = _request_list($ctx);
    unless (@$list) {
        Test::More::fail("$name - no --- request, --- raw_request or --- pipelined_requests section");
        return;
    }
    if (defined _sec($block, 'curl') && $list->[0]{req}) {
        my $cmd = Test::Nginx::Driver::Client::curl_command(
            req => $list->[0]{req}, scheme => 'http', addr => $ServerAddr,
            port => $ServerPortForClient);
        warn "# ", Test::Nginx::Driver::Client::shell_quote(@$cmd), "\n";
    }

    my $timeout = _parse_time(_sec($block, 'timeout'));
    $timeout = $Timeout unless defined $timeout;
    my $abort = defined _sec($block, 'abort');
    my $shutdown = _sec($block, 'shutdown');
    $shutdown = 1 if defined $shutdown && $shutdown !~ /^\s*\d+\s*$/;
    my $wait = _parse_time(_sec($block, 'wait'));
    my $gap = _parse_time(_sec($block, 'raw_request_middle_delay'));
    $gap = $TestNginxSleep unless defined $gap;

    my $total = List::Util::sum(map { scalar @{ $_->{heads} } } @$list);
    my $need_array = $total > 1 || $list->[0]{pipelined};
    my $idx = 0;

    for my $exchange (@$list) {
        my $out;
        if ($ctx->{dry_run}) {
            $out = { raw => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" };
        } elsif ($exchange->{curl}) {
            $out = _send_with_curl($ctx, $exchange->{req}, $timeout);
        } else {
            $out = Test::Nginx::Driver::Client::send_request(
                addr => $ServerAddr, port => $ServerPortForClient,
                packets => $exchange->{packets}, timeout => $timeout,
                gap => $gap, shutdown => $shutdown);
        }
        if ($out->{timed_out} && !$abort) {
            Test::More::fail("ERROR: client socket timed out - $name");
        }
        if ($out->{error} && $out->{error} =~ /^Can't connect/) {
            Test::More::fail("$name - $out->{error}");
        }

        my $raw = defined $out->{raw} ? $out->{raw} : '';
        my @heads = @{ $exchange->{heads} };
        for my $i (0 .. $#heads) {
            my $res;
            unless (defined _sec($block, 'ignore_response')) {
                if (defined _sec($block, 'http09')) {
                    $res = { code => 200, body => $raw, raw_headers => '',
                             headers => {}, left => '' };
                } else {
                    $res = Test::Nginx::Driver::Client::parse_response($raw, head => $heads[$i]);
                }
                # a broken chunked body is a failure of its own (a timeout
                # already was one, or was allowed by --- abort)
                if ($res->{error} && $res->{error} =~ /chunked/ && !$out->{timed_out}) {
                    Test::More::fail("$name - $res->{error}");
                }
                if ($res->{truncated} && !$heads[$i]) {
                    warn "WARNING: $name - response body truncated: $res->{truncated}\n";
                }
                if ($i < $#heads) {
                    $raw = $res->{left};
                } elsif ($res->{left} ne '' && !$out->{timed_out}) {
                    warn "WARNING: $name - unexpected extra bytes after the response: "
                        . _fmt(substr $res->{left}, 0, 200) . "\n";
                }
                _check_response($ctx, $res, $idx, $rep, $need_array);
            }
            if ($idx < $total - 1) {
                Time::HiRes::sleep($wait) if $wait;
                _check_logs($ctx, $rep);
            }
            $idx++;
        }
    }

    Time::HiRes::sleep($wait) if $wait;
    _check_logs($ctx, $rep);
}

sub _send_with_curl {
    my ($ctx, $req, $timeout) = @_;
    my $block = $ctx->{block};
    my $scheme = _sec($block, 'curl_protocol');
    $scheme = 'http' unless defined $scheme && $scheme ne '';
    my $out = Test::Nginx::Driver::Client::curl_request(
        req => $req, scheme => $scheme, addr => $ServerAddr,
        port => $ServerPortForClient, options => _sec($block, 'curl_options'),
        http2 => defined _sec($block, 'http2'), timeout => $timeout);

    # interim 1xx responses (e.g. 100 Continue) are not what is tested
    1 while $out->{raw} !~ m{\AHTTP/[\d.]+ 101\b}
        && $out->{raw} =~ s{\AHTTP/[\d.]+ 1\d\d\b[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n}{};

    my $expected = _sec($block, 'curl_error');
    if (defined $expected) {
        my $got = $out->{curl_error};
        if (ref $expected eq 'Regexp') {
            Test::More::like($got, $expected, "$ctx->{name} - curl error ok");
        } else {
            (my $want = $expected) =~ s/\s+\z//;
            Test::More::ok(index($got, $want) >= 0, "$ctx->{name} - curl error ok")
                or Test::More::diag("curl stderr: $got\nexpected: $want");
        }
    } elsif ($out->{exit_code}) {
        warn "WARNING: $ctx->{name} - curl failed: $out->{curl_error}";
    }
    return $out;
}

# ---------------------------------------------------------------------------
# response checks

# Run one assertion, or report it as skipped in dry-run mode (nginx lacks a
# directive and TEST_NGINX_IGNORE_MISSING_DIRECTIVES is set).
sub _assert {
    my ($ctx, $desc, $code) = @_;
    if ($ctx->{dry_run}) {
        Test::More->builder->skip("$desc - tests skipped due to $ctx->{dry_run}");
        return 1;
    }
    local $Test::Builder::Level = $Test::Builder::Level + 2;
    return $code->();
}

# The expectation for response $idx: arrays are indexed per response; a plain
# value is only allowed when there is a single response.
sub _indexed {
    my ($ctx, $sec, $value, $idx, $need_array) = @_;
    if (ref $value eq 'ARRAY') {
        return $value->[$need_array ? $idx : 0];
    }
    if ($need_array) {
        bail_out("$ctx->{name} - several requests were sent, so --- $sec must be an array");
    }
    return $value;
}

sub _subst_port {
    my ($text) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
    $text =~ s/\$ServerPort\b/$ServerPort/g;
    return $text;
}

sub _check_response {
    my ($ctx, $res, $idx, $rep, $need_array) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};
    my $code = defined $res->{code} ? $res->{code} : '';

    # status code
    if (defined(my $like = _sec($block, 'error_code_like'))) {
        my $pat = _indexed($ctx, 'error_code_like', $like, $idx, $need_array);
        _assert($ctx, "$name - status code ok", sub {
            Test::More::like($code, qr/$pat/sm, "$name - status code ok") });
    } else {
        my $want = _sec($block, 'error_code');
        $want = defined $want ? _indexed($ctx, 'error_code', $want, $idx, $need_array) : 200;
        _assert($ctx, "$name - status code ok", sub {
            Test::More::is($code, $want, "$name - status code ok") });
    }

    # raw header block
    for my $which (['raw_response_headers_like', 1], ['raw_response_headers_unlike', 0]) {
        my ($sec, $positive) = @$which;
        my $pat = _sec($block, $sec);
        next unless defined $pat;
        $pat = _indexed($ctx, $sec, $pat, $idx, $need_array);
        my $desc = "$name - raw resp headers " . ($positive ? 'like' : 'unlike');
        _assert($ctx, $desc, sub {
            $positive ? Test::More::like($res->{raw_headers}, qr/$pat/s, $desc)
                      : Test::More::unlike($res->{raw_headers}, qr/$pat/s, $desc) });
    }

    # headers
    if (defined(my $spec = _sec($block, 'response_headers'))) {
        $spec = _indexed($ctx, 'response_headers', $spec, $idx, $need_array);
        for my $h (_parse_header_spec($spec)) {
            my ($key, $val) = @$h;
            if (!defined $val) {
                my $desc = "$name - header $key not present in the raw headers";
                _assert($ctx, $desc, sub {
                    Test::More::unlike($res->{raw_headers}, qr/^\s*\Q$key\E\s*:/msi, $desc) });
                next;
            }
            my $got = $res->{headers}{lc $key};
            $got = '' unless defined $got;
            my $desc = "$name - header $key ok";
            _assert($ctx, $desc, sub { Test::More::is($got, _subst_port($val), $desc) });
        }
    } elsif (defined(my $like = _sec($block, 'response_headers_like'))) {
        $like = _indexed($ctx, 'response_headers_like', $like, $idx, $need_array);
        for my $h (_parse_header_spec($like)) {
            my ($key, $pat) = @$h;
            $pat = '' unless defined $pat;
            $pat = _subst_port($pat);
            my $got = $res->{headers}{lc $key};
            $got = '' unless defined $got;
            my $desc = "$name - header $key like ok";
            _assert($ctx, $desc, sub { Test::More::like($got, qr/^$pat$/, $desc) });
        }
    }

    # body
    my $body = _filter_body($ctx, $res->{body});
    if (exists $block->{response_body}) {
        my $want = _sec($block, 'response_body');
        $want = _expand_env($ctx, $want) unless ref $want;
        $want = _subst_port(_indexed($ctx, 'response_body', $want, $idx, $need_array));
        if (ref $want) {
            my $desc = "$name - response_body - like (req $rep)";
            _assert($ctx, $desc, sub { Test::More::like($body, $want, $desc) });
        } else {
            my $desc = "$name - response_body - response is expected (req $rep)";
            _assert($ctx, $desc, sub { is_str($body, $want, $desc) });
        }
    } elsif (defined(my $pat = _sec($block, 'response_body_like') // _sec($block, 'response_body_unlike'))) {
        my $type = defined _sec($block, 'response_body_like') ? 'like' : 'unlike';
        $pat = _subst_port(_indexed($ctx, "response_body_$type", $pat, $idx, $need_array));
        my $summary = defined $body ? $body : '';
        $summary =~ s/^\s+|\s+$//g;
        $summary =~ s/\s+/ /g;
        $summary = substr($summary, 0, 60) . '...' if length $summary > 63;
        my $desc = "$name - response_body_$type - response is expected ($summary)";
        _assert($ctx, $desc, sub {
            $type eq 'like' ? Test::More::like($body, qr/$pat/s, $desc)
                            : Test::More::unlike($body, qr/$pat/s, $desc) });
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $body, $idx, $rep, $ctx->{dry_run});
    }
}

# "Name: value" lines of response_headers(_like); "!Name" gives [Name, undef].
sub _parse_header_spec {
    my ($spec) = @_;
    my @out;
    for my $line (split /\n/, defined $spec ? $spec : '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            push @out, [$line, undef];
            next;
        }
        my ($key, $val) = split /\s*:\s*/, $line, 2;
        push @out, [$key, defined $val ? $val : ''];
    }
    return @out;
}

# Apply "--- response_body_filters" (names or coderefs) to a body.
sub _filter_body {
    my ($ctx, $body) = @_;
    my $filters = _sec($ctx->{block}, 'response_body_filters');
    return $body unless defined $filters && defined $body;
    my %named = (
        uc       => sub { uc $_[0] },
        lc       => sub { lc $_[0] },
        length   => sub { length $_[0] },
        md5_hex  => sub { require Digest::MD5; Digest::MD5::md5_hex($_[0]) },
        sha1_hex => sub { require Digest::SHA; Digest::SHA::sha1_hex($_[0]) },
    );
    for my $f (ref $filters eq 'ARRAY' ? @$filters : split ' ', $filters) {
        if (ref $f eq 'CODE') {
            $body = $f->($body);
        } elsif ($named{$f}) {
            $body = $named{$f}->($body);
        } else {
            bail_out("$ctx->{name} - unknown response body filter \"$f\"");
        }
    }
    return $body;
}

# ---------------------------------------------------------------------------
# log checks

# Check error.log (and access.log) lines written since the previous check.
# Option lines => [...] gives the lines to look at (must_die).
sub _check_logs {
    my ($ctx, $rep, %opt) = @_;
    my $block = $ctx->{block};
    my $name = $ctx->{name};

    my $lines = $opt{lines};
    unless ($lines) {
        if ($ctx->{dry_run}) {
            $lines = [];
        } else {
            Time::HiRes::sleep($TestNginxSleep * 3);
            $lines = $Server->new_log_lines('error', accum => $CheckAccumErrLog);
        }
    }

    # grep_error_log + grep_error_log_out
    my $grep = _sec($block, 'grep_error_log');
    $grep = $grep->[$rep] if ref $grep eq 'ARRAY';
    if (defined $grep) {
        my $want = _sec($block, 'grep_error_log_out');
        bail_out("$name - --- grep_error_log needs --- grep_error_log_out") unless defined $want;
        $want = $want->[$rep] if ref $want eq 'ARRAY';
        $want = _expand_env($ctx, $want);
        my $got = '';
        for my $line (@$lines) {
            my $m = ref $grep ? ($line =~ $grep ? $& : undef)
                              : (index($line, $grep) >= 0 ? $grep : undef);
            $got .= "$m\n" if defined $m && $m !~ /\n/;
        }
        my $desc = "$name - grep_error_log_out (req $rep)";
        _assert($ctx, $desc, sub { is_str($got, $want, $desc) });
    }

    my $want   = _sec($block, 'error_log');
    my $forbid = _sec($block, 'no_error_log');
    _match_patterns($ctx, $lines, $want, 1, 'error.log', "(req $rep)") if defined $want;
    _match_patterns($ctx, $lines, $forbid, 0, 'error.log', "(req $rep)") if defined $forbid;

    my $acc_want   = _sec($block, 'access_log');
    my $acc_forbid = _sec($block, 'no_access_log');
    if ((defined $acc_want || defined $acc_forbid) && !$opt{lines}) {
        my $acc = $ctx->{dry_run} ? []
                : $Server->new_log_lines('access', accum => $CheckAccumErrLog);
        _match_patterns($ctx, $acc, $acc_want, 1, 'access.log', "(req $rep)") if defined $acc_want;
        _match_patterns($ctx, $acc, $acc_forbid, 0, 'access.log', "(req $rep)") if defined $acc_forbid;
    }

    return if $ctx->{dry_run};

    # serious messages nobody asked about only produce warnings (an [emerg]
    # is what a must_die block expects)
    for my $level (qw(alert crit emerg)) {
        next if grep { defined $_ && _mentions($_, "[$level") } $want, $forbid;
        next if $level eq 'emerg' && defined _sec($block, 'must_die');
        for my $line (grep { /\[$level\]/ } @$lines) {
            warn "WARNING: $name - " . _fmt($line) . "\n";
        }
    }
    for my $line (grep { /\bAssertion .*? failed\.$/ } @$lines) {
        Test::More::fail("$name - " . _fmt($line));
    }
}

# Does a pattern value (text, regex or array of both) mention $needle?
sub _mentions {
    my ($val, $needle) = @_;
    return index("$val", $needle) >= 0 unless ref $val eq 'ARRAY';
    return grep { _mentions($_, $needle) } @$val;
}

# The patterns of an error_log-like section: every line of a text value is a
# literal pattern; an eval value can be a regex or an array of both kinds.
sub _patterns {
    my ($val) = @_;
    return ($val) if ref $val eq 'Regexp';
    return grep { defined } @$val if ref $val eq 'ARRAY';
    (my $text = $val) =~ s/\n\z//;
    return grep { $_ ne '' } split /\n+/, $text;
}

# One TAP test per pattern: with $positive each must match some line,
# otherwise none may match any line.
sub _match_patterns {
    my ($ctx, $lines, $val, $positive, $file, $suffix) = @_;
    my $name = $ctx->{name};
    for my $pat (_patterns($val)) {
        my ($hit) = grep {
            ref $pat ? $_ =~ $pat : index($_, $pat) >= 0
        } @$lines;
        my $p = _fmt("$pat");
        if ($positive) {
            my $desc = "$name - pattern \"$p\" matches a line in $file $suffix";
            _assert($ctx, $desc, sub { Test::More::ok(defined $hit, $desc) });
        } elsif (defined $hit) {
            my $desc = "$name - pattern \"$p\" should not match any line in $file but matches line \""
                . _fmt($hit) . "\" $suffix";
            _assert($ctx, $desc, sub { Test::More::ok(0, $desc) });
        } else {
            my $desc = "$name - pattern \"$p\" does not match a line in $file $suffix";
            _assert($ctx, $desc, sub { Test::More::ok(1, $desc) });
        }
    }
}

# ---------------------------------------------------------------------------
# helpers

# The first value of a section, or undef when the block does not have it.
sub _sec {
    my ($block, $name) = @_;
    my $v = $block->{$name};
    return ref $v eq 'ARRAY' ? $v->[0] : undef;
}

# One-line printable form of a string.
sub _fmt {
    my ($s) = @_;
    $s = '' unless defined $s;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub _find_nginx {
    for my $dir (split /:/, $ENV{PATH} || '') {
        next unless length $dir;
        return "$dir/nginx" if -f "$dir/nginx" && -x _;
    }
    return '/usr/sbin/nginx';
}

1;
