# Hostile input on every write route of the control plane (SQL injection,
# oversized and malformed bodies, hostile path segments), and no secret of
# the run anywhere in the responses (but the one that issues it) or in the
# error log.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;

no_shuffle();

our $Base = "http://127.0.0.1:" . ($ENV{TEST_NGINX_SERVER_PORT}
                                   || $ENV{TEST_NGINX_PORT} || 1984);

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

    $block->set_value('http_config', <<'CONF') unless defined $block->http_config;
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
CONF

    $block->set_value('config', <<'CONF') unless defined $block->config;
location = /ping { return 200 "pong\n"; }
location /api/ {
    controlplane_api cp;
    controlplane_secret_key $TEST_NGINX_PKI/totp.key;
    controlplane_tenant_ca $TEST_NGINX_PKI/tenant-ca.crt;
    client_max_body_size 64k;
    error_page 413 @cp_refused;
}
location @cp_refused {
    controlplane_api cp;
}
CONF
});

run_tests();

__DATA__

=== TEST 1: every write route refuses hostile input with a problem document
--- log_level: info
--- timeout: 60
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $token = cp_login($Base, $op);
my @secrets = ($op->{password}, $op->{secret}, $token);

my $slug = unique_name('hostile');
my ($st, $h, $body) = http_req('POST', "$Base/api/v1/tenants", token => $token,
                               json => { slug => $slug, name => 'Hostile' });
is($st, 201, "$name: a tenant to aim at");
my $tid = json_dec($body)->{id};

# an operator made through the API: its secrets are in that one answer only
($st, $h, $body) = http_req('POST', "$Base/api/v1/operators", token => $token,
                            json => { username => unique_name('victim'), role => 'onboarding' });
is($st, 201, "$name: an operator created");
my $victim = json_dec($body);
like($victim->{totp_uri} // '', qr{^otpauth://totp/NutriPro:victim-.*secret=\Q$victim->{totp_secret}\E}, "$name: its provisioning URI");
push @secrets, $victim->{password}, $victim->{totp_secret};
my $vid = $victim->{operator}{id};

my $inj = q{x'); DROP TABLE audit_log; --};
my $big = 'x' x 70000;
my @cases = (
  ['POST',   '/api/v1/plans', { name => $inj, rate_per_sec => 1, burst => 1 }, 422],
  ['POST',   '/api/v1/plans', { name => 'p' . time, rate_per_sec => "1; DROP", burst => 1 }, 422],
  ['POST',   '/api/v1/plans', { name => 'p' . time, rate_per_sec => 1, burst => 1, routes => [ ('r') x 65 ] }, 422],
  ['POST',   '/api/v1/plans', { name => 'p' . time, rate_per_sec => 1, burst => 1, description => $big }, 413],
  ['POST',   '/api/v1/tenants', { slug => $inj, name => 'n' }, 422],
  ['POST',   '/api/v1/tenants', { slug => 'ok-' . time, name => $inj, plan => $inj }, 422],
  ['POST',   '/api/v1/tenants', { slug => 'ok-' . time, name => $big }, 413],
  ['POST',   '/api/v1/tenants', '{"slug":"a","name":"b\u0000c"}', 400],
  ['POST',   "/api/v1/tenants/$tid%27%20OR%201=1/suspend", undef, 404],
  ['POST',   "/api/v1/tenants/$tid;DROP/resume", undef, 404],
  ['DELETE', "/api/v1/tenants/1%20OR%201=1", undef, 404],
  ['POST',   "/api/v1/tenants/$tid/certificates", { pem => $inj }, 400],
  ['POST',   "/api/v1/tenants/$tid/certificates", { pem => 'x' x 20000 }, 422],
  ['POST',   "/api/v1/tenants/$tid/certificates", { pem => 'x', extra => 1 }, 422],
  ['POST',   "/api/v1/tenants/$tid/certificates/1%27/revoke", undef, 404],
  ['POST',   '/api/v1/operators', { username => $inj, role => 'admin' }, 422],
  ['POST',   '/api/v1/operators', { username => 'u' . time, role => 'root' }, 422],
  ['POST',   '/api/v1/operators', { username => 'u' . time, role => 'tenant_manager', tenant_id => "1 OR 1=1" }, 422],
  ['PATCH',  "/api/v1/operators/$vid", { disabled => "yes" }, 422],
  ['PATCH',  "/api/v1/operators/$vid", { role => 'admin' }, 422],
  ['PATCH',  "/api/v1/operators/$vid", {}, 422],
  ['DELETE', "/api/v1/operators/$vid%20OR%201=1", undef, 404],
  ['PUT',    '/api/v1/settings/a;drop', { value => 1 }, 404],
  ['PUT',    '/api/v1/settings/note', { value => $inj, other => 1 }, 422],
  ['PUT',    '/api/v1/settings/default_plan', { value => $inj }, 422],
  ['PUT',    '/api/v1/settings/note', { value => $big }, 413],
  ['POST',   '/api/v1/session', { username => $inj, password => $inj, totp => '123456' }, 422],
  ['POST',   '/api/v1/session', { username => 'nobody', password => $inj, totp => '123456' }, 401],
  ['POST',   '/api/v1/session', '{"username":"\\u212Aate","password":"p","totp":"123456"}', 422],
  ['POST',   '/api/v1/session', { username => 'a', password => 'p' x 2000, totp => '123456' }, 422],
  ['POST',   '/api/v1/session', { username => 'a', password => 'p', totp => "1' OR" }, 422],
);
for my $c (@cases) {
    my ($m, $path, $json, $want) = @$c;
    my ($s, $hh, $b) = http_req($m, "$Base$path", token => $token, defined $json ? (json => $json) : ());
    my $label = "$m $path " . substr(ref $json ? JSON::PP->new->canonical->encode($json) : ($json // ''), 0, 50);
    is($s, $want, "$name: $label");
    like($hh->{'content-type'} // '', qr{^application/problem\+json}, "$name: $label: a problem document");
    for my $secret (@secrets) {
        ok(index($b, $secret) < 0, "$name: $label: no secret in the answer") or last;
    }
}

for my $t (qw(audit_log plans tenants operators sessions settings tenant_certificates)) {
    is(psql("SELECT count(*) FROM pg_tables WHERE tablename = '$t'"), 1, "$name: $t still there");
}
is(psql("SELECT audit_verify() IS NULL"), 't', "$name: the audit chain intact");

# the whole run's log: no secret
open my $f, '<', server_root() . "/logs/error.log" or die;
my $log = do { local $/; <$f> };
for my $secret (@secrets) {
    ok(index($log, $secret) < 0, "$name: a secret is not in the error log");
}
--- no_error_log
[alert]
[crit]
