# The authorisation matrix: every route x every role (and no session), from
# the one route table; tenant managers crossing tenants get 404, never data.

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
}
CONF
});

run_tests();

__DATA__

=== TEST 1: every route x every role
--- request
GET /ping
--- timeout: 60
--- nutripro_check
my $t1 = unique_name('mine');
my $t2 = unique_name('other');
psql("INSERT INTO tenants (slug, name, plan_id) SELECT s, s, (SELECT id FROM plans WHERE name = 'standard') FROM unnest(ARRAY['$t1', '$t2']) s");
my $id1 = psql("SELECT id FROM tenants WHERE slug = '$t1'");
my $id2 = psql("SELECT id FROM tenants WHERE slug = '$t2'");

my %tok;
$tok{admin} = cp_login($Base, cp_operator(role => 'admin'));
$tok{onboarding} = cp_login($Base, cp_operator(role => 'onboarding'));
$tok{tm} = cp_login($Base, cp_operator(role => 'tenant_manager', tenant => $t1));
$tok{none} = undef;
ok($tok{$_}, "$name: $_ logged in") for qw(admin onboarding tm);

my $plan = psql("INSERT INTO plans (name, rate_per_sec, burst) VALUES ('" . unique_name('authz') . "', 1, 1) RETURNING id");
my $victim = cp_operator(role => 'onboarding');
my $vid = psql("SELECT id FROM operators WHERE username = '$victim->{username}'");
my $cert = psql("INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after) VALUES ($id2, decode(md5(random()::text) || md5(random()::text), 'hex'), 'CN=x', '01', now(), now() + interval '1 day') RETURNING id");

# [method, path, body, none, admin, onboarding, tenant manager]
my @matrix = (
  ['GET',    '/api/v1/health',                     undef, 200, 200, 200, 200],
  ['GET',    '/api/v1/plans',                      undef, 200, 200, 200, 200],
  ['POST',   '/api/v1/plans', { name => 'p', rate_per_sec => 1, burst => 1, description => 'x' . rand() },
                                                          401, 201, 403, 403],
  ['GET',    "/api/v1/plans/$plan",                undef, 401, 200, 403, 403],
  ['PATCH',  "/api/v1/plans/$plan", { description => 'changed' },
                                                          401, 200, 403, 403],
  ['GET',    '/api/v1/session',                    undef, 401, 200, 200, 200],
  ['GET',    '/api/v1/tenants',                    undef, 401, 200, 200, 200],
  ['POST',   '/api/v1/tenants', { slug => 'SLUG', name => 'n' },
                                                          401, 201, 201, 403],
  ['GET',    "/api/v1/tenants/$id1",               undef, 401, 200, 200, 200],
  ['GET',    "/api/v1/tenants/$id2",               undef, 401, 200, 200, 404],
  ['GET',    "/api/v1/tenants/$id2/certificates",  undef, 401, 200, 200, 404],
  ['GET',    "/api/v1/tenants/$id1/certificates",  undef, 401, 200, 200, 200],
  ['GET',    "/api/v1/tenants/$id1/usage",         undef, 401, 200, 403, 200],
  ['GET',    "/api/v1/tenants/$id2/usage",         undef, 401, 200, 403, 404],
  ['GET',    "/api/v1/tenants/$id1/billing",       undef, 401, 200, 403, 200],
  ['GET',    "/api/v1/tenants/$id2/billing",       undef, 401, 200, 403, 404],
  ['POST',   "/api/v1/tenants/$id2/certificates/$cert/revoke", undef, 401, 'REVOKE', 403, 404],
  ['GET',    '/api/v1/operators',                  undef, 401, 200, 403, 403],
  ['POST',   '/api/v1/operators', { username => 'USER', role => 'onboarding' },
                                                          401, 201, 403, 403],
  ['PATCH',  "/api/v1/operators/$vid", { disabled => JSON::PP::false },
                                                          401, 200, 403, 403],
  ['GET',    '/api/v1/settings',                   undef, 401, 200, 403, 403],
  ['PUT',    '/api/v1/settings/test_note', { value => 'x' },
                                                          401, 200, 403, 403],
  ['GET',    '/api/v1/audit',                      undef, 401, 200, 403, 403],
  ['GET',    '/api/v1/audit/verify',               undef, 401, 200, 403, 403],
  ['POST',   "/api/v1/tenants/$id2/suspend",       undef, 401, 200, 403, 403],
  ['POST',   "/api/v1/tenants/$id2/resume",        undef, 401, 200, 403, 403],
  ['DELETE', "/api/v1/tenants/$id2",               undef, 401, 'LAST', 403, 403],
);

for my $row (@matrix) {
    my ($m, $path, $body, @want) = @$row;
    my @roles = ('none', 'onboarding', 'tm', 'admin');
    my %col = (none => 0, admin => 1, onboarding => 2, tm => 3);
    for my $role (@roles) {
        my $want = $want[$col{$role}];
        $want = 200 if $want eq 'REVOKE' || $want eq 'LAST';
        my %o = (token => $tok{$role});
        if ($body) {
            my %b = %$body;
            $b{slug} = unique_name('t') if ($b{slug} // '') eq 'SLUG';
            $b{username} = unique_name('u') if ($b{username} // '') eq 'USER';
            $b{name} = unique_name('p') if $path eq '/api/v1/plans';
            $o{json} = \%b;
        }
        my ($st) = http_req($m, "$Base$path", %o);
        is($st, $want, "$name: $m $path as $role");
    }
}
