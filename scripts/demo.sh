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
        -v fp_b="$(fp tenant-b)" -f "$top/scripts/seed-demo.sql" >/dev/null
    sed "s|@TOP@|$top|g" "$top/conf/demo.conf.in" > "$prefix/conf/nginx.conf"
    "$nginx" -p "$prefix" -c conf/nginx.conf -t -q
    "$nginx" -p "$prefix" -c conf/nginx.conf

    for i in $(seq 1 50); do
        curl -s -o /dev/null --cacert "$pki/infra-ca.crt" \
            https://localhost:9443/api/v1/health && break
        sleep 0.1
    done

    cat <<TXT

AI Nutrition-Pro demo is running
  gateway        https://127.0.0.1:8443   (tenants: client certificates)
  control plane  https://127.0.0.1:9443
  backend        https://127.0.0.1:8081   (only the gateway's certificate)
  PostgreSQL     127.0.0.1:15432, socket in build/pg (psql: scripts/pg.sh psql)
  logs           build/demo/logs
  stop           make stop

Try:

# a tenant's request through the gateway to the backend (mTLS both ways)
curl --cacert $pki/infra-ca.crt --cert $pki/tenant-a.crt --key $pki/tenant-a.key \\
     https://localhost:8443/v1/samples

# undeclared routes are refused; no certificate: 401; foreign CA: 401
curl --cacert $pki/infra-ca.crt --cert $pki/tenant-a.crt --key $pki/tenant-a.key \
     https://localhost:8443/admin
curl --cacert $pki/infra-ca.crt https://localhost:8443/v1/samples
curl --cacert $pki/infra-ca.crt --cert $pki/foreign-tenant.crt --key $pki/foreign-tenant.key \
     https://localhost:8443/v1/samples

# revoke tenant-b's certificate in the database: the gateway refuses it within a second
scripts/pg.sh psql -c "UPDATE tenant_certificates SET status = 'revoked', revoked_at = now() WHERE subject = 'CN=tenant-b'"
curl --cacert $pki/infra-ca.crt --cert $pki/tenant-b.crt --key $pki/tenant-b.key \
     https://localhost:8443/v1/samples

# the control plane: database health and the plan catalogue
curl --cacert $pki/infra-ca.crt https://localhost:9443/api/v1/health
curl --cacert $pki/infra-ca.crt 'https://localhost:9443/api/v1/plans?limit=2'

# the backend refuses anyone but the gateway
curl --cacert $pki/infra-ca.crt https://localhost:8081/v1/samples

TXT
    echo "# one request through, now:"
    for i in $(seq 1 30); do
        grep -q "registry: loaded" "$prefix/logs/error.log" && break
        sleep 0.1
    done
    curl -s --cacert "$pki/infra-ca.crt" --cert "$pki/tenant-a.crt" \
        --key "$pki/tenant-a.key" -H 'Content-Type: application/json' \
        -d '{"title":"Mediterranean week","text":"..."}' \
        https://localhost:8443/v1/samples
}

case ${1:-start} in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
