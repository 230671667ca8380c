#!/bin/sh
# Builds the two modules with AddressSanitizer and UndefinedBehaviorSanitizer
# into build/asan/modules, from a second copy of the nginx source tree
# (build/asan/nginx-src), for `make asan`: the test suite against these
# modules, loaded into Debian's (uninstrumented) nginx with the ASan runtime
# preloaded.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
src=${NGINX_SRC:-/usr/share/nginx/src}
obj=$top/build/asan/nginx-src
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

if [ ! -x "$src/configure" ]; then
    echo "build-asan: no nginx source tree at $src (apt-get install nginx-dev)" >&2
    exit 1
fi

if [ ! -f "$obj/configure" ]; then
    rm -rf "$obj"
    mkdir -p "$top/build/asan"
    cp -a "$src" "$obj"
fi

if [ ! -f "$obj/objs/Makefile" ] || [ "$top/config" -nt "$obj/objs/Makefile" ]
then
    (cd "$obj" && ./configure --with-compat --with-http_ssl_module \
        --with-threads --with-debug --add-dynamic-module="$top" \
        --with-cc-opt="-g -O1 -fno-omit-frame-pointer $san" \
        --with-ld-opt="$san" \
        >"$top/build/asan/configure.log" 2>&1) || {
        tail -30 "$top/build/asan/configure.log" >&2
        exit 1
    }
fi

make -s -C "$obj" -f objs/Makefile modules
mkdir -p "$top/build/asan/modules"

for m in ngx_mealapi_module ngx_controlplane_module; do
    if ! cmp -s "$obj/objs/$m.so" "$top/build/asan/modules/$m.so"; then
        cp "$obj/objs/$m.so" "$top/build/asan/modules/.$m.so.new"
        mv -f "$top/build/asan/modules/.$m.so.new" \
              "$top/build/asan/modules/$m.so"
    fi
done
echo "build-asan: modules in build/asan/modules"
