#!/bin/sh
# Dev PKI in build/pki (ECDSA P-256), idempotent: files that exist are kept.
#   tenant-ca          signs tenant client certificates (gateway trusts it)
#   tenant-a, tenant-b client certificates of two tenants
#   tenant-expired     a tenant certificate that expired
#   foreign-ca, foreign-tenant   a client certificate from a CA nobody trusts
#   infra-ca           signs the servers' certificates
#   gateway            the gateway's server certificate (127.0.0.1, localhost)
#   gateway-client     the gateway's client certificate towards the backend
#   backend            the stand-in backend's server certificate
#   controlplane       the control plane's server certificate
#   postgres           PostgreSQL's server certificate
#   identity.key       HMAC key for the signed identity headers
#   totp.key           key encrypting operators' TOTP secrets
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${PKI_DIR:-$top/build/pki}
mkdir -p "$dir"
cd "$dir"

key() {
    [ -f "$1.key" ] || openssl genpkey -algorithm EC \
        -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null
    chmod 600 "$1.key"
}

ca() {
    key "$1"
    [ -f "$1.crt" ] || openssl req -x509 -new -key "$1.key" -days 3650 \
        -subj "/O=AI Nutrition-Pro dev/CN=$2" -out "$1.crt" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# cert NAME CA CN EXTENDED-KEY-USAGE [SAN]
cert() {
    [ -f "$1.crt" ] && return 0
    key "$1"
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=$4"
        [ -n "${5:-}" ] && echo "subjectAltName=$5"
    } > "$1.ext"
    openssl req -new -key "$1.key" -subj "/O=AI Nutrition-Pro dev/CN=$3" \
        -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" \
        -CAcreateserial -days 825 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

# expired NAME CA CN: validity in the past, through "openssl ca"
expired() {
    [ -f "$1.crt" ] && return 0
    key "$1"
    mkdir -p ca-db
    : > ca-db/index.txt
    [ -f ca-db/serial ] || echo 1000 > ca-db/serial
    cat > ca-db/ca.cnf <<CNF
[ca]
default_ca = dev
[dev]
database = $dir/ca-db/index.txt
serial = $dir/ca-db/serial
new_certs_dir = $dir/ca-db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = client
[any]
organizationName = optional
commonName = supplied
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
    openssl req -new -key "$1.key" -subj "/O=AI Nutrition-Pro dev/CN=$3" \
        -out "$1.csr"
    openssl ca -batch -config ca-db/ca.cnf -cert "$2.crt" -keyfile "$2.key" \
        -startdate 20200101000000Z -enddate 20210101000000Z \
        -in "$1.csr" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
}

ca tenant-ca "Tenant CA"
ca foreign-ca "Foreign CA"
ca infra-ca "Infrastructure CA"

cert tenant-a tenant-ca tenant-a clientAuth
cert tenant-b tenant-ca tenant-b clientAuth
cert tenant-c tenant-ca tenant-c clientAuth
expired tenant-expired tenant-ca tenant-expired
cert foreign-tenant foreign-ca tenant-a clientAuth

san="DNS:localhost,IP:127.0.0.1"
cert gateway infra-ca gateway serverAuth "$san"
cert gateway-client infra-ca gateway clientAuth
cert backend infra-ca backend serverAuth "$san"
cert controlplane infra-ca controlplane serverAuth "$san"
cert postgres infra-ca postgres serverAuth "$san"

[ -f identity.key ] || openssl rand -hex 32 > identity.key
[ -f totp.key ] || openssl rand -hex 32 > totp.key
chmod 600 identity.key totp.key

# PostgreSQL reads its key as the postgres user
if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    chown postgres postgres.key
fi

echo "pki: $dir"
