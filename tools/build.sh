#!/bin/sh
# Builds the operator tools into DIR (default build/tools):
#   nutripro-admin    bootstrap operators, verify the audit chain, TOTP codes
#   crypto_selftest   TAP self-test of ngx_http_controlplane_crypto.c
# Both compile ngx_controlplane_module/ngx_http_controlplane_crypto.c, the
# same file the module uses.  CC and CFLAGS may be overridden.
#
#   tools/build.sh [DIR]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/tools}
cc=${CC:-gcc}
cflags=${CFLAGS:--g -O2 -Wall -Wextra -Werror -Wpointer-arith}
crypto=$top/ngx_controlplane_module/ngx_http_controlplane_crypto.c
inc="-I$top/ngx_controlplane_module -I/usr/include/postgresql"
# fail on any use of an API deprecated in OpenSSL 3
ssl="-DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED"

mkdir -p "$out"

# shellcheck disable=SC2086
$cc $cflags $ssl $inc -o "$out/crypto_selftest" \
    "$top/tools/crypto_selftest.c" "$crypto" -lcrypto

# shellcheck disable=SC2086
$cc $cflags $ssl $inc -o "$out/nutripro-admin" \
    "$top/tools/nutripro-admin.c" "$crypto" -lpq -lcrypto

echo "tools: built $out/nutripro-admin and $out/crypto_selftest"
