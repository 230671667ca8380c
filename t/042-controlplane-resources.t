# Control plane resources: certificates (PEM checks, duplicates, revocation
# refused at the gateway within a second), billing masked by role and its
# reads audited, the audit log's append-only rule and hash chain, and
# bounded pagination.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;
use Time::HiRes qw(time sleep);

no_shuffle();

our $Base = "http://127.0.0.1:" . ($ENV{TEST_NGINX_SERVER_PORT}
                                   || $ENV{TEST_NGINX_PORT} || 1984);

sub pem { my $n = shift; local $/; open my $f, '<', "$ENV{TEST_NGINX_PKI}/$n.crt" or die; <$f> }

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
load_module $TEST_NGINX_MODULES/ngx_mealapi_module.so;
CONF

    $block->set_value('http_config', <<'CONF') unless defined $block->http_config;
controlplane_database cp {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_controlplane;
}
mealapi_database gw {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_gateway;
}
mealapi_registry zone=tenants:1m database=gw;

server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 ssl;
    ssl_certificate $TEST_NGINX_PKI/gateway.crt;
    ssl_certificate_key $TEST_NGINX_PKI/gateway.key;
    ssl_client_certificate $TEST_NGINX_PKI/tenant-ca.crt;
    ssl_verify_client optional_no_ca;
    mealapi_route samples.list GET /v1/samples;
    location / {
        mealapi on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
}
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    location / { return 200 "backend $http_x_mealapi_tenant\n"; }
}
CONF

    $block->set_value('config', <<'CONF') unless defined $block->config;
proxy_ssl_session_reuse off;
location = /ping { return 200 "pong\n"; }
location /api/ {
    controlplane_api cp;
    controlplane_secret_key $TEST_NGINX_PKI/totp.key;
    controlplane_tenant_ca $TEST_NGINX_PKI/tenant-ca.crt;
    controlplane_page_limit 100;
}
location /c/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-c.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-c.key;
}
CONF
});

run_tests();

__DATA__

=== TEST 1: onboarding a tenant end to end: certificate in, served, revoked, refused
--- request
GET /ping
--- timeout: 30
--- nutripro_check
gateway_fixture();     # tenant-c's certificate is not registered
my $admin = cp_login($Base, cp_operator(role => 'admin'));
my $onb = cp_login($Base, cp_operator(role => 'onboarding'));
my $slug = unique_name('onb');
my ($st, $h, $body) = http_req('POST', "$Base/api/v1/tenants", token => $onb,
                              json => { slug => $slug, name => 'Onboarded', plan => 'standard' });
is($st, 201, "$name: tenant created by onboarding");
my $tid = json_dec($body)->{id};

($st, $h, $body) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $onb,
                            json => { pem => pem('foreign-tenant') });
is($st, 400, "$name: a foreign CA's certificate is refused");
like($body, qr/does not chain to the tenant CA/, "$name: as not chaining");
($st, $h, $body) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $onb,
                            json => { pem => pem('tenant-expired') });
is($st, 400, "$name: an expired certificate is refused");
like($body, qr/expired/, "$name: as expired");
($st) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $onb,
                 json => { pem => "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" });
is($st, 400, "$name: garbage is refused");
($st) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $onb,
                 json => { pem => pem('gateway') });
is($st, 400, "$name: a certificate of another CA (infrastructure) is refused");

($st, $h, $body) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $onb,
                            json => { pem => pem('tenant-c') });
is($st, 201, "$name: tenant-c's certificate registered");
my $c = json_dec($body);
is($c->{fingerprint_sha256}, cert_fingerprint('tenant-c'), "$name: stored by its SHA-256");
($st) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $admin,
                 json => { pem => pem('tenant-c') });
is($st, 409, "$name: a duplicate is a conflict");
($st) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $onb,
                 json => { pem => pem('tenant-c') });
is($st, 404, "$name: onboarding registers first certificates only");

my $t0 = time;
my $served;
while (time - $t0 < 3) {
    ($st, $body) = curl_get("$Base/c/v1/samples");
    if ($st == 200) { $served = 1; last }
    sleep 0.05;
}
ok($served, "$name: the gateway serves the new tenant");
like($body, qr/^backend \Q$slug\E$/, "$name: as that tenant");

($st) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates/$c->{id}/revoke", token => $admin);
is($st, 200, "$name: revoked through the API");
$t0 = time;
while (time - $t0 < 3) {
    ($st, $body) = curl_get("$Base/c/v1/samples");
    last if $st == 403;
    sleep 0.02;
}
my $dt = time - $t0;
is($st, 403, "$name: the gateway refuses the revoked certificate");
like($body, qr/certificate-revoked/, "$name: as revoked");
ok($dt < 1, "$name: within a second ($dt s)");
($st) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates/$c->{id}/revoke", token => $admin);
is($st, 404, "$name: revoking twice finds nothing to revoke");
# with every certificate revoked the tenant is not new: onboarding is
# refused before any insert (404), where an insert would conflict (409)
($st) = http_req('POST', "$Base/api/v1/tenants/$tid/certificates", token => $onb,
                 json => { pem => pem('tenant-c') });
is($st, 404, "$name: onboarding cannot re-register a tenant whose certificates were revoked");
is(psql("SELECT count(*) FROM audit_log WHERE action IN ('certificate.add', 'certificate.revoke') AND target_id = '$c->{id}'"), 2,
   "$name: the certificate's audit rows");
gateway_fixture();



=== TEST 2: billing: priced by plan, masked for tenant managers, every read audited
--- request
GET /ping
--- nutripro_check
my $slug = unique_name('bill');
psql("INSERT INTO tenants (slug, name, plan_id) SELECT '$slug', 'Billing', id FROM plans WHERE name = 'standard'");
my $tid = psql("SELECT id FROM tenants WHERE slug = '$slug'");
psql("INSERT INTO usage_daily (tenant_id, day, requests) VALUES ($tid, date_trunc('month', now())::date, 1500)");
my $admin = cp_login($Base, cp_operator(role => 'admin'));
my $tmop = cp_operator(role => 'tenant_manager', tenant => $slug);
my $tm = cp_login($Base, $tmop);
my ($st, $h, $body) = http_req('GET', "$Base/api/v1/tenants/$tid/billing", token => $admin);
is($st, 200, "$name: admin reads the bill");
my $b = json_dec($body);
is($b->{requests}, 1500, "$name: the month's requests");
is($b->{amount_cents}, 4900 + 30, "$name: base price + 1500 x 20 cents / 1000");
is($b->{price_per_1k_cents}, 20, "$name: admin sees unit prices");
my $pid = psql("SELECT id FROM plans WHERE name = 'standard'");
($st, $h, $body) = http_req('GET', "$Base/api/v1/plans/$pid", token => $admin);
my $plan = json_dec($body);
is("$st $plan->{price_monthly_cents} $plan->{price_per_1k_cents}", "200 4900 20",
   "$name: and reads them on the plan");
($st) = http_req('GET', "$Base/api/v1/plans/$pid", token => $tm);
is($st, 403, "$name: a tenant manager does not");
($st, $h, $body) = http_req('GET', "$Base/api/v1/tenants/$tid/billing", token => $tm);
is($st, 200, "$name: the tenant manager reads its own bill");
$b = json_dec($body);
is($b->{amount_cents}, 4930, "$name: the same amount");
ok(!defined $b->{price_per_1k_cents}, "$name: unit prices masked");
is_deeply($b->{masked}, ['price_monthly_cents', 'price_per_1k_cents'], "$name: and said so");
is(psql("SELECT count(*) FROM audit_log WHERE action = 'billing.read' AND target_id = '$tid'"), 2,
   "$name: both reads audited");
is(psql("SELECT count(*) FROM audit_log WHERE action = 'billing.read' AND target_id = '$tid' AND operator_username = '$tmop->{username}'"), 1,
   "$name: with the operator");
($st) = http_req('GET', "$Base/api/v1/tenants/$tid/billing?month=2026-13", token => $admin);
is($st, 404, "$name: an invalid month finds no bill");



=== TEST 3: the audit log: append-only for the application, tamper-evident
--- request
GET /ping
--- nutripro_check
my $admin = cp_login($Base, cp_operator(role => 'admin'));
my ($st, $h, $body) = http_req('GET', "$Base/api/v1/audit/verify", token => $admin);
is($st, 200, "$name: verify");
like($body, qr/"intact"\s*:\s*true/, "$name: the chain is intact");
my $upd = psql("UPDATE audit_log SET action = 'x' WHERE id = (SELECT max(id) FROM audit_log)",
               user => 'nutripro_controlplane', may_fail => 1);
is(psql("SELECT count(*) FROM audit_log WHERE action = 'x'"), 0, "$name: the application role cannot update");
psql("DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)", user => 'nutripro_controlplane', may_fail => 1);
my $n = psql("SELECT count(*) FROM audit_log");
ok($n > 0, "$name: nor delete");
my ($id, $action) = split /\|/, psql("SELECT id, action FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET 1");
psql("SET session_replication_role = replica; UPDATE audit_log SET action = 'tampered' WHERE id = $id");
($st, $h, $body) = http_req('GET', "$Base/api/v1/audit/verify", token => $admin);
like($body, qr/"first_broken_id"\s*:\s*$id\b/, "$name: tampering by a superuser is found at its row");
psql("SET session_replication_role = replica; UPDATE audit_log SET action = '$action' WHERE id = $id");
($st, $h, $body) = http_req('GET', "$Base/api/v1/audit/verify", token => $admin);
like($body, qr/"intact"\s*:\s*true/, "$name: and the chain is whole again once restored");



=== TEST 4: audit rows for each kind of event, filtered by operator and action
--- request
GET /ping
--- nutripro_check
my $op = cp_operator(role => 'admin');
my $admin = cp_login($Base, $op);
my $slug = unique_name('aud');
http_req('POST', "$Base/api/v1/tenants", token => $admin, json => { slug => $slug, name => 'A' });
my $tid = psql("SELECT id FROM tenants WHERE slug = '$slug'");
http_req('POST', "$Base/api/v1/tenants/$tid/suspend", token => $admin);
http_req('POST', "$Base/api/v1/tenants/$tid/resume", token => $admin);
http_req('PUT', "$Base/api/v1/settings/test_note", token => $admin, json => { value => { a => 1 } });
http_req('DELETE', "$Base/api/v1/session", token => $admin);
$admin = cp_login($Base, $op, totp => totp($op->{secret}, time + 30));
my ($st, $h, $body) = http_req('GET', "$Base/api/v1/audit?operator=$op->{username}&limit=50", token => $admin);
is($st, 200, "$name: the audit list");
my @actions = map { $_->{action} } @{ json_dec($body)->{items} };
for my $a (qw(auth.login tenant.create tenant.suspend tenant.resume settings.update auth.logout)) {
    ok((grep { $_ eq $a } @actions), "$name: $a recorded");
}
($st, $h, $body) = http_req('GET', "$Base/api/v1/audit?action=tenant.suspend&operator=$op->{username}", token => $admin);
is(scalar @{ json_dec($body)->{items} }, 1, "$name: filtered by action");
my $row = json_dec($body)->{items}[0];
is($row->{client_addr}, '127.0.0.1', "$name: with the client address");
is($row->{target_id}, "$tid", "$name: and the target");



=== TEST 5: pagination is bounded and walks every page
--- request
GET /ping
--- nutripro_check
my $admin = cp_login($Base, cp_operator(role => 'admin'));
my ($st) = http_req('GET', "$Base/api/v1/tenants?limit=101", token => $admin);
is($st, 400, "$name: limit over the page limit");
($st) = http_req('GET', "$Base/api/v1/audit?limit=0", token => $admin);
is($st, 400, "$name: limit 0");
($st) = http_req('GET', "$Base/api/v1/tenants?cursor=abc", token => $admin);
is($st, 400, "$name: a cursor that is not ours");
my $total = psql("SELECT count(*) FROM tenants WHERE deleted_at IS NULL");
my ($seen, $cursor, $pages) = (0, undef, 0);
do {
    my $url = "$Base/api/v1/tenants?limit=7" . (defined $cursor ? "&cursor=$cursor" : '');
    my ($s, $h, $body) = http_req('GET', $url, token => $admin);
    my $doc = json_dec($body);
    $seen += @{ $doc->{items} };
    $cursor = $doc->{next_cursor};
    $pages++;
} while (defined $cursor && $pages < 1000);
is($seen, $total, "$name: the pages hold every tenant once ($pages pages)");



=== TEST 6: hostile input in bodies and paths
--- request
GET /ping
--- nutripro_check
my $admin = cp_login($Base, cp_operator(role => 'admin'));
my @cases = (
  ['POST', '/api/v1/tenants', '{"slug":"x\'; DROP TABLE tenants; --","name":"n"}', 422],
  ['POST', '/api/v1/tenants', '{"slug":"ok-slug","name":"' . ('n' x 300) . '"}', 422],
  ['POST', '/api/v1/tenants', '{"slug":"a","name":"b","slug":"c"}', 400],
  ['POST', '/api/v1/tenants', "{\"slug\":\"a\",\"name\":\"\xff\xfe\"}", 400],
  ['POST', '/api/v1/tenants', '{"slug":"a","name":"b"} trailing', 400],
  ['POST', '/api/v1/tenants', ('[' x 100) . (']' x 100), 400],
  ['POST', '/api/v1/tenants', '{"slug":"nonexistent-plan-' . int(rand(1e6)) . '","name":"b","plan":"no-such-plan"}', 422],
  ['GET',  '/api/v1/tenants/1%27%20OR%201=1', undef, 404],
  ['GET',  '/api/v1/tenants/99999999999999999999', undef, 404],
  ['GET',  '/api/v1/tenants/-1', undef, 404],
  ['GET',  '/api/v1/audit?from=not-a-date', undef, 400],
  ['GET',  '/api/v1/audit?operator=%00x', undef, 400],
);
for my $c (@cases) {
    my ($m, $path, $body, $want) = @$c;
    my ($st, $h, $b) = http_req($m, "$Base$path", token => $admin, defined $body ? (json => $body) : ());
    is($st, $want, "$name: $m " . substr($path . ' ' . ($body // ''), 0, 60));
    like($h->{'content-type'} // '', qr{^application/problem\+json}, "$name: a problem document");
}
is(psql("SELECT count(*) FROM pg_tables WHERE tablename = 'tenants'"), 1, "$name: tenants still there");
--- no_error_log
[alert]
[crit]



=== TEST 7: concurrent first certificates from onboarding: one is registered
--- request
GET /ping
--- timeout: 30
--- nutripro_check
use File::Temp qw(tempdir);
my $dir = tempdir(CLEANUP => 1);
my $pki = $ENV{TEST_NGINX_PKI};
# two fresh certificates of the tenant CA, nobody's yet
for my $n (1, 2) {
    system("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=race-$n"
           . " -keyout $dir/$n.key -out $dir/$n.csr 2>/dev/null") == 0 or die "csr";
    system("openssl x509 -req -in $dir/$n.csr -CA $pki/tenant-ca.crt -CAkey $pki/tenant-ca.key"
           . " -CAcreateserial -CAserial $dir/serial -days 2 -out $dir/$n.crt 2>/dev/null") == 0 or die "x509";
    my $pem = do { local $/; open my $f, '<', "$dir/$n.crt" or die; <$f> };
    open my $o, '>', "$dir/$n.json" or die;
    print $o JSON::PP->new->encode({ pem => $pem });
    close $o;
}
my $onb = cp_login($Base, cp_operator(role => 'onboarding'));
my ($st, $h, $body) = http_req('POST', "$Base/api/v1/tenants", token => $onb,
    json => { slug => unique_name('race'), name => 'Race', plan => 'standard' });
is($st, 201, "$name: tenant created");
my $tid = json_dec($body)->{id};
my @req = map { ('-o', '/dev/null', '-w', '%{http_code}\n', '-H', "Authorization: Bearer $onb",
                 '-H', 'Content-Type: application/json', '--data-binary', "\@$dir/$_.json",
                 "$Base/api/v1/tenants/$tid/certificates") } (1, 2);
my @codes;
for my $round (1 .. 3) {
    open my $fh, '-|', 'curl', '-s', '-m', '10', '--parallel', '--parallel-immediate',
        @req[0 .. 10], '--next', @req[11 .. 21] or die "curl: $!";
    push @codes, sort map { chomp; $_ } <$fh>;
    close $fh;
}
is("@codes[0, 1]", '201 404', "$name: of two at once, one registered, one refused");
is("@codes[2 .. 5]", '404 404 404 404', "$name: and none after");
is(psql("SELECT count(*) FROM tenant_certificates WHERE tenant_id = $tid"), 1,
   "$name: one certificate in the database");
