package t::NutriPro;

# Helpers for the suite's .t files, usable under the bundled driver and
# under the real Test::Nginx alike: nothing here depends on either.
#
#   use Test::Nginx::Socket 'no_plan';
#   use t::NutriPro;
#
# The Makefile exports TEST_NGINX_MODULES, TEST_NGINX_PKI, TEST_NGINX_PG_DIR,
# TEST_NGINX_PG_PORT; the defaults below let a file run by hand with prove.

use strict;
use warnings;

use Cwd qw(getcwd);
use Time::HiRes qw(time sleep);
use Exporter 'import';
use Digest::SHA qw(hmac_sha1);
use JSON::PP ();
use POSIX ();

our @EXPORT = qw(psql pg_ctl concurrent_get concurrent_raw curl_get timed_get
                 cert_fingerprint gateway_fixture totp cp_operator http_req
                 cp_login unique_name json_dec silent_pg);

my $top = getcwd();

$ENV{TEST_NGINX_BINARY}  ||= '/usr/sbin/nginx';
$ENV{TEST_NGINX_TOP}     ||= $top;
$ENV{TEST_NGINX_MODULES} ||= "$top/build/modules";
$ENV{TEST_NGINX_PKI}     ||= "$top/build/pki";
$ENV{TEST_NGINX_PG_DIR}  ||= "$top/build/pg";
$ENV{TEST_NGINX_PG_PORT} ||= 15432;
$ENV{TEST_NGINX_PG_SOCKET} ||=
    "$ENV{TEST_NGINX_PG_DIR}/.s.PGSQL.$ENV{TEST_NGINX_PG_PORT}";

# runs SQL as the superuser in the nutripro database; returns the rows
# as "a|b" lines (psql -tA); dies when psql fails
sub psql {
    my ($sql, %opt) = @_;
    my $db = $opt{db} || 'nutripro';
    my $user = $opt{user} || 'postgres';

    open my $fh, '-|', 'psql', '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1',
        '-h', $ENV{TEST_NGINX_PG_DIR}, '-p', $ENV{TEST_NGINX_PG_PORT},
        '-U', $user, '-d', $db, '-c', $sql
        or die "psql: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    die "psql failed ($?): $sql\n" if $? != 0 && !$opt{may_fail};
    $out =~ s/\s+\z//;
    return $out;
}

my @silent_pg;
END { kill 'KILL', @silent_pg if @silent_pg }

# A server that speaks just enough of PostgreSQL's protocol to take a
# connection (AuthenticationOk, ReadyForQuery), answers the first ANSWERS
# simple queries of each connection (0 unless given) as if they were a
# LISTEN, and then never answers again: a hung database.  Returns its port;
# it lives as long as the test file.
sub silent_pg {
    my %opt = @_;
    my $answers = $opt{answers} || 0;
    require IO::Socket::INET;
    require IO::Select;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 16, ReuseAddr => 1) or die "listen: $!";
    my $parent = $$;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $sel = IO::Select->new($l);
        my %st;   # per connection: input buffer, started, queries answered
        while (kill 0, $parent) {
            for my $c ($sel->can_read(1)) {
                if ($c == $l) {
                    my $n = $l->accept or next;
                    $sel->add($n);
                    $st{$n} = { buf => '', started => 0, answered => 0 };
                    next;
                }
                my $s = $st{$c};
                if (!sysread($c, $s->{buf}, 65536, length $s->{buf})) {
                    $sel->remove($c);
                    delete $st{$c};
                    close $c;
                    next;
                }
                while (1) {
                    if (!$s->{started}) {
                        last if length $s->{buf} < 4;
                        my $len = unpack('N', $s->{buf});
                        last if length $s->{buf} < $len;
                        substr($s->{buf}, 0, $len, '');
                        $s->{started} = 1;
                        syswrite($c, 'R' . pack('NN', 8, 0) . 'Z' . pack('N', 5) . 'I');
                        next;
                    }
                    last if length $s->{buf} < 5;
                    my ($type, $len) = unpack('aN', $s->{buf});
                    last if length $s->{buf} < $len + 1;
                    substr($s->{buf}, 0, $len + 1, '');
                    if ($type eq 'Q' && $s->{answered} < $answers) {
                        $s->{answered}++;
                        syswrite($c, 'C' . pack('N', 11) . "LISTEN\0"
                                     . 'Z' . pack('N', 5) . 'I');
                    }
                }
            }
        }
        POSIX::_exit(0);
    }
    my $port = $l->sockport;
    close $l;
    push @silent_pg, $pid;
    return $port;
}

# pg_ctl('stop') / pg_ctl('start'): the project's cluster
sub pg_ctl {
    my $cmd = shift;
    system("$ENV{TEST_NGINX_TOP}/scripts/pg.sh $cmd >/dev/null") == 0
        or die "pg.sh $cmd failed";
}

# one GET with curl; returns (status, body, seconds)
sub curl_get {
    my ($url, @opts) = @_;
    my $t0 = time;
    open my $fh, '-|', 'curl', '-s', '-m', '10', @opts,
        '-w', '\n%{http_code}', $url
        or die "curl: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my ($body, $status) = $out =~ /\A(.*)\n(\d+)\z/s;
    return ($status // 0, $body // '', time - $t0);
}

sub timed_get { my @r = curl_get(@_); return $r[2] }

# n parallel GETs (curl --parallel); returns { status => count }; a request
# that did not finish within max_time seconds counts as status "000"
sub concurrent_get {
    my ($url, $n, %opt) = @_;
    my $max = $opt{max_time} || 10;
    my $cfg = "/tmp/nutripro-curl-$$.cfg";
    open my $c, '>', $cfg or die "$cfg: $!";
    for (1 .. $n) {
        print $c "url = \"$url\"\noutput = \"/dev/null\"\n",
                 "write-out = \"%{http_code}\\n\"\n";
    }
    close $c;
    open my $fh, '-|', 'curl', '-s', '--no-progress-meter', '--parallel',
        '--parallel-immediate', '--parallel-max', $n, '-m', $max, '-K', $cfg
        or die "curl: $!";
    my %count;
    while (my $line = <$fh>) {
        chomp $line;
        $count{$line}++;
    }
    close $fh;
    unlink $cfg;
    return \%count;
}

# lower-case hex SHA-256 of a dev PKI certificate
sub cert_fingerprint {
    my $name = shift;
    my $out = `openssl x509 -in $ENV{TEST_NGINX_PKI}/$name.crt -noout -fingerprint -sha256`;
    $out =~ s/.*=//s;
    $out =~ s/[:\s]//g;
    return lc $out;
}

sub cert_dates {
    my $name = shift;
    my $out = `openssl x509 -in $ENV{TEST_NGINX_PKI}/$name.crt -noout -startdate -enddate`;
    my ($nb) = $out =~ /notBefore=(.+)/;
    my ($na) = $out =~ /notAfter=(.+)/;
    return ($nb, $na);
}

# The gateway tests' tenants, reset to a known state:
#   tenant-a  plan "standard", certificates tenant-a and (expired) tenant-expired
#   tenant-b  plan "test-limited" (route samples.list only), certificate tenant-b
#   tenant-c  certificate not registered
sub gateway_fixture {
    my @certs = map { cert_fingerprint($_) } qw(tenant-a tenant-b tenant-c tenant-expired);
    my $list = join ',', map { "decode('$_', 'hex')" } @certs;
    my $sql = <<SQL;
DELETE FROM tenant_certificates WHERE fingerprint_sha256 IN ($list);
INSERT INTO plans (name, description, rate_per_sec, burst, monthly_quota, routes)
VALUES ('test-limited', 'tests: listing only', 50, 100, NULL, '{samples.list}')
ON CONFLICT (name) DO UPDATE SET routes = EXCLUDED.routes;
INSERT INTO tenants (slug, name, plan_id)
SELECT s, n, (SELECT id FROM plans WHERE name = p)
FROM (VALUES ('tenant-a', 'Tenant A Meal Planner', 'standard'),
             ('tenant-b', 'Tenant B Meal Planner', 'test-limited')) v(s, n, p)
ON CONFLICT (slug) DO UPDATE SET status = 'active', plan_id = EXCLUDED.plan_id,
    deleted_at = NULL;
SQL
    for my $c (['tenant-a', 'tenant-a'], ['tenant-b', 'tenant-b'],
               ['tenant-a', 'tenant-expired']) {
        my ($tenant, $cert) = @$c;
        my $fp = cert_fingerprint($cert);
        my ($nb, $na) = cert_dates($cert);
        $sql .= "INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, "
              . "subject, serial, not_before, not_after) SELECT id, "
              . "decode('$fp', 'hex'), 'CN=$cert', '01', '$nb', '$na' "
              . "FROM tenants WHERE slug = '$tenant';\n";
    }
    psql($sql);
    return psql("SELECT id FROM tenants WHERE slug = 'tenant-a'");
}

sub json_dec {
    my $text = shift;
    my $v = eval { JSON::PP->new->decode($text) };
    return $v;
}

# a name no earlier run used: tests never collide with leftovers
sub unique_name {
    my $prefix = shift;
    return sprintf "%s-%d-%04x", $prefix, time, int(rand(65536));
}

sub base32_decode {
    my $s = uc shift;
    my $bits = join '', map {
        sprintf '%05b', index('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', $_)
    } split //, $s;
    $bits = substr($bits, 0, int(length($bits) / 8) * 8);
    return pack 'B*', $bits;
}

# RFC 6238: HMAC-SHA1, 30-second steps, 6 digits
sub totp {
    my ($secret32, $t) = @_;
    my $step = int(($t // time) / 30);
    my $mac = hmac_sha1(pack('NN', int($step / 2**32), $step % 2**32),
                        base32_decode($secret32));
    my $off = ord(substr($mac, -1)) & 0x0f;
    my $bin = unpack('N', substr($mac, $off, 4)) & 0x7fffffff;
    return sprintf '%06d', $bin % 1000000;
}

# an operator made with the bootstrap tool: { username, password, secret }
sub cp_operator {
    my (%o) = @_;
    my $name = $o{username} // unique_name('op');
    my @cmd = ("$ENV{TEST_NGINX_TOP}/build/tools/nutripro-admin",
               'create-operator', '--username', $name, '--role', $o{role},
               '--totp-key', "$ENV{TEST_NGINX_PKI}/totp.key");
    push @cmd, '--tenant', $o{tenant} if $o{tenant};
    local $ENV{PGHOST} = $ENV{TEST_NGINX_PG_DIR};
    local $ENV{PGPORT} = $ENV{TEST_NGINX_PG_PORT};
    local $ENV{PGDATABASE} = 'nutripro';
    local $ENV{PGUSER} = 'nutripro_controlplane';
    open my $fh, '-|', @cmd or die "nutripro-admin: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    die "nutripro-admin failed: $out" if $?;
    my ($pw) = $out =~ /^password:\s*(\S+)/mi;
    my ($secret) = $out =~ /secret=([A-Z2-7]+)/;
    die "nutripro-admin output not understood: $out" unless $pw && $secret;
    return { username => $name, password => $pw, secret => $secret };
}

# one HTTP request with curl: (status, headers (lower-case names), body)
sub http_req {
    my ($method, $url, %o) = @_;
    my @cmd = ('curl', '-s', '-i', '-m', '10', '-X', $method);
    push @cmd, '-H', "Authorization: Bearer $o{token}" if $o{token};
    push @cmd, '-H', $_ for @{ $o{headers} // [] };
    if (defined $o{json}) {
        my $body = ref $o{json} ? JSON::PP->new->canonical->encode($o{json})
                                : $o{json};
        push @cmd, '-H', 'Content-Type: application/json',
                   '--data-binary', $body;
    }
    push @cmd, $url;
    open my $fh, '-|', @cmd or die "curl: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my ($head, $body) = split /\r\n\r\n/, $out, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\S+ (\d+)};
    my %h;
    for (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    return ($status // 0, \%h, $body // '');
}

# logs in; returns the bearer token (undef when refused)
sub cp_login {
    my ($base, $op, %o) = @_;
    my ($st, $h, $body) = http_req('POST', "$base/api/v1/session",
        json => { username => $op->{username},
                  password => $o{password} // $op->{password},
                  totp => $o{totp} // totp($op->{secret}) });
    return unless $st == 201;
    my $doc = json_dec($body) or return;
    return $doc->{token};
}

# n parallel GETs; returns every response (headers and body) concatenated
sub concurrent_raw {
    my ($url, $n, %opt) = @_;
    my $max = $opt{max_time} || 10;
    my @urls = map { ($url, '-o', '-') } 1 .. $n;
    open my $fh, '-|', 'curl', '-s', '--no-progress-meter', '-i', '--parallel',
        '--parallel-immediate',
        '--parallel-max', $n, '-m', $max, @urls
        or die "curl: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

1;
