# Operators' login: password (scrypt, in a thread pool) + TOTP (RFC 6238),
# sessions as bearer tokens or cookies, logout, expiry, lockout, login rate
# limits, and the audit rows of every attempt.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;

no_shuffle();

our $Base = "http://127.0.0.1:" . ($ENV{TEST_NGINX_SERVER_PORT}
                                   || $ENV{TEST_NGINX_PORT} || 1984);

sub audit_count {
    my ($action, $user, $reason) = @_;
    my $r = defined $reason ? " AND details->>'reason' = '$reason'" : '';
    return psql("SELECT count(*) FROM audit_log WHERE action = '$action'"
                . " AND operator_username = '$user'$r") + 0;
}

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $code = $block->nutripro_check or return;
    return if $dry_run || $req_idx > 0;
    my $name = $block->name;
    eval "$code; 1" or fail("$name: check died: $@");
});

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('main_config', <<'CONF') unless defined $block->main_config;
load_module $TEST_NGINX_MODULES/ngx_controlplane_module.so;
CONF

    my $limit = $block->login_limit // '100r/s 100';
    my $api = $block->api_limit // '100r/s 100';

    $block->set_value('http_config', <<CONF) unless defined $block->http_config;
controlplane_database cp {
    server unix:\$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
controlplane_limit_zone cplimit:1m;
CONF

    $block->set_value('config', <<CONF) unless defined $block->config;
location = /ping { return 200 "pong\\n"; }
location /api/ {
    controlplane_api cp;
    controlplane_secret_key \$TEST_NGINX_PKI/totp.key;
    controlplane_tenant_ca \$TEST_NGINX_PKI/tenant-ca.crt;
    controlplane_login_limit $limit;
    controlplane_api_limit $api;
    controlplane_lockout 3 15m;
}
CONF
});

run_tests();

__DATA__

=== TEST 1: the right factors open a session: bearer token and cookie
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my ($st, $h, $body) = http_req('POST', "$Base/api/v1/session",
    json => { username => $op->{username}, password => $op->{password},
              totp => totp($op->{secret}) });
is($st, 201, "$name: 201");
my $doc = json_dec($body);
like($doc->{token} // '', qr/^[0-9a-f]{64}$/, "$name: a 256-bit token");
is($doc->{operator}{role}, 'admin', "$name: the operator's role");
like($h->{'set-cookie'} // '', qr/^nutripro_session=[0-9a-f]{64}; Path=\/api\/; Max-Age=\d+; Secure; HttpOnly; SameSite=Strict$/,
     "$name: a Secure HttpOnly SameSite=Strict cookie");
($st, $h, $body) = http_req('GET', "$Base/api/v1/session", token => $doc->{token});
is($st, 200, "$name: the bearer token works");
like($body, qr/"username":"\Q$op->{username}\E"/, "$name: as that operator");
($st) = http_req('GET', "$Base/api/v1/session",
                 headers => ["Cookie: a=b; nutripro_session=$doc->{token}"]);
is($st, 200, "$name: the cookie works");
my $hash = psql("SELECT encode(token_hash, 'hex') FROM sessions s JOIN operators o ON o.id = s.operator_id WHERE o.username = '$op->{username}'");
isnt($hash, $doc->{token}, "$name: the database keeps a hash, not the token");
is(audit_count('auth.login', $op->{username}), 1, "$name: the login is audited");



=== TEST 2: a wrong password, a wrong code, an unknown user: the same 401
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'onboarding');
my @answers;
for my $try ([$op->{username}, 'wrong-password', totp($op->{secret})],
             [$op->{username}, $op->{password}, '000000'],
             ['nobody-' . $op->{username}, 'whatever', '123456']) {
    my ($st, $h, $body) = http_req('POST', "$Base/api/v1/session",
        json => { username => $try->[0], password => $try->[1], totp => $try->[2] });
    is($st, 401, "$name: 401");
    push @answers, $body;
}
is($answers[1], $answers[0], "$name: a wrong code reads like a wrong password");
is($answers[2], $answers[0], "$name: an unknown user reads the same");
like($answers[0], qr{"type":"https://nutripro.example/problems/invalid-credentials"}, "$name: problem type");
is(audit_count('auth.login_failed', $op->{username}, 'password'), 1, "$name: audited: password");
is(audit_count('auth.login_failed', $op->{username}, 'totp'), 1, "$name: audited: totp");
is(audit_count('auth.login_failed', "nobody-$op->{username}", 'unknown_user'), 1, "$name: audited: unknown user");



=== TEST 3: a code is accepted once; an expired code is refused
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $code = totp($op->{secret});
ok(cp_login($Base, $op, totp => $code), "$name: first use");
ok(!cp_login($Base, $op, totp => $code), "$name: the same code again is refused");
is(audit_count('auth.login_failed', $op->{username}, 'totp_reused'), 1, "$name: audited as reused");
my $op2 = cp_operator(role => 'admin');
ok(!cp_login($Base, $op2, totp => totp($op2->{secret}, time - 90)), "$name: a code three steps old is refused");
ok(cp_login($Base, $op2, totp => totp($op2->{secret}, time - 30)), "$name: one step of drift is accepted");



=== TEST 4: repeated failures lock the account, even for the right factors
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
ok(!cp_login($Base, $op, password => 'nope'), "$name: failure $_") for 1 .. 3;
ok(!cp_login($Base, $op), "$name: the right factors are refused while locked");
is(psql("SELECT locked_until > now() FROM operators WHERE username = '$op->{username}'"), 't', "$name: locked in the database");
is(audit_count('auth.login_failed', $op->{username}, 'locked'), 1, "$name: audited as locked");
psql("UPDATE operators SET locked_until = NULL, failed_logins = 0 WHERE username = '$op->{username}'");
ok(cp_login($Base, $op, totp => totp($op->{secret}, time + 30)), "$name: served again once the lock is lifted");



=== TEST 5: logout ends the session; an expired session is refused
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $token = cp_login($Base, $op);
ok($token, "$name: logged in");
my ($st, $h, $body) = http_req('DELETE', "$Base/api/v1/session", token => $token);
is($st, 200, "$name: logout 200");
like($h->{'set-cookie'} // '', qr/^nutripro_session=; .*Max-Age=0/, "$name: the cookie is cleared");
($st) = http_req('GET', "$Base/api/v1/session", token => $token);
is($st, 401, "$name: the token no longer works");
is(audit_count('auth.logout', $op->{username}), 1, "$name: logout audited");
my $op2 = cp_operator(role => 'admin');
my $t2 = cp_login($Base, $op2);
psql("UPDATE sessions SET created_at = sessions.created_at - interval '1 hour', expires_at = sessions.created_at - interval '1 minute' FROM operators o WHERE o.id = sessions.operator_id AND o.username = '$op2->{username}'");
($st, $h, $body) = http_req('GET', "$Base/api/v1/tenants", token => $t2);
is($st, 401, "$name: an expired session is refused");
like($body, qr/unauthenticated/, "$name: as unauthenticated");



=== TEST 6: tokens that are not sessions
--- request eval
["GET /api/v1/tenants", "GET /api/v1/tenants", "GET /api/v1/tenants", "GET /api/v1/tenants"]
--- more_headers eval
["", "Authorization: Bearer " . ("0" x 64), "Authorization: Bearer x'; DROP TABLE sessions; --",
 "Cookie: nutripro_session=" . ("a" x 65)]
--- error_code eval
[401, 401, 401, 401]



=== TEST 7: login attempts are rate-limited per address
--- login_limit: 2r/m 2
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my @st;
for (1 .. 3) {
    my ($st, $h) = http_req('POST', "$Base/api/v1/session",
        json => { username => $op->{username}, password => 'x', totp => '123456' });
    push @st, $st;
    if ($st == 429) {
        like($h->{'retry-after'} // '', qr/^\d+$/, "$name: Retry-After");
    }
}
is_deeply(\@st, [401, 401, 429], "$name: the third attempt is refused with 429");



=== TEST 8: a malformed login body: 400, 415, 422, never a crash
--- request eval
["POST /api/v1/session\n{\"username\":\"a\",\"username\":\"b\",\"password\":\"x\",\"totp\":\"123456\"}",
 "POST /api/v1/session\n{\"username\":\"a\"",
 "POST /api/v1/session\n{\"username\":\"a\",\"password\":\"x\",\"totp\":\"12345\"}",
 "POST /api/v1/session\n{\"username\":\"a\",\"password\":\"x\",\"totp\":\"123456\",\"admin\":true}",
 "POST /api/v1/session\n[1,2,3]"]
--- more_headers
Content-Type: application/json
--- error_code eval
[400, 400, 422, 422, 422]
--- response_body_like eval
[qr/invalid-json/, qr/invalid-json/, qr{"pointer":"/totp","keyword":"pattern"},
 qr{"pointer":"/admin","keyword":"additionalProperties"}, qr/validation-failed/]



=== TEST 9: a login body that is not JSON: 415
--- request
POST /api/v1/session
username=a&password=b
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 415
--- response_body_like: unsupported-media-type



=== TEST 10: no password or token ever reaches the log
--- log_level: info
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $token = cp_login($Base, $op);
http_req('GET', "$Base/api/v1/session", token => $token);
http_req('POST', "$Base/api/v1/session",
         json => { username => $op->{username}, password => "$op->{password}-wrong", totp => '111111' });
open my $f, "<", server_root() . "/logs/error.log" or die;
my $log = do { local $/; <$f> };
ok($token && index($log, $token) < 0, "$name: the token is not logged");
ok(index($log, $op->{password}) < 0, "$name: the password is not logged");
ok(index($log, $op->{secret}) < 0, "$name: the TOTP secret is not logged");



=== TEST 11: the API is rate-limited per operator and per address
--- api_limit: 3r/m 3
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $token = cp_login($Base, $op);
my @st = map { (http_req('GET', "$Base/api/v1/tenants?limit=1", token => $token))[0] } 1 .. 3;
my ($st, $h, $body) = http_req('GET', "$Base/api/v1/tenants?limit=1", token => $token);
is($st, 429, "$name: refused past the burst");
like($body, qr/too-many-requests/, "$name: as too many requests");
like($h->{'retry-after'} // '', qr/^\d+$/, "$name: with Retry-After");
ok((grep { $_ == 429 } @st) < 3, "$name: the burst itself was served");



=== TEST 12: failures while locked do not extend the lock; after it the count starts again
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $u = $op->{username};
ok(!cp_login($Base, $op, password => 'nope'), "$name: failure $_") for 1 .. 3;
my $until = psql("SELECT locked_until FROM operators WHERE username = '$u'");
ok($until, "$name: locked");
sleep 1.1;
ok(!cp_login($Base, $op, password => 'nope'), "$name: a failure while locked");
is(psql("SELECT locked_until FROM operators WHERE username = '$u'"), $until,
   "$name: the lock is not extended");
is(psql("SELECT failed_logins FROM operators WHERE username = '$u'"), 3,
   "$name: nor counted");
is(audit_count('auth.login_failed', $u, 'locked'), 1, "$name: but audited");
# the lock runs out
psql("UPDATE operators SET locked_until = now() - interval '1 second' WHERE username = '$u'");
ok(!cp_login($Base, $op, password => 'nope'), "$name: one failure after the lock");
is(psql("SELECT failed_logins || ' ' || (locked_until IS NULL) FROM operators WHERE username = '$u'"), '1 true',
   "$name: counts as the first of a new series, not a new lock");
ok(cp_login($Base, $op, totp => totp($op->{secret}, time + 30)), "$name: the right factors are served");



=== TEST 13: password hashes in progress are bounded: past it 503 + Retry-After, none waits
--- config
location /api/ {
    controlplane_api cp;
    controlplane_secret_key $TEST_NGINX_PKI/totp.key;
    controlplane_login_limit 100r/s 100;
    controlplane_login_concurrency 1;
}
--- request
GET /api/v1/health
--- nutripro_check
my $body = '{"username":"nobody-at-all","password":"wrong password","totp":"000000"}';
open my $fh, '-|', 'curl', '-s', '--no-progress-meter', '--parallel', '--parallel-immediate', '--parallel-max', '8',
    '-m', '10', '-H', 'Content-Type: application/json', '--data', $body,
    '-w', '%{http_code} %header{retry-after}\n',
    map { ('-o', '/dev/null', "$Base/api/v1/session") } 1 .. 8
    or die "curl: $!";
my @r = <$fh>;
close $fh;
chomp @r;
my @busy = grep { /^503 1$/ } @r;
is(scalar @r, 8, "$name: every request answered");
ok(@busy >= 1, "$name: some refused as busy, with Retry-After (@r)");
is(scalar(grep { /^401/ } @r) + scalar @busy, 8, "$name: the others hashed and refused as wrong");
my ($st) = http_req('POST', "$Base/api/v1/session",
    json => { username => 'nobody-at-all', password => 'x' x 12, totp => '000000' });
is($st, 401, "$name: the bound frees up again");
--- error_log
password hashes in progress, refusing another



=== TEST 14: a write on the session cookie is taken from this origin only (CSRF)
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $tok = cp_login($Base, $op);
my $cookie = "Cookie: nutripro_session=$tok";
my ($st) = http_req('GET', "$Base/api/v1/session", headers => [$cookie, 'Origin: https://evil.example']);
is($st, 200, "$name: a read from anywhere (CORS keeps its answer from the page)");
($st) = http_req('DELETE', "$Base/api/v1/session", headers => [$cookie, 'Origin: https://evil.example']);
is($st, 401, "$name: a write from another origin is not authenticated by the cookie");
($st) = http_req('DELETE', "$Base/api/v1/session", headers => [$cookie, 'Origin: null']);
is($st, 401, "$name: nor from an opaque origin");
($st) = http_req('GET', "$Base/api/v1/session", headers => [$cookie]);
is($st, 200, "$name: so the session still stands");
($st) = http_req('DELETE', "$Base/api/v1/session", token => $tok, headers => ['Origin: https://evil.example']);
isnt($st, 401, "$name: a bearer token is not ambient: accepted from anywhere");
my $tok2 = cp_login($Base, $op, totp => totp($op->{secret}, time + 30));
(my $origin = $Base) =~ s{/+$}{};
($st) = http_req('DELETE', "$Base/api/v1/session", headers => ["Cookie: nutripro_session=$tok2", "Origin: $origin"]);
isnt($st, 401, "$name: a write from this origin is taken ($origin)");
($st) = http_req('GET', "$Base/api/v1/session", token => $tok2);
is($st, 401, "$name: and ended the session");
--- error_log
session cookie ignored for a write from another origin



=== TEST 15: failures at the same moment all count toward the lock
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $body = JSON::PP->new->encode({ username => $op->{username}, password => 'wrong password',
                                   totp => '000000' });
# A transaction holds the operator's row while the three failures arrive:
# their UPDATEs all wait for it, then run one after another on the row as
# each left it.
open my $lock, '-|', 'psql', '-X', '-q', '-tA', '-h', $ENV{TEST_NGINX_PG_DIR},
    '-p', $ENV{TEST_NGINX_PG_PORT}, '-U', 'postgres', '-d', 'nutripro', '-c',
    "BEGIN; SELECT 1 FROM operators WHERE username = '$op->{username}' FOR UPDATE;"
    . " SELECT pg_sleep(1.5); COMMIT;" or die "psql: $!";
select undef, undef, undef, 0.3;
open my $fh, '-|', 'curl', '-s', '--no-progress-meter', '--parallel', '--parallel-immediate', '--parallel-max', '3',
    '-m', '10', '-H', 'Content-Type: application/json', '--data', $body,
    '-w', '%{http_code}\n', map { ('-o', '/dev/null', "$Base/api/v1/session") } 1 .. 3
    or die "curl: $!";
my @r = <$fh>;
close $fh;
chomp @r;
{ local $/; <$lock>; }
close $lock;
is("@r", '401 401 401', "$name: three refused at once");
is(psql("SELECT failed_logins || ' ' || (locked_until > now()) FROM operators"
        . " WHERE username = '$op->{username}'"), '3 true', "$name: all three counted: locked");
