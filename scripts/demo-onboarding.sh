#!/bin/sh
# The onboarding of a tenant through the control plane's API, step by step,
# against the running demo (scripts/demo.sh start runs it).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
pki=$top/build/pki
demo=$top/build/demo
cp="https://localhost:9443/api/v1"
gw="https://localhost:8443"

field() { sed -n "s/.*\"$1\" *: *\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1; }

say() { printf '\n== %s\n' "$*"; }

login() {
    code=$("$top/build/tools/nutripro-admin" totp --secret "$(cat "$demo/$1.totp")")
    curl -s --cacert "$pki/infra-ca.crt" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$(cat "$demo/$1.password")\",\"totp\":\"$code\"}" \
        "$cp/session" | field token
}

slug="greenleaf-$(date +%s)"

say "1. demo-onboarding logs in (password + TOTP)"
onb=$(login demo-onboarding)
echo "session token: ${onb%????????????????????????????????????????????????????????}... (64 hex)"

say "2. creates the tenant $slug on the standard plan"
curl -s --cacert "$pki/infra-ca.crt" -H "Authorization: Bearer $onb" \
    -H 'Content-Type: application/json' \
    -d "{\"slug\":\"$slug\",\"name\":\"Greenleaf Meal Planner\",\"plan\":\"standard\"}" \
    "$cp/tenants" > "$demo/onboarding.tenant"
cat "$demo/onboarding.tenant"
tid=$(field id < "$demo/onboarding.tenant")

say "3. registers its client certificate (PEM, checked against the tenant CA)"
pem=$(awk 'BEGIN{ORS="\\n"} {print}' "$pki/tenant-c.crt")
curl -s --cacert "$pki/infra-ca.crt" -H "Authorization: Bearer $onb" \
    -H 'Content-Type: application/json' -d "{\"pem\":\"$pem\"}" \
    "$cp/tenants/$tid/certificates" > "$demo/onboarding.cert"
cat "$demo/onboarding.cert"
cid=$(field id < "$demo/onboarding.cert")

say "4. the tenant calls the API through the gateway"
for i in $(seq 1 30); do
    st=$(curl -s -o "$demo/onboarding.call" -w '%{http_code}' \
        --cacert "$pki/infra-ca.crt" --cert "$pki/tenant-c.crt" \
        --key "$pki/tenant-c.key" "$gw/v1/samples")
    [ "$st" = 200 ] && break
    sleep 0.1
done
echo "HTTP $st"; cat "$demo/onboarding.call"

say "5. demo-admin revokes the certificate"
adm=$(login demo-admin)
curl -s --cacert "$pki/infra-ca.crt" -H "Authorization: Bearer $adm" \
    -X POST "$cp/tenants/$tid/certificates/$cid/revoke"

say "6. the gateway refuses it, within a second"
for i in $(seq 1 30); do
    st=$(curl -s -o "$demo/onboarding.call" -w '%{http_code}' \
        --cacert "$pki/infra-ca.crt" --cert "$pki/tenant-c.crt" \
        --key "$pki/tenant-c.key" "$gw/v1/samples")
    [ "$st" = 403 ] && break
    sleep 0.05
done
echo "HTTP $st"; cat "$demo/onboarding.call"

say "7. the audit log recorded every step"
curl -s --cacert "$pki/infra-ca.crt" -H "Authorization: Bearer $adm" \
    "$cp/audit?limit=6" | tr '{' '\n' | sed -n 's/.*"action" *: *"\([^"]*\)".*"target_id" *: *"\([^"]*\)".*/  \1 \2/p'
