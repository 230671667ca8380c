#!/bin/sh
# Builds ngx_mealapi_module.so and ngx_controlplane_module.so against the
# nginx source tree of Debian's nginx-dev (or NGINX_SRC), configured once in
# build/nginx-src; later runs only recompile what changed.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
src=${NGINX_SRC:-/usr/share/nginx/src}
obj=$top/build/nginx-src

if [ ! -x "$src/configure" ]; then
    echo "build: no nginx source tree at $src (apt-get install nginx-dev)" >&2
    exit 1
fi

if [ ! -f "$obj/configure" ]; then
    rm -rf "$obj"
    mkdir -p "$top/build"
    cp -a "$src" "$obj"
fi

# configure again only when the addon's config changed
if [ ! -f "$obj/objs/Makefile" ] || [ "$top/config" -nt "$obj/objs/Makefile" ]
then
    (cd "$obj" && ./configure --with-compat --with-http_ssl_module \
        --with-threads --with-debug --add-dynamic-module="$top" \
        --with-cc-opt="${NUTRIPRO_CC_OPT:--g -O2}" \
        >"$top/build/configure.log" 2>&1) || {
        tail -30 "$top/build/configure.log" >&2
        exit 1
    }
fi

make -s -C "$obj" -f objs/Makefile modules
mkdir -p "$top/build/modules"

# never rewrite a loaded .so in place (running nginx would crash): a new
# file is renamed over the old one
for m in ngx_mealapi_module ngx_controlplane_module; do
    if ! cmp -s "$obj/objs/$m.so" "$top/build/modules/$m.so"; then
        cp "$obj/objs/$m.so" "$top/build/modules/.$m.so.new"
        mv -f "$top/build/modules/.$m.so.new" "$top/build/modules/$m.so"
    fi
done
echo "build: modules in build/modules"
