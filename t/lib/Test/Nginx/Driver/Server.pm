package Test::Nginx::Driver::Server;

# One nginx instance driven by the bundled Test::Nginx::Socket:
#
#   * lays out the server root (conf/, html/, logs/, *_temp/),
#   * renders nginx.conf in the order the real Test::Nginx uses,
#   * starts nginx as a daemon and waits until it is ready,
#   * stops it (SIGQUIT, then SIGKILL after a grace period),
#   * hands out the log lines written since the previous look.
#
# Nothing in here emits TAP; errors are reported through return values so that
# the caller decides what is a test failure.

use strict;
use warnings;

use File::Path ();
use File::Temp ();
use POSIX ();
use Time::HiRes ();
use Time::Local ();

# Directories nginx needs for its temporary files; they are all made
# world-writable so that workers running as "nobody" (master_on as root) can
# use them.
my @TEMP_DIRS = qw(client_body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp);

# How often (seconds) we poll for a state change.
my $POLL = 0.01;

sub new {
    my ($class, %args) = @_;
    my $self = bless {
        binary   => $args{binary},
        servroot => $args{servroot},
        port     => $args{port},
        pid      => undef,   # pid of the nginx master (or single) process
        log_pos  => {},      # log name => byte offset already looked at
    }, $class;
    return $self;
}

sub servroot        { $_[0]{servroot} }
sub html_dir        { "$_[0]{servroot}/html" }
sub conf_dir        { "$_[0]{servroot}/conf" }
sub conf_file       { "$_[0]{servroot}/conf/nginx.conf" }
sub log_dir         { "$_[0]{servroot}/logs" }
sub error_log_file  { "$_[0]{servroot}/logs/error.log" }
sub access_log_file { "$_[0]{servroot}/logs/access.log" }
sub pid_file        { "$_[0]{servroot}/logs/nginx.pid" }

sub set_port { $_[0]{port} = $_[1] }

# ---------------------------------------------------------------------------
# server root

# Wipe and recreate the server root. Returns an error message or undef.
sub setup_root {
    my ($self) = @_;
    my $root = $self->{servroot};

    if (-d $root) {
        # Refuse to wipe a directory that does not look like a server root,
        # so that a mistyped TEST_NGINX_SERVROOT cannot destroy real data.
        opendir my $dh, $root or return "cannot open $root: $!";
        my @entries = grep { $_ ne '.' && $_ ne '..' } readdir $dh;
        closedir $dh;
        my $ours = $root =~ m{/servroot[^/]*/?$}
            || grep { -d "$root/$_" } qw(conf logs html), @TEMP_DIRS;
        if (@entries && !$ours) {
            return "refusing to wipe $root: it does not look like a server root";
        }
        File::Path::remove_tree($root, { error => \my $err });
        if ($err && @$err) {
            my ($file, $msg) = %{ $err->[0] };
            return "cannot remove $file: $msg";
        }
    }

    for my $dir ($root, map { "$root/$_" } qw(conf html logs)) {
        File::Path::make_path($dir, { error => \my $err });
        return "cannot create $dir" if $err && @$err;
        chmod 0755, $dir;
    }
    for my $dir (map { "$root/$_" } @TEMP_DIRS) {
        mkdir $dir or return "cannot create $dir: $!";
        chmod 0777, $dir;
    }

    my $index = "$root/html/index.html";
    open my $out, '>', $index or return "cannot write $index: $!";
    print $out '<html><head><title>It works!</title></head>'
        . '<body>It works!</body></html>';
    close $out;

    $self->{log_pos} = {};
    return undef;
}

# Write user files. $files is an arrayref of [name, content, mtime?]; names
# are relative to html/ unless absolute; mtime is in `touch -t` format
# ([[CC]YY]MMDDhhmm[.ss], GMT) or a plain epoch given as "@1234567890".
# Returns an error message or undef.
sub write_user_files {
    my ($self, $files) = @_;
    for my $file (@$files) {
        my ($name, $content, $mtime) = @$file;
        $content = '' unless defined $content;
        my $path = $name =~ m{^/} ? $name : $self->html_dir . "/$name";
        if ($path =~ m{^(.*)/[^/]+$} && !-d $1) {
            File::Path::make_path($1, { error => \my $err, mode => 0755 });
            return "cannot create directory $1" if $err && @$err;
        }
        open my $out, '>', $path or return "cannot write $path: $!";
        binmode $out;
        print $out $content;
        close $out;
        if (defined $mtime && $mtime ne '') {
            my $epoch = parse_touch_time($mtime);
            return "bad mtime \"$mtime\" for $name" unless defined $epoch;
            utime $epoch, $epoch, $path or return "cannot set mtime of $path: $!";
        }
    }
    return undef;
}

# Convert a `touch -t` style time stamp (GMT) to an epoch value.
sub parse_touch_time {
    my ($stamp) = @_;
    return $1 if $stamp =~ /^\@(\d+)$/;
    my ($digits, $sec) = $stamp =~ /^(\d{8}|\d{10}|\d{12})(?:\.(\d\d))?$/
        or return undef;
    $sec = 0 unless defined $sec;
    my ($year, $rest);
    if (length $digits == 12) {
        ($year, $rest) = (substr($digits, 0, 4), substr($digits, 4));
    } elsif (length $digits == 10) {
        my $yy = substr($digits, 0, 2);
        $year = $yy < 69 ? 2000 + $yy : 1900 + $yy;
        $rest = substr($digits, 2);
    } else {
        $year = (gmtime)[5] + 1900;
        $rest = $digits;
    }
    my ($mon, $day, $hour, $min) = $rest =~ /^(\d\d)(\d\d)(\d\d)(\d\d)$/;
    my $epoch = eval { Time::Local::timegm($sec, $min, $hour, $day, $mon - 1, $year) };
    return $epoch;
}

sub write_conf {
    my ($self, $text) = @_;
    my $file = $self->conf_file;
    open my $out, '>', $file or return "cannot write $file: $!";
    print $out $text;
    close $out;
    return undef;
}

# ---------------------------------------------------------------------------
# nginx.conf

# Render the configuration file. Parameters (all optional except servroot-
# derived paths, which come from $self):
#   workers, master (on|off), log_level, env_lines (arrayref of directives),
#   load_modules (arrayref of paths), main_config, http_config, preamble,
#   config, server_name, port, no_root_location, post_main_config,
#   worker_connections
sub render_conf {
    my ($self, %p) = @_;
    my $root = $self->{servroot};
    my $text = sub { defined $_[0] ? $_[0] : '' };

    my $server_name = defined $p{server_name} ? $p{server_name} : 'localhost';
    (my $quoted_name = $server_name) =~ s/(['\\])/\\$1/g;

    my $conf = '';
    $conf .= "worker_processes  $p{workers};\n";
    $conf .= "daemon on;\n";
    $conf .= "master_process $p{master};\n";
    $conf .= "error_log $root/logs/error.log $p{log_level};\n";
    $conf .= "pid       $root/logs/nginx.pid;\n";
    $conf .= "$_\n" for @{ $p{env_lines} || [] };
    $conf .= "\n";
    $conf .= "load_module $_;\n" for @{ $p{load_modules} || [] };
    $conf .= $text->($p{main_config}) . "\n";

    $conf .= "http {\n";
    $conf .= "    access_log $root/logs/access.log;\n";
    $conf .= "    ${_}_path $root/$_;\n" for @TEMP_DIRS;
    $conf .= "    default_type text/plain;\n";
    $conf .= "    keepalive_timeout  68000ms;\n";
    $conf .= "\n" . $text->($p{http_config}) . "\n";
    $conf .= "    server {\n";
    $conf .= "        listen          $p{port};\n";
    $conf .= "        server_name     '$quoted_name';\n";
    $conf .= "\n        client_max_body_size 30M;\n";
    if (defined $p{preamble} && $p{preamble} ne '') {
        $conf .= "\n        # preamble\n$p{preamble}\n";
    }
    $conf .= "\n        # Begin test case config...\n";
    $conf .= $text->($p{config});
    $conf .= "\n        # End test case config.\n\n";
    unless ($p{no_root_location}) {
        $conf .= "        location / {\n";
        $conf .= "            root $root/html;\n";
        $conf .= "            index index.html index.htm;\n";
        $conf .= "        }\n";
    }
    $conf .= "    }\n";
    $conf .= "}\n\n";

    my $post = $text->($p{post_main_config});
    $conf .= "$post\n\n";

    # A test that brings its own events block must not get a second one.
    my $own_events = $text->($p{main_config}) . "\n" . $post;
    unless ($own_events =~ /^\s*events\s*\{/m) {
        $conf .= "events {\n";
        $conf .= "    accept_mutex off;\n";
        $conf .= "    worker_connections  $p{worker_connections};\n";
        $conf .= "}\n";
    }
    return $conf;
}

# ---------------------------------------------------------------------------
# processes

# Is $pid a live process? A zombie counts as dead: once nginx is killed it may
# be reparented to a PID 1 that never reaps it.
sub process_alive {
    my ($pid) = @_;
    return 0 unless $pid && $pid =~ /^\d+$/;
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh>;
        close $fh;
        return 0 if defined $stat && $stat =~ /\)\s+Z\s/;
    }
    return 1;
}

# Direct children of $pid (the nginx workers of a master), found via /proc.
sub child_pids {
    my ($pid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return;
    for my $ent (readdir $dh) {
        next unless $ent =~ /^\d+$/;
        open my $fh, '<', "/proc/$ent/stat" or next;
        my $stat = <$fh>;
        close $fh;
        next unless defined $stat && $stat =~ /\)\s+\S\s+(\d+)/;
        push @kids, $ent if $1 == $pid;
    }
    closedir $dh;
    return @kids;
}

sub read_pid_file {
    my ($self) = @_;
    open my $fh, '<', $self->pid_file or return undef;
    my $pid = <$fh>;
    close $fh;
    return undef unless defined $pid && $pid =~ /^\s*(\d+)\s*$/;
    return $1;
}

sub pid { $_[0]{pid} }

sub is_running {
    my ($self) = @_;
    return $self->{pid} && process_alive($self->{pid});
}

# Is something listening on 127.0.0.1/0.0.0.0/[::] port $port? Reads
# /proc/net/tcp* so that no connection is made (a probe connection would show
# up in the error log). Returns undef when /proc is not available.
sub port_listening {
    my ($port) = @_;
    my $found;
    for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $file or next;
        $found ||= 0;
        while (my $line = <$fh>) {
            my ($local, $state) = (split ' ', $line)[1, 3];
            next unless defined $state && $state eq '0A';   # TCP_LISTEN
            next unless $local =~ /:([0-9A-Fa-f]+)$/;
            if (hex($1) == $port) {
                $found = 1;
                last;
            }
        }
        close $fh;
        last if $found;
    }
    return $found;
}

# Start nginx. Returns a hashref:
#   ok        => 1 when nginx is up and ready
#   exit_code => exit status of the launcher (undef if it could not run)
#   signal    => terminating signal of the launcher, if any
#   stderr    => what nginx printed on stderr while starting
#   error     => human-readable reason when not ok
sub start {
    my ($self, %opt) = @_;
    my $ready_timeout = $opt{ready_timeout} || 5;

    my ($err_fh, $err_file) = File::Temp::tempfile('nginx-stderr-XXXXXX',
                                                   TMPDIR => 1, UNLINK => 1);
    my $launcher = fork;
    if (!defined $launcher) {
        return { ok => 0, error => "fork failed: $!", stderr => '' };
    }
    if ($launcher == 0) {
        # child: become nginx
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>&', $err_fh;
        { no warnings 'exec'; exec $self->{binary}, '-p', "$self->{servroot}/", '-c', $self->conf_file; }
        print STDERR "cannot exec $self->{binary}: $!\n";
        POSIX::_exit(127);
    }
    close $err_fh;

    # With "daemon on" the launcher exits as soon as nginx has forked.
    my $status;
    my $deadline = Time::HiRes::time() + 30;
    while (1) {
        my $r = waitpid($launcher, POSIX::WNOHANG());
        if ($r == $launcher) { $status = $?; last }
        if ($r < 0) { $status = 0; last }
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $launcher;
            waitpid($launcher, 0);
            $status = -1;
            last;
        }
        Time::HiRes::sleep($POLL);
    }

    my $stderr = '';
    if (open my $in, '<', $err_file) {
        local $/;
        $stderr = <$in>;
        $stderr = '' unless defined $stderr;
        close $in;
    }
    unlink $err_file;

    my %res = (stderr => $stderr);
    if ($status != 0) {
        $res{ok} = 0;
        if ($status == -1) {
            $res{error} = 'nginx did not daemonize within 30 seconds';
        } else {
            $res{exit_code} = $status >> 8;
            $res{signal}    = $status & 127;
            $res{error}     = "nginx exited with status $res{exit_code}"
                . ($res{signal} ? " (signal $res{signal})" : '');
        }
        return \%res;
    }
    $res{exit_code} = 0;

    # Wait for the pid file (written by the daemon after the fork) and for the
    # listening socket.
    $deadline = Time::HiRes::time() + $ready_timeout;
    my $pid;
    while (1) {
        $pid = $self->read_pid_file;
        if ($pid && process_alive($pid)) {
            my $listening = defined $self->{port} ? port_listening($self->{port}) : 1;
            last if !defined $listening || $listening;
        }
        if (Time::HiRes::time() > $deadline) {
            $res{ok} = 0;
            $res{error} = $pid && process_alive($pid)
                ? "nginx (pid $pid) is not listening on port $self->{port}"
                : 'nginx did not come up (no live pid in ' . $self->pid_file . ')';
            $self->{pid} = $pid if $pid && process_alive($pid);
            return \%res;
        }
        Time::HiRes::sleep($POLL);
    }
    $self->{pid} = $pid;
    $self->{log_pos} = {};
    $res{ok} = 1;
    return \%res;
}

# Stop nginx gracefully (SIGQUIT); SIGKILL it and its workers if it is still
# there after $opt{grace} seconds (default 3).
sub stop {
    my ($self, %opt) = @_;
    my $grace = defined $opt{grace} ? $opt{grace} : 3;
    my $pid = $self->{pid};
    undef $self->{pid};
    return unless $pid && process_alive($pid);

    my @workers = child_pids($pid);
    kill 'QUIT', $pid;
    return if _wait_gone($grace, $pid);

    warn "WARNING: nginx (pid $pid) did not quit within ${grace}s, killing it\n";
    @workers = (@workers, child_pids($pid));
    kill 'KILL', $pid, @workers;
    _wait_gone(2, $pid, @workers);
    return;
}

# Stop a stale nginx left behind in this server root by an earlier run (its
# pid file is still there and the process looks like nginx).
sub stop_stale {
    my ($self) = @_;
    my $pid = $self->read_pid_file;
    return unless $pid && process_alive($pid);
    my $cmdline = '';
    if (open my $fh, '<', "/proc/$pid/cmdline") {
        local $/;
        $cmdline = <$fh> // '';
        close $fh;
    }
    return unless $cmdline =~ /nginx/;
    $self->{pid} = $pid;
    $self->stop(grace => 1);
}

sub _wait_gone {
    my ($timeout, @pids) = @_;
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        @pids = grep { process_alive($_) } @pids;
        return 1 unless @pids;
        return 0 if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep($POLL);
    }
}

# ---------------------------------------------------------------------------
# logs

# Lines of logs/<which>.log (which = 'error' or 'access') written since the
# previous call. With accum => 1 the whole file is returned and the position
# is left alone.
sub new_log_lines {
    my ($self, $which, %opt) = @_;
    my $file = $which eq 'access' ? $self->access_log_file : $self->error_log_file;
    open my $in, '<', $file or return [];
    my $pos = $opt{accum} ? 0 : ($self->{log_pos}{$which} || 0);
    # the file may have been recreated (new server root): start over then
    $pos = 0 if $pos > -s $in;
    seek $in, $pos, 0;
    my @lines = <$in>;
    $self->{log_pos}{$which} = tell $in unless $opt{accum};
    close $in;
    return \@lines;
}

# Forget the read positions: the next look starts at the top of the logs.
sub reset_log_pos {
    my ($self) = @_;
    $self->{log_pos} = {};
}

1;
