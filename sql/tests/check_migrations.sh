#!/bin/sh
# Applies sql/0*.sql to a fresh throwaway database on a running PostgreSQL
# (>= 15) the way the migration runner does, then checks the privilege
# model, the constraints, the audit chain and the registry NOTIFY.
#
#   PGHOST=/tmp/sqltest PGPORT=25432 PGUSER=postgres sql/tests/check_migrations.sh
#
# PGUSER must be a superuser, and the two application roles must be able to
# connect without a password (trust/peer), as on the dev cluster.
# Exit status: 0 if every check passed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
sqldir=$(dirname "$here")
db=nutripro_check_$$
pass=0
fail=0

psql_as() {     # role, sql -> stdout+stderr of psql (unaligned, tuples only)
    psql -X -q -At -v ON_ERROR_STOP=1 -U "$1" -d "$db" -c "$2" 2>&1
}

is() {          # description, role, sql, expected output
    out=$(psql_as "$2" "$3")
    if [ "$out" = "$4" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        printf 'not ok - %s\n  sql: %s\n  got: %s\n  expected: %s\n' \
               "$1" "$3" "$out" "$4"
    fi
}

ok() {          # description, role, sql
    if out=$(psql_as "$2" "$3"); then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        printf 'not ok - %s\n  sql: %s\n  error: %s\n' "$1" "$3" "$out"
    fi
}

fails() {       # description, role, sql, expected error (grep -E pattern)
    if out=$(psql_as "$2" "$3"); then
        fail=$((fail + 1))
        printf 'not ok - %s (succeeded)\n  sql: %s\n' "$1" "$3"
    elif printf '%s' "$out" | grep -Eq "$4"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        printf 'not ok - %s\n  sql: %s\n  error: %s\n  expected: %s\n' \
               "$1" "$3" "$out" "$4"
    fi
}

cleanup() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
}
trap cleanup EXIT

psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" || exit 1

for f in "$sqldir"/0*.sql; do
    if ! psql -X -q -d "$db" -v ON_ERROR_STOP=1 -1 -f "$f" >/dev/null; then
        echo "not ok - apply $(basename "$f")"
        exit 1
    fi
done
pass=$((pass + 1))

su=$PGUSER
gw=nutripro_gateway
cp=nutripro_controlplane
today="(now() AT TIME ZONE 'UTC')::date"

# --- seed data (superuser) --------------------------------------------------

is "seeded plans" $su \
   "SELECT string_agg(name || ':' || rate_per_sec || ':' || burst || ':' ||
                      coalesce(monthly_quota::text, 'unlimited'), ' '
                      ORDER BY id) FROM plans" \
   "free:1.000:5:10000 standard:10.000:20:1000000 enterprise:100.000:200:unlimited"
is "default plan setting" $su \
   "SELECT value #>> '{}' FROM settings WHERE key = 'default_plan'" "free"

ok "fixture" $su "
    INSERT INTO tenants (slug, name, plan_id)
    VALUES ('tenant-a', 'Tenant A', (SELECT id FROM plans WHERE name = 'standard')),
           ('tenant-b', 'Tenant B', (SELECT id FROM plans WHERE name = 'free'));
    INSERT INTO tenant_certificates
           (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after)
    VALUES (1, sha256('a'), 'CN=tenant-a', '01', now() - interval '1 day',
            now() + interval '1 year'),
           (2, sha256('b'), 'CN=tenant-b', '0a', now() - interval '1 day',
            now() + interval '1 year');"

# --- gateway ----------------------------------------------------------------

is "gateway reads gateway_registry" $gw \
   "SELECT fingerprint || ' ' || tenant_slug || ' ' || plan_name || ' '
           || cert_status || ' ' || tenant_status
      FROM gateway_registry WHERE cert_id = 1" \
   "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb tenant-a standard active active"

for t in operators sessions audit_log audit_chain_head settings plans \
         tenants tenant_certificates
do
    fails "gateway cannot read $t" $gw "SELECT 1 FROM $t LIMIT 1" \
          "permission denied for table $t"
done
fails "gateway cannot update plans" $gw "UPDATE plans SET burst = 1000" \
      "permission denied for table plans"
fails "gateway cannot write audit_log" $gw \
      "INSERT INTO audit_log (action) VALUES ('x.y')" \
      "permission denied for table audit_log"
fails "gateway cannot run audit_verify" $gw "SELECT audit_verify()" \
      "permission denied for function audit_verify"
fails "gateway cannot delete usage" $gw "DELETE FROM usage_daily" \
      "permission denied for table usage_daily"
fails "gateway cannot create tables" $gw "CREATE TABLE evil (x int)" \
      "permission denied for schema public"
fails "gateway cannot create temp tables" $gw "CREATE TEMP TABLE evil (x int)" \
      "permission denied to create temporary tables"

upsert="INSERT INTO usage_daily AS u (tenant_id, day, requests, status_2xx,
                                    refused_rate, bytes_in, bytes_out)
        VALUES (1, $today, 5, 4, 1, 100, 1000), (2, $today, 1, 1, 0, 10, 10)
        ON CONFLICT (tenant_id, day) DO UPDATE
           SET requests = u.requests + EXCLUDED.requests,
               status_2xx = u.status_2xx + EXCLUDED.status_2xx,
               refused_rate = u.refused_rate + EXCLUDED.refused_rate,
               bytes_in = u.bytes_in + EXCLUDED.bytes_in,
               bytes_out = u.bytes_out + EXCLUDED.bytes_out"
ok "gateway upserts usage (insert)" $gw "$upsert"
ok "gateway upserts usage (update)" $gw "$upsert"
ok "gateway upserts with usage_daily.col spelling" $gw \
   "INSERT INTO usage_daily (tenant_id, day, requests) VALUES (1, $today, 2)
    ON CONFLICT (tenant_id, day) DO UPDATE
       SET requests = usage_daily.requests + EXCLUDED.requests"
is "gateway reads this month's usage" $gw \
   "SELECT string_agg(tenant_id || '=' || requests, ' ' ORDER BY tenant_id)
      FROM gateway_usage_month
     WHERE month = date_trunc('month', now() AT TIME ZONE 'UTC')::date" \
   "1=12 2=2"
fails "usage counters cannot go negative" $gw \
      "INSERT INTO usage_daily (tenant_id, day, requests) VALUES (1, '2020-01-01', -1)" \
      "usage_daily_requests_check"
is "gateway statement_timeout default" $gw "SHOW statement_timeout" "5s"

# --- control plane ----------------------------------------------------------

ok "controlplane creates a tenant" $cp \
   "INSERT INTO tenants (slug, name, plan_id)
    SELECT 'tenant-c', 'Tenant C', id FROM plans
     WHERE name = (SELECT value #>> '{}' FROM settings WHERE key = 'default_plan')"
ok "controlplane creates a plan with routes" $cp \
   "INSERT INTO plans (name, rate_per_sec, burst, routes)
    VALUES ('trial', 0.5, 2, '{meal_plan.create,recipes_list}')"
for r in "'{\"a b\"}'" "'{\"a,b\"}'" "ARRAY['ok', NULL]" "'{{a},{b}}'" \
         "'{\"\"}'" "'{\"null\"}'"
do
    fails "plan routes $r rejected" $cp \
          "INSERT INTO plans (name, rate_per_sec, burst, routes) VALUES ('bad', 1, 1, $r)" \
          "plans_routes_check"
done
fails "plan name is a slug" $cp \
      "INSERT INTO plans (name, rate_per_sec, burst) VALUES ('Bad Name', 1, 1)" \
      "plans_name_check"
ok "controlplane creates operators" $cp \
   "INSERT INTO operators (username, role, password_hash)
    VALUES ('Alice', 'admin', '\$argon2id\$x');
    INSERT INTO operators (username, role, password_hash, tenant_id)
    VALUES ('bob', 'tenant_manager', '\$argon2id\$x', 1)"
fails "usernames unique case-insensitively" $cp \
      "INSERT INTO operators (username, role, password_hash) VALUES ('alice', 'admin', 'h')" \
      "operators_username_lower_key"
fails "tenant_manager needs a tenant" $cp \
      "INSERT INTO operators (username, role, password_hash) VALUES ('carol', 'tenant_manager', 'h')" \
      "operators_tenant_scope_check"
fails "only tenant_manager has a tenant" $cp \
      "INSERT INTO operators (username, role, password_hash, tenant_id) VALUES ('carol', 'onboarding', 'h', 1)" \
      "operators_tenant_scope_check"
is "TOTP step accepted once" $cp \
   "UPDATE operators SET totp_last_step = 100 WHERE id = 1 AND totp_last_step < 100;
    UPDATE operators SET totp_last_step = 100 WHERE id = 1 AND totp_last_step < 100
    RETURNING id" ""
ok "controlplane creates a session" $cp \
   "INSERT INTO sessions (operator_id, token_hash, expires_at, client_addr)
    VALUES (1, sha256('token'), now() + interval '1 hour', '127.0.0.1')"
fails "default_plan must name a plan" $cp \
      "UPDATE settings SET value = '\"nope\"' WHERE key = 'default_plan'" \
      "default_plan must be the name of an existing plan"
fails "default plan cannot be deleted" $cp \
      "DELETE FROM plans WHERE name = 'free'" "is the default plan"
ok "controlplane revokes a certificate" $cp \
   "UPDATE tenant_certificates SET status = 'revoked', revoked_at = now() WHERE id = 2"
fails "revocation is final" $cp \
      "UPDATE tenant_certificates SET status = 'active', revoked_at = NULL WHERE id = 2" \
      "cannot be reactivated"
fails "fingerprint is immutable" $cp \
      "UPDATE tenant_certificates SET fingerprint_sha256 = sha256('z') WHERE id = 1" \
      "immutable"
fails "fingerprint is 32 bytes" $cp \
      "INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject, serial, not_before, not_after)
       VALUES (1, '\\x0102', 'CN=x', '02', now(), now() + interval '1 day')" \
      "tenant_certificates_fingerprint_sha256_check"
is "revoked certificate stays in the registry as revoked" $gw \
   "SELECT cert_status FROM gateway_registry WHERE cert_id = 2" "revoked"
ok "controlplane soft-deletes a tenant" $cp \
   "UPDATE tenants SET deleted_at = now() WHERE id = 2"
is "soft-deleted tenant leaves the registry" $gw \
   "SELECT count(*) FROM gateway_registry WHERE tenant_id = 2" "0"
is "controlplane reads usage" $cp \
   "SELECT sum(requests) FROM usage_daily" "14"
fails "controlplane cannot write usage" $cp \
      "UPDATE usage_daily SET requests = 0" "permission denied for table usage_daily"
fails "controlplane cannot read the chain head" $cp \
      "SELECT * FROM audit_chain_head" "permission denied for table audit_chain_head"
fails "controlplane cannot truncate" $cp "TRUNCATE tenants" \
      "permission denied for table tenants"

# --- audit log --------------------------------------------------------------

is "empty audit log verifies" $cp "SELECT audit_verify()" ""
is "controlplane appends to audit_log; trigger sets the chain" $cp \
   "INSERT INTO audit_log (operator_id, operator_username, action,
                           target_type, target_id, client_addr, details)
    VALUES (1, 'Alice', 'auth.login', 'session', '1', '127.0.0.1', '{\"ok\": true}')
    RETURNING id, encode(prev_hash, 'hex') = repeat('00', 32),
              octet_length(row_hash)" \
   "1|t|32"
is "client-supplied chain fields are overwritten" $cp \
   "INSERT INTO audit_log (id, at, action, prev_hash, row_hash)
    VALUES (999, '2000-01-01', 'tenant.create', '\\x00', '\\x00')
    RETURNING id, at > now() - interval '1 minute',
              prev_hash = (SELECT row_hash FROM audit_log WHERE id = 1)" \
   "2|t|t"
ok "multi-row audit insert" $cp \
   "INSERT INTO audit_log (action, details)
    VALUES ('a.one', '{\"n\": 1.50, \"s\": \"\\u00e9\"}'), ('a.two', '{\"b\": [1, {\"z\": null}]}')"
fails "controlplane cannot update audit_log" $cp \
      "UPDATE audit_log SET action = 'x' WHERE id = 1" \
      "permission denied for table audit_log"
fails "controlplane cannot delete audit_log" $cp \
      "DELETE FROM audit_log WHERE id = 1" "permission denied for table audit_log"
fails "superuser update refused by trigger" $su \
      "UPDATE audit_log SET action = 'x' WHERE id = 1" "append-only"
fails "superuser delete refused by trigger" $su \
      "DELETE FROM audit_log" "append-only"
fails "superuser truncate refused by trigger" $su \
      "TRUNCATE audit_log" "append-only"
is "intact chain verifies" $cp "SELECT audit_verify()" ""
is "verification does not depend on TimeZone/DateStyle" $cp \
   "SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'German'; SELECT audit_verify()" ""

is "tampered row is reported" $su \
   "BEGIN;
    SET LOCAL session_replication_role = replica;
    UPDATE audit_log SET details = '{\"ok\": false}' WHERE id = 1;
    RESET session_replication_role;
    SELECT audit_verify();
    ROLLBACK" "1"
is "tampering with DISABLE TRIGGER is reported" $su \
   "BEGIN;
    ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
    UPDATE audit_log SET at = at + interval '1 second' WHERE id = 3;
    SELECT audit_verify();
    ROLLBACK" "3"
is "deleted middle row is reported (next id)" $su \
   "BEGIN;
    SET LOCAL session_replication_role = replica;
    DELETE FROM audit_log WHERE id = 2;
    SELECT audit_verify();
    ROLLBACK" "3"
is "deleted tail is reported (head id)" $su \
   "BEGIN;
    SET LOCAL session_replication_role = replica;
    DELETE FROM audit_log WHERE id = 4;
    SELECT audit_verify();
    ROLLBACK" "4"
is "chain still intact after the rolled-back tampering" $cp \
   "SELECT audit_verify()" ""

# concurrent appends keep one chain
for i in 1 2 3 4 5 6 7 8; do
    psql -X -q -U $cp -d "$db" -c "
        INSERT INTO audit_log (action, details)
        SELECT 'concurrent.insert', jsonb_build_object('n', g)
          FROM generate_series(1, 50) g" >/dev/null 2>&1 &
    psql -X -q -U $cp -d "$db" -c "
        DO \$\$ BEGIN FOR i IN 1 .. 50 LOOP
            INSERT INTO audit_log (action) VALUES ('concurrent.single');
        END LOOP; END \$\$" >/dev/null 2>&1 &
done
wait
is "concurrent appends: all rows present" $cp \
   "SELECT count(*) FROM audit_log" "804"
is "concurrent appends: chain intact" $cp "SELECT audit_verify()" ""

# --- NOTIFY -----------------------------------------------------------------

( (echo "LISTEN nutripro_registry;"; sleep 2; echo "SELECT 1;") \
  | psql -X -q -U $gw -d "$db" >"/tmp/check_migrations_notify.$$" 2>&1 ) &
listener=$!
sleep 1
psql_as $cp "UPDATE tenants SET status = 'suspended' WHERE id = 1;
             UPDATE tenant_certificates SET status = 'revoked', revoked_at = now() WHERE id = 1;
             UPDATE plans SET burst = 21 WHERE name = 'standard'" >/dev/null
wait $listener
for p in tenants:UPDATE:1 tenant_certificates:UPDATE:1 plans:UPDATE:2; do
    if grep -q "payload \"$p\"" "/tmp/check_migrations_notify.$$"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "not ok - NOTIFY nutripro_registry $p"
        cat "/tmp/check_migrations_notify.$$"
    fi
done
rm -f "/tmp/check_migrations_notify.$$"

# --- ownership ----------------------------------------------------------------

is "application roles own nothing" $su \
   "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
     WHERE r.rolname LIKE 'nutripro\\_%'" "0"
if psql -X -q -d "$db" -v ON_ERROR_STOP=1 -1 \
        -f "$sqldir/001_roles.sql" -f "$sqldir/008_privileges.sql" >/dev/null
then
    pass=$((pass + 1))
else
    fail=$((fail + 1))
    echo "not ok - roles and privileges migrations are re-runnable"
fi

echo "passed: $pass, failed: $fail"
[ "$fail" -eq 0 ]
