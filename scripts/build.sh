#!/bin/sh
# Builds ngx_mealapi_module.so and ngx_controlplane_module.so against the
# nginx source tree of Debian's nginx-dev (or NGINX_SRC), configured once in
# build/nginx-src; later runs only recompile what changed.
#
#   scripts/build.sh        build/modules (NUTRIPRO_CC_OPT, default -g -O2)
#   scripts/build.sh asan   build/asan/modules, with AddressSanitizer and
#                           UndefinedBehaviorSanitizer, from a second copy of
#                           the tree (make asan; scripts/nginx-asan.sh runs
#                           Debian's nginx with the runtimes preloaded)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
src=${NGINX_SRC:-/usr/share/nginx/src}

case ${1:-} in
'')
    dir=$top/build
    obj=$dir/nginx-src
    ccopt=${NUTRIPRO_CC_OPT:--g -O2}
    ldopt=
    ;;
asan)
    san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    dir=$top/build/asan
    obj=$dir/nginx-src
    ccopt="-g -O1 -fno-omit-frame-pointer $san"
    ldopt=$san
    ;;
*)
    echo "usage: scripts/build.sh [asan]" >&2
    exit 2
    ;;
esac

if [ ! -x "$src/configure" ]; then
    echo "build: no nginx source tree at $src (apt-get install nginx-dev)" >&2
    exit 1
fi

if [ ! -f "$obj/configure" ]; then
    rm -rf "$obj"
    mkdir -p "$dir"
    cp -a "$src" "$obj"
fi

# configure again only when the addon's config changed
if [ ! -f "$obj/objs/Makefile" ] || [ "$top/config" -nt "$obj/objs/Makefile" ]
then
    (cd "$obj" && ./configure --with-compat --with-http_ssl_module \
        --with-threads --with-debug --add-dynamic-module="$top" \
        --with-cc-opt="$ccopt" ${ldopt:+--with-ld-opt="$ldopt"} \
        >"$dir/configure.log" 2>&1) || {
        tail -30 "$dir/configure.log" >&2
        exit 1
    }
fi

make -s -C "$obj" -f objs/Makefile modules
mkdir -p "$dir/modules"

# never rewrite a loaded .so in place (running nginx would crash): a new
# file is renamed over the old one
for m in ngx_mealapi_module ngx_controlplane_module; do
    if ! cmp -s "$obj/objs/$m.so" "$dir/modules/$m.so"; then
        cp "$obj/objs/$m.so" "$dir/modules/.$m.so.new"
        mv -f "$dir/modules/.$m.so.new" "$dir/modules/$m.so"
    fi
done
echo "build: modules in ${dir#$top/}/modules"
