#!/bin/sh
# make demo / make stop: the whole system on this machine.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
prefix=$top/build/demo
nginx=${NGINX:-/usr/sbin/nginx}
pki=$top/build/pki

stop() {
    if [ -f "$prefix/logs/nginx.pid" ] && kill -0 "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null
    then
        "$nginx" -p "$prefix" -c conf/nginx.conf -s quit 2>/dev/null || true
        for i in $(seq 1 50); do
            [ -f "$prefix/logs/nginx.pid" ] || break
            sleep 0.1
        done
        echo "demo: nginx stopped"
    fi
}

start() {
    stop
    mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/temp"

    # the demo tenants, with their certificates' fingerprints
    fp() {
        openssl x509 -in "$pki/$1.crt" -noout -fingerprint -sha256 \
            | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'
    }
    "$top/scripts/pg.sh" psql -v ON_ERROR_STOP=1 -v fp_a="$(fp tenant-a)" \
        -v fp_b="$(fp tenant-b)" -v fp_c="$(fp tenant-c)" \
        -f "$top/scripts/seed-demo.sql" >/dev/null

    sed "s|@TOP@|$top|g" "$top/conf/demo.conf.in" > "$prefix/conf/nginx.conf"
    "$nginx" -p "$prefix" -c conf/nginx.conf -t -q
    "$nginx" -p "$prefix" -c conf/nginx.conf

    for i in $(seq 1 50); do
        curl -s -o /dev/null --cacert "$pki/infra-ca.crt" \
            https://localhost:9443/api/v1/health && break
        sleep 0.1
    done

    # three operators, one per role (made again on every start)
    admin() {
        PGHOST="$top/build/pg" PGPORT=15432 PGDATABASE=nutripro \
        PGUSER=nutripro_controlplane "$top/build/tools/nutripro-admin" "$@"
    }
    operator() {
        out=$(admin create-operator --username "$1" --role "$2" \
                  ${3:+--tenant "$3"} --totp-key "$pki/totp.key" 2>/dev/null)
        echo "$out" | sed -n 's/^password: *//p' > "$prefix/$1.password"
        echo "$out" | sed -n 's/^totp secret: *//p' > "$prefix/$1.totp"
    }
    operator demo-admin admin
    operator demo-onboarding onboarding
    operator demo-manager tenant_manager tenant-a

    cat <<TXT

AI Nutrition-Pro demo is running
  gateway        https://127.0.0.1:8443   (tenants: client certificates)
  control plane  https://127.0.0.1:9443   (operators: password + TOTP)
  backend        https://127.0.0.1:8081   (only the gateway's certificate)
  PostgreSQL     127.0.0.1:15432, socket in build/pg (psql: scripts/pg.sh psql)
  logs           build/demo/logs
  stop           make stop

Operators (passwords and TOTP secrets in build/demo/<name>.password, .totp):
TXT
    for u in demo-admin demo-onboarding demo-manager; do
        printf '  %-16s password %s  TOTP secret %s\n' "$u" \
            "$(cat "$prefix/$u.password")" "$(cat "$prefix/$u.totp")"
    done

    cat <<TXT

Try:

# a tenant's request through the gateway to the backend (mTLS both ways,
# identity signed; the backend checks the signature)
curl --cacert $pki/infra-ca.crt --cert $pki/tenant-a.crt --key $pki/tenant-a.key \\
     -H 'Content-Type: application/json' \\
     -d '{"title":"Mediterranean week","kind":"meal_plan","language":"en","text":"..."}' \\
     https://localhost:8443/v1/samples

# refused: an invalid body (422), an undeclared route (404), no certificate (401)
curl --cacert $pki/infra-ca.crt --cert $pki/tenant-a.crt --key $pki/tenant-a.key \\
     -H 'Content-Type: application/json' -d '{"title":""}' https://localhost:8443/v1/samples
curl --cacert $pki/infra-ca.crt --cert $pki/tenant-a.crt --key $pki/tenant-a.key \\
     https://localhost:8443/admin
curl --cacert $pki/infra-ca.crt https://localhost:8443/v1/samples

# log in to the control plane (the TOTP code comes from the operator's secret)
CODE=\$(build/tools/nutripro-admin totp --secret \$(cat build/demo/demo-admin.totp))
curl --cacert $pki/infra-ca.crt -H 'Content-Type: application/json' \\
     -d "{\"username\":\"demo-admin\",\"password\":\"\$(cat build/demo/demo-admin.password)\",\"totp\":\"\$CODE\"}" \\
     https://localhost:9443/api/v1/session
TOKEN=...   # "token" from the answer
curl --cacert $pki/infra-ca.crt -H "Authorization: Bearer \$TOKEN" https://localhost:9443/api/v1/tenants
curl --cacert $pki/infra-ca.crt -H "Authorization: Bearer \$TOKEN" https://localhost:9443/api/v1/audit?limit=5
curl --cacert $pki/infra-ca.crt https://localhost:9443/api/v1/health

# the audit chain, verified
PGHOST=$top/build/pg PGPORT=15432 PGDATABASE=nutripro PGUSER=nutripro_controlplane \\
     build/tools/nutripro-admin verify-audit

TXT

    echo "# Now, onboarding a new tenant through the API, as the operators would:"
    "$top/scripts/demo-onboarding.sh"
}


case ${1:-start} in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
