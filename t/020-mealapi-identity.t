# The gateway's identity: mTLS client certificates -> the tenant registry
# (synced from PostgreSQL), deny-by-default routes, plan scopes, spoofed
# identity headers, the signed identity and its verification, mTLS to the
# backend.
#
# Layout: the gateway (mTLS) listens on RAND_PORT_1, the backend (mTLS,
# verifying the signature) on RAND_PORT_2, and an echo behind it on
# RAND_PORT_3.  The test server's locations /a/, /b/, /c/, /expired/,
# /foreign/ and /none/ are clients presenting the certificates of
# tenant-a, tenant-b, tenant-c (unregistered), an expired tenant-a
# certificate, a foreign CA's certificate, and none.

use Test::Nginx::Socket 'no_plan';
use t::NutriPro;
use Test::More;
use Time::HiRes qw(time sleep);
use Digest::SHA qw(hmac_sha256_hex sha256_hex);

no_shuffle();

# polls a URL until it answers $want (3 s at most): (status, body, seconds)
sub wait_status {
    my ($url, $want) = @_;
    my $t0 = time;
    my ($st, $body);
    while (time - $t0 < 3) {
        ($st, $body) = curl_get($url);
        last if $st == $want;
        sleep 0.02;
    }
    return ($st, $body, time - $t0);
}

sub log_has {
    my $re = shift;
    my $root = $ENV{TEST_NGINX_SERVROOT} || Test::Nginx::Socket::server_root();
    open my $f, '<', "$root/logs/error.log" or return 0;
    while (<$f>) { return 1 if /$re/ }
    return 0;
}

sub wait_log {
    my $re = shift;
    my $t0 = time;
    while (time - $t0 < 5) {
        return 1 if log_has($re);
        sleep 0.05;
    }
    return 0;
}

# a gateway with a new registry zone, over database server SERVER (with
# EXTRA in its block), starting without its first load for long
sub fresh_gateway {
    my ($server, $extra) = @_;
    return <<CONF;
mealapi_database gw {
    server $server;
    dbname nutripro;
    user nutripro_gateway;
    $extra
}
mealapi_registry zone=fresh:1m database=gw startup_wait=300ms;
server {
    listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_1 ssl;
    ssl_certificate \$TEST_NGINX_PKI/gateway.crt;
    ssl_certificate_key \$TEST_NGINX_PKI/gateway.key;
    ssl_client_certificate \$TEST_NGINX_PKI/tenant-ca.crt;
    ssl_verify_client optional_no_ca;
    mealapi_route samples.list GET /v1/samples;
    location / {
        mealapi on;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_RAND_PORT_3;
    }
}
server {
    listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_3;
    location / { return 200 "through\\n"; }
}
CONF
}

# the gateway of the signature tests, signing with KEYFILE
our $SignConf = <<'CONF';
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
    mealapi_route samples.create POST /v1/samples;
    mealapi_query_param samples.create draft "yes|no";
    mealapi_signing_key KEYFILE;
    location / {
        mealapi on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    }
}
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    location / {
        return 200 "$http_x_mealapi_timestamp|$http_x_mealapi_tenant_id|$http_x_mealapi_body_sha256|$http_x_mealapi_signature\n";
    }
}
CONF

sub sign_conf { my $k = shift; return $SignConf =~ s/KEYFILE/$k/r }

# the echoed identity of POST /v1/samples?draft=yes {"title":"Signed"},
# checked with Digest::SHA against the key
sub signature_ok {
    my ($name, $body, $key) = @_;
    chomp $body;
    my ($ts, $tenant, $digest, $sig) = split /\|/, $body;
    $key =~ s/\s+\z//;
    is($digest, sha256_hex('{"title":"Signed"}'), "$name: the body's digest");
    my $msg = join "\n", 'v1', $ts, 'POST', '/v1/samples?draft=yes', $tenant, $digest;
    is($sig, 'v1=' . hmac_sha256_hex($msg, $key), "$name: the HMAC over the documented string");
    ok(abs($ts - time) < 5, "$name: a current timestamp");
    is($tenant, $::TenantA, "$name: the tenant's id");
}

our $TenantA = gateway_fixture();
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
load_module $TEST_NGINX_MODULES/ngx_mealapi_module.so;
CONF

    $block->set_value('http_config', <<'CONF' . ($block->extra_http_config // '')) unless defined $block->http_config;
mealapi_database gw {
    server unix:$TEST_NGINX_PG_SOCKET;
    dbname nutripro;
    user nutripro_gateway;
}
mealapi_registry zone=tenants:1m database=gw;

# the gateway
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1 ssl;
    ssl_certificate $TEST_NGINX_PKI/gateway.crt;
    ssl_certificate_key $TEST_NGINX_PKI/gateway.key;
    ssl_client_certificate $TEST_NGINX_PKI/tenant-ca.crt;
    ssl_verify_client optional_no_ca;

    mealapi_route samples.create     POST /v1/samples;
    mealapi_route samples.list       GET  /v1/samples;
    mealapi_route generations.create POST /v1/generations;
    mealapi_route generations.get    GET  "/v1/generations/{id}";
    mealapi_query_param samples.list page "[0-9]{1,6}";
    mealapi_signing_key $TEST_NGINX_PKI/identity.key;
    mealapi_max_body 4k;

    error_page 495 496 = @refused;
    location @refused { mealapi on; }

    location / {
        mealapi on;
        proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        proxy_ssl_certificate $TEST_NGINX_PKI/gateway-client.crt;
        proxy_ssl_certificate_key $TEST_NGINX_PKI/gateway-client.key;
        proxy_ssl_trusted_certificate $TEST_NGINX_PKI/infra-ca.crt;
        proxy_ssl_verify on;
        proxy_ssl_name localhost;
    }
}

# the backend: the gateway's certificate only, and a valid signature
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 ssl;
    ssl_certificate $TEST_NGINX_PKI/backend.crt;
    ssl_certificate_key $TEST_NGINX_PKI/backend.key;
    ssl_client_certificate $TEST_NGINX_PKI/infra-ca.crt;
    ssl_verify_client on;
    mealapi_signing_key $TEST_NGINX_PKI/identity.key;

    location / {
        mealapi_verify_signature on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        proxy_set_header X-Echo-Signature $mealapi_signature_status;
        proxy_set_header X-Echo-Body $mealapi_body_sha256;
        proxy_set_header X-Echo-Client $ssl_client_s_dn;
    }
}

server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    location / {
        return 200 "uri=$request_uri method=$request_method tenant_id=$http_x_mealapi_tenant_id tenant=$http_x_mealapi_tenant plan=$http_x_mealapi_plan sig=$http_x_echo_signature body=$http_x_echo_body client=$http_x_echo_client evil=$http_x_mealapi_evil$http_x_http_method_override$http_x_original_url$http_x_rewrite_url\n";
    }
}
CONF

    $block->set_value('config', <<'CONF' . ($block->extra_config // '')) unless defined $block->config;
# each client location is another tenant: no TLS session resumed across them
proxy_ssl_session_reuse off;

location /a/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-a.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-a.key;
}
location /b/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-b.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-b.key;
}
location /c/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-c.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-c.key;
}
location /expired/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-expired.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-expired.key;
}
location /foreign/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    proxy_ssl_certificate $TEST_NGINX_PKI/foreign-tenant.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/foreign-tenant.key;
}
location /none/ {
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
}
location /direct/ {
    # straight to the backend, as the gateway would, but unsigned
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_2/;
    proxy_ssl_certificate $TEST_NGINX_PKI/gateway-client.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/gateway-client.key;
}
location /tenant-to-backend/ {
    # a tenant's certificate at the backend: refused by mTLS
    proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_2/;
    proxy_ssl_certificate $TEST_NGINX_PKI/tenant-a.crt;
    proxy_ssl_certificate_key $TEST_NGINX_PKI/tenant-a.key;
}
CONF
});

run_tests();

__DATA__

=== TEST 1: a registered tenant reaches the backend with a signed identity
--- request
GET /a/v1/samples?page=2
--- response_body eval
"uri=/v1/samples?page=2 method=GET tenant_id=$::TenantA tenant=tenant-a plan=standard sig=valid body=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 client=CN=gateway,O=AI Nutrition-Pro dev evil=\n"
--- no_error_log
[error]



=== TEST 2: no client certificate: 401, whatever the path
--- request eval
["GET /none/v1/samples", "GET /none/admin", "DELETE /none/v1/samples"]
--- error_code eval
[401, 401, 401]
--- response_body eval
[qq{{"type":"https://nutripro.example/problems/client-certificate-required","title":"Unauthorized","status":401}\n},
 qq{{"type":"https://nutripro.example/problems/client-certificate-required","title":"Unauthorized","status":401}\n},
 qq{{"type":"https://nutripro.example/problems/client-certificate-required","title":"Unauthorized","status":401}\n}]



=== TEST 3: a certificate from a foreign CA: 401
--- request
GET /foreign/v1/samples
--- error_code: 401
--- response_headers
Content-Type: application/problem+json
WWW-Authenticate: Mutual realm="mealapi"
--- response_body_like: "type":"https://nutripro.example/problems/client-certificate-invalid"
--- error_log
mealapi: refused 401 client-certificate-invalid



=== TEST 4: an expired certificate of a registered tenant: 403
--- request
GET /expired/v1/samples
--- error_code: 403
--- response_body_like: "type":"https://nutripro.example/problems/certificate-expired"
--- error_log
mealapi: refused 403 certificate-expired, tenant "tenant-a"



=== TEST 5: a valid certificate nobody registered: 403, fail closed
--- request
GET /c/v1/samples
--- error_code: 403
--- response_body_like: "type":"https://nutripro.example/problems/unknown-certificate"
--- error_log
mealapi: refused 403 unknown-certificate



=== TEST 6: undeclared routes: 404; declared paths with other methods: 405 + Allow
--- request eval
["GET /a/admin", "GET /a/v1/samples/../../etc/passwd", "DELETE /a/v1/samples",
 "PUT /a/v1/generations/42", "GET /a/v1/generations/", "GET /a/v1/generations/7/x"]
--- error_code eval
[404, 404, 405, 405, 404, 404]
--- response_body_like eval
[qr{route-not-found}, qr{route-not-found}, qr{method-not-allowed},
 qr{method-not-allowed}, qr{route-not-found}, qr{route-not-found}]



=== TEST 7: 405 names the methods the path has
--- request
DELETE /a/v1/samples
--- error_code: 405
--- response_headers
Allow: GET, HEAD, POST



=== TEST 8: path parameters
--- request
GET /a/v1/generations/0c7e4ad2
--- response_body_like: ^uri=/v1/generations/0c7e4ad2 method=GET tenant_id=\d+ tenant=tenant-a



=== TEST 9: a plan's route scope: allowed and refused routes
--- request eval
["GET /b/v1/samples", "POST /b/v1/generations\n{}"]
--- more_headers
Content-Type: application/json
--- error_code eval
[200, 403]
--- response_body_like eval
[qr{tenant=tenant-b plan=test-limited sig=valid},
 qr{"type":"https://nutripro.example/problems/route-not-in-plan"}]



=== TEST 10: spoofed identity headers never reach the backend
--- request
GET /a/v1/samples
--- more_headers
X-Mealapi-Tenant-Id: 999
X-Mealapi-Tenant: tenant-b
x-mealapi-plan: enterprise
X-MEALAPI-Signature: v1=forged
X-Mealapi-Evil: 1
--- response_body_like eval
qr{^uri=/v1/samples method=GET tenant_id=$::TenantA tenant=tenant-a plan=standard sig=valid .* evil=$}
--- error_log
mealapi: removed 5 client-supplied identity or override headers



=== TEST 11: the body's digest is signed
--- request
POST /a/v1/samples
{"title":"Mediterranean week"}
--- more_headers
Content-Type: application/json
--- response_body_like: method=POST tenant_id=\d+ tenant=tenant-a plan=standard sig=valid body=b12118b392f693cf72de38654559db27376cf659aa8f34c5f6c99aa62ae4c481



=== TEST 12: a body over mealapi_max_body: 413 before it is read
--- request eval
"POST /a/v1/samples\n" . ("x" x 5000)
--- error_code: 413
--- response_body_like: "type":"https://nutripro.example/problems/body-too-large"



=== TEST 13: the backend refuses unsigned, forged and stale identities
--- request eval
["GET /direct/v1/samples", "GET /direct/v1/samples", "GET /direct/v1/samples"]
--- more_headers eval
["", "X-Mealapi-Tenant-Id: 1\nX-Mealapi-Timestamp: " . time() . "\nX-Mealapi-Signature: v1=" . ("0" x 64),
 "X-Mealapi-Tenant-Id: 1\nX-Mealapi-Timestamp: 1000\nX-Mealapi-Signature: v1=" . ("0" x 64)]
--- error_code eval
[401, 401, 401]
--- response_body_like eval
[qr{signature-invalid}, qr{signature-invalid}, qr{signature-invalid}]



=== TEST 14: the backend refuses a client that is not the gateway (mTLS)
--- request
GET /tenant-to-backend/v1/samples
--- error_code: 400
--- error_log
client SSL certificate verify error



=== TEST 15: a revoked certificate is refused within a second, without reload
--- request
GET /a/v1/samples
--- nutripro_check
my ($st) = curl_get("$Base/b/v1/samples");
is($st, 200, "$name: served before");
my $t0 = time;
psql("UPDATE tenant_certificates SET status = 'revoked', revoked_at = now() WHERE subject = 'CN=tenant-b'");
my ($st2, $body);
while (time - $t0 < 3) {
    ($st2, $body) = curl_get("$Base/b/v1/samples");
    last if $st2 == 403;
    sleep 0.02;
}
my $dt = time - $t0;
is($st2, 403, "$name: refused after the revocation");
like($body, qr/certificate-revoked/, "$name: as revoked");
ok($dt < 1, "$name: within a second ($dt s)");
gateway_fixture();
--- no_error_log
[error]



=== TEST 16: a suspended tenant is refused within a second, and resumed
--- request
GET /a/v1/samples
--- nutripro_check
my $t0 = time;
psql("UPDATE tenants SET status = 'suspended' WHERE slug = 'tenant-b'");
my ($st, $body);
while (time - $t0 < 3) {
    ($st, $body) = curl_get("$Base/b/v1/samples");
    last if $st == 403;
    sleep 0.02;
}
my $dt = time - $t0;
like($body, qr/tenant-suspended/, "$name: refused as suspended");
ok($dt < 1, "$name: within a second ($dt s)");
psql("UPDATE tenants SET status = 'active' WHERE slug = 'tenant-b'");
$t0 = time;
while (time - $t0 < 3) {
    ($st) = curl_get("$Base/b/v1/samples");
    last if $st == 200;
    sleep 0.02;
}
is($st, 200, "$name: served again after resuming");



=== TEST 17: database down: known tenants still served, unknown refused
--- request
GET /a/v1/samples
--- nutripro_check
pg_ctl('stop');
my ($a) = curl_get("$Base/a/v1/samples");
my ($c, $cb) = curl_get("$Base/c/v1/samples");
pg_ctl('start');
is($a, 200, "$name: tenant-a served from the last good registry");
is($c, 403, "$name: an unknown certificate refused");
--- error_log
LISTEN connection lost



=== TEST 18: the database unreachable from the start: 503 after startup_wait
--- http_config eval
main::fresh_gateway('127.0.0.1:1', '')
--- request
GET /a/v1/samples
--- error_code: 503
--- response_headers
Retry-After: 1
--- response_body_like: registry-unavailable



=== TEST 19: identity headers use the configured prefix
--- http_config
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
    mealapi_identity_prefix X-Nutri-;
    location / {
        mealapi on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    }
}
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    location / {
        return 200 "tenant=$http_x_nutri_tenant spoof=$http_x_nutri_admin\n";
    }
}
--- request
GET /a/v1/samples
--- more_headers
X-Nutri-Admin: yes
--- response_body
tenant=tenant-a spoof=



=== TEST 20: a signing key shorter than 32 bytes fails the configuration
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    mealapi_signing_key ../html/short.key;
}
--- config
--- user_files
>>> short.key
short
--- must_die
--- error_log
is shorter than 32 bytes



=== TEST 21: the signature, verified here with Digest::SHA
--- http_config eval
main::sign_conf('$TEST_NGINX_PKI/identity.key')
--- request
POST /a/v1/samples?draft=yes
{"title":"Signed"}
--- more_headers
Content-Type: application/json
--- nutripro_check
my $key = do { local $/; open my $f, '<', "$ENV{TEST_NGINX_PKI}/identity.key" or die; <$f> };
signature_ok($name, $body, $key);



=== TEST 22: a deleted certificate is refused within a second, by a change
--- request
GET /a/v1/samples
--- nutripro_check
my ($st) = curl_get("$Base/b/v1/samples");
is($st, 200, "$name: served before");
psql("DELETE FROM tenant_certificates WHERE subject = 'CN=tenant-b'");
my ($st2, $body, $dt) = wait_status("$Base/b/v1/samples", 403);
like($body, qr/unknown-certificate/, "$name: unknown once deleted");
ok($dt < 1, "$name: within a second ($dt s)");
ok(wait_log(qr/mealapi registry: changed 1 certificates, 0 tenants, 0 plans: 0 certificates/),
   "$name: only that certificate was asked for");
($st) = curl_get("$Base/a/v1/samples");
is($st, 200, "$name: the other tenants stay");
gateway_fixture();
--- no_error_log
[error]



=== TEST 23: a deleted tenant's certificates are refused within a second
--- request
GET /a/v1/samples
--- nutripro_check
psql("UPDATE tenants SET deleted_at = now() WHERE slug = 'tenant-b'");
my ($st, $body, $dt) = wait_status("$Base/b/v1/samples", 403);
like($body, qr/unknown-certificate/, "$name: unknown once the tenant is deleted");
ok($dt < 1, "$name: within a second ($dt s)");
ok(wait_log(qr/mealapi registry: changed 0 certificates, 1 tenants, 0 plans: 0 certificates/),
   "$name: only that tenant was asked for");
gateway_fixture();
($st) = wait_status("$Base/b/v1/samples", 200);
is($st, 200, "$name: served again once restored");



=== TEST 24: a plan's routes, changed, apply to its tenants within a second
--- request
GET /a/v1/samples
--- nutripro_check
my ($st, $body) = curl_get("$Base/b/v1/generations/42");
is($st, 403, "$name: outside the plan before");
like($body, qr/route-not-in-plan/, "$name: as not in the plan");
psql("UPDATE plans SET routes = '{samples.list,generations.get}' WHERE name = 'test-limited'");
my $dt;
($st, $body, $dt) = wait_status("$Base/b/v1/generations/42", 200);
is($st, 200, "$name: allowed once the plan has the route");
ok($dt < 1, "$name: within a second ($dt s)");
ok(wait_log(qr/mealapi registry: changed 0 certificates, 0 tenants, 1 plans: 1 certificates/),
   "$name: only that plan's certificates were asked for");
psql("UPDATE plans SET routes = '{samples.list}' WHERE name = 'test-limited'");
($st) = wait_status("$Base/b/v1/generations/42", 403);
is($st, 403, "$name: refused again");
--- no_error_log
[error]



=== TEST 25: more changes than one query holds: the whole view, applied in turns
--- request
GET /a/v1/samples
--- nutripro_check
ok(wait_log(qr/mealapi registry: loaded \d+ certificates/), "$name: first load");
psql(<<'SQL');
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after)
SELECT t.id, sha256(convert_to('nutripro test bulk ' || i, 'UTF8')), 'CN=test-bulk', '01',
       now() - interval '1 day', now() + interval '1 day'
FROM tenants t, generate_series(1, 2100) i WHERE t.slug = 'tenant-a'
SQL
ok(wait_log(qr/mealapi registry: loaded (\d{4}) certificates in \d+ ms, applied in 3 turns/),
   "$name: 2100 notifications: one load of the whole view, in three turns");
my ($st) = curl_get("$Base/a/v1/samples");
is($st, 200, "$name: served meanwhile");
psql("DELETE FROM tenant_certificates WHERE subject = 'CN=test-bulk'");
ok(wait_log(qr/mealapi registry: loaded \d{1,3} certificates in \d+ ms, applied in 1 turns/),
   "$name: and swept again");
($st) = curl_get("$Base/b/v1/samples");
is($st, 200, "$name: every tenant served after");
--- no_error_log
[error]
[alert]



=== TEST 26: a path that nginx's normalization changes is refused, never routed
--- request
GET /a/v1/samples
--- nutripro_check
my $port = $ENV{TEST_NGINX_RAND_PORT_1};
my $pki = $ENV{TEST_NGINX_PKI};
my @tls = ('--path-as-is', '--resolve', "localhost:$port:127.0.0.1",
           '--cacert', "$pki/infra-ca.crt");
my @a = (@tls, '--cert', "$pki/tenant-a.crt", '--key', "$pki/tenant-a.key");
my ($st, $body) = curl_get("https://localhost:$port/v1/samples?page=1", @a);
is($st, 200, "$name: the canonical path is served");
like($body, qr{^uri=/v1/samples\?page=1 }, "$name: as sent");
for my $path ('/v1/x/..%2Fsamples', '/v1/x/../samples', '//v1/samples',
              '/v1/./samples', '/v1/%73amples', '/v1/generations/1%2F..%2F..%2Fsamples',
              '/v1/samples%23') {
    ($st, $body) = curl_get("https://localhost:$port$path", @a);
    is($st, 400, "$name: $path refused");
    like($body, qr{problems/path-not-canonical}, "$name: $path as not canonical");
}
($st, $body) = curl_get("https://localhost:$port/v1/x/..%2Fsamples", @tls);
is($st, 401, "$name: without a certificate still 401 first");
--- no_error_log
[error]



=== TEST 27: a signing key of exactly one SHA-256 block (64 bytes)
--- http_config eval
main::sign_conf('../html/block.key')
--- user_files
>>> block.key
0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?
--- request
POST /a/v1/samples?draft=yes
{"title":"Signed"}
--- more_headers
Content-Type: application/json
--- nutripro_check
signature_ok($name, $body, '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?');



=== TEST 28: a signing key longer than a block is hashed first (RFC 2104)
--- http_config eval
main::sign_conf('../html/long.key')
--- user_files eval
">>> long.key\n" . ("k3y-" x 25) . "\n"
--- request
POST /a/v1/samples?draft=yes
{"title":"Signed"}
--- more_headers
Content-Type: application/json
--- nutripro_check
signature_ok($name, $body, "k3y-" x 25);



=== TEST 29: a failed load is retried within seconds, not at the next resync
--- request
GET /a/v1/samples
--- nutripro_check
my ($st) = curl_get("$Base/b/v1/samples");
is($st, 200, "$name: served before");
# the gateway's loads fail while its role may not read the view
psql("REVOKE SELECT ON gateway_registry FROM nutripro_gateway");
psql("UPDATE tenant_certificates SET status = 'revoked', revoked_at = now() WHERE subject = 'CN=tenant-b'");
my $failed = wait_log(qr/mealapi registry: change failed/);
sleep 0.5;
my ($st2) = curl_get("$Base/b/v1/samples");
psql("GRANT SELECT ON gateway_registry TO nutripro_gateway");
ok($failed, "$name: the change failed");
is($st2, 200, "$name: the registry in force stayed meanwhile");
my ($st3, $body, $dt) = wait_status("$Base/b/v1/samples", 403);
like($body, qr/certificate-revoked/, "$name: the revocation arrives once the view is readable");
ok($dt < 3, "$name: within the retry interval ($dt s)");
gateway_fixture();



=== TEST 30: a plan with the longest route list the control plane allows
--- request
GET /a/v1/samples
--- nutripro_check
my $names = CORE::join ',', (map { sprintf("r%03d-", $_) . ('x' x 123) } 1 .. 63), 'samples.list';
psql("UPDATE plans SET routes = '{$names}' WHERE name = 'test-limited'");
ok(wait_log(qr/mealapi registry: changed 0 certificates, 0 tenants, 1 plans: 1 certificates/),
   "$name: the plan's change applied");
my ($st, $body) = curl_get("$Base/b/v1/samples");
psql("UPDATE plans SET routes = '{samples.list}' WHERE name = 'test-limited'");
is($st, 200, "$name: its tenant served (a route list of " . length($names) . " bytes)");
--- no_error_log
[alert]



=== TEST 31: with underscores_in_headers on, X_Mealapi_* is the identity name space too
--- extra_http_config
underscores_in_headers on;
--- request
GET /a/v1/samples
--- more_headers
X_Mealapi_Tenant_Id: 999
X_MEALAPI_EVIL: 1
X-Mealapi_Evil: 2
--- response_body_like eval
qr{^uri=/v1/samples method=GET tenant_id=$::TenantA tenant=tenant-a plan=standard sig=valid .* evil=$}
--- error_log
mealapi: removed 3 client-supplied identity or override headers



=== TEST 32: headers that would override the request line never reach the backend
--- request
GET /a/v1/samples
--- more_headers
X-HTTP-Method-Override: DELETE
X-Original-URL: /admin
x-rewrite-url: /admin
X-Forwarded-For: 192.0.2.1
--- response_body_like eval
qr{^uri=/v1/samples method=GET tenant_id=$::TenantA tenant=tenant-a plan=standard sig=valid .* evil=$}
--- error_log
mealapi: removed 3 client-supplied identity or override headers



=== TEST 33: a database that takes the LISTEN connection and never answers: given up after query_timeout, tried again
--- http_config eval
main::fresh_gateway('127.0.0.1:' . main::silent_pg(), 'query_timeout 300ms;')
--- request
GET /a/v1/samples
--- error_code: 503
--- nutripro_check
my $t0 = time;
my $n = 0;
while (time - $t0 < 5) {
    my $root = $ENV{TEST_NGINX_SERVROOT} || Test::Nginx::Socket::server_root();
    open my $f, '<', "$root/logs/error.log" or last;
    $n = grep { /pgasync "gw": LISTEN nutripro_registry timed out/ } <$f>;
    last if $n >= 2;
    sleep 0.1;
}
ok($n >= 2, "$name: LISTEN timed out, and again after a new connection ($n)");



=== TEST 34: a LISTEN connection whose server stops answering is noticed (listen_check) and replaced
--- http_config eval
main::fresh_gateway('127.0.0.1:' . main::silent_pg(answers => 1),
                    'query_timeout 300ms; listen_check 200ms;')
--- request
GET /a/v1/samples
--- error_code: 503
--- nutripro_check
my $t0 = time;
my ($listening, $timedout) = (0, 0);
while (time - $t0 < 5) {
    my $root = $ENV{TEST_NGINX_SERVROOT} || Test::Nginx::Socket::server_root();
    open my $f, '<', "$root/logs/error.log" or last;
    my @l = <$f>;
    $listening = grep { /pgasync "gw": listening on "nutripro_registry"/ } @l;
    $timedout = grep { /pgasync "gw": LISTEN nutripro_registry timed out/ } @l;
    last if $listening >= 2 && $timedout >= 1;
    sleep 0.1;
}
ok($timedout >= 1, "$name: the check went unanswered ($timedout)");
ok($listening >= 2, "$name: LISTEN in force again on a new connection ($listening)");



=== TEST 35: on a healthy database the LISTEN checks are answered, and reload nothing
--- http_config eval
main::fresh_gateway('unix:$TEST_NGINX_PG_SOCKET', 'listen_check 100ms;')
--- request
GET /a/v1/samples
--- response_body
through
--- nutripro_check
sleep 1;
my ($st) = curl_get("$Base/a/v1/samples");
is($st, 200, "$name: still served");
my $root = $ENV{TEST_NGINX_SERVROOT} || Test::Nginx::Socket::server_root();
open my $f, '<', "$root/logs/error.log" or die $!;
my @l = <$f>;
is(scalar(grep { /listening on "nutripro_registry"/ } @l), 1, "$name: one LISTEN connection");
is(scalar(grep { /mealapi registry: loaded \d+ certificates/ } @l), 1, "$name: one load");
ok(grep({ /pgasync "gw": LISTEN connection lost|timed out/ } @l) == 0, "$name: no check failed");
