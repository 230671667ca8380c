#!/bin/sh
# nginx with the ASan and UBSan runtimes preloaded, for the modules of
# build/asan/modules (make asan).  Reports go to build/asan/reports.
# detect_odr_violation=0: each dynamic module defines the globals nginx
# generates for it (ngx_modules, ngx_module_names, ngx_module_order), and
# nginx reads each from its own handle.
top=$(cd "$(dirname "$0")/.." && pwd)
reports=$top/build/asan/reports
mkdir -p "$reports"

LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=0:detect_odr_violation=0:fast_unwind_on_malloc=0:verify_asan_link_order=0${NUTRIPRO_ASAN_OPTIONS:+:$NUTRIPRO_ASAN_OPTIONS}"
UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS

exec "${NGINX:-/usr/sbin/nginx}" "$@"
