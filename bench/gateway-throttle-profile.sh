#!/usr/bin/env bash
# Where throttling + metering cost: the benchmark's two configurations
# (bench/gateway-throttle.sh), each as ONE nginx process (master_process
# off: front, gateway and backend in the same process) under callgrind,
# the same steady load, and the instructions per request compared
# function by function.  Instruction counts do not depend on how busy the
# machine is, which wrk's numbers do; they leave out the kernel, cache
# misses and waiting for locks.  See bench/gateway-throttle.md.
#
# Environment (all optional):
#   PROFILE_CONNS=8       wrk -c (low: one kept-alive connection per tenant)
#   PROFILE_SECS=60       seconds of measured load
#   PROFILE_WARM_ROUNDS=5 warm-up rounds of 30 s at 4 x PROFILE_CONNS, then
#                         one at PROFILE_CONNS (connections still opened in
#                         the measured window are reported, and their TLS
#                         handshakes left out of the "without handshakes"
#                         figures)
#   BENCH_TENANTS=1000
#
# Output: build/bench/throttle-profile/{a,b}/callgrind.out, annotated
# listings next to them, and a table on stdout.
set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

conns=${PROFILE_CONNS:-8}
secs=${PROFILE_SECS:-60}
warm_rounds=${PROFILE_WARM_ROUNDS:-5}
tenants=${BENCH_TENANTS:-1000}
export BENCH_TENANTS=$tenants

nginx=${NGINX:-/usr/sbin/nginx}
base=$top/build/bench/throttle-profile
lua=$top/bench/gateway-throttle.lua

die() { echo "gateway-throttle-profile: $*" >&2; exit 1; }
say() { echo "gateway-throttle-profile: $*"; }

for t in valgrind callgrind_control callgrind_annotate wrk curl python3; do
    command -v "$t" >/dev/null 2>&1 || die "no $t"
done

# certificates, tenants and the two configurations, as the benchmark has them
BENCH_SETUP_ONLY=1 "$top/bench/gateway-throttle.sh"

declare -A vpid
stop_all() {
    local v p i
    for v in a b; do
        p=${vpid[$v]:-}
        [ -n "$p" ] || continue
        kill -QUIT "$p" 2>/dev/null || true
        for ((i = 0; i < 600; i++)); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    done
}
trap 'rc=$?; trap - EXIT; stop_all; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

rm -rf "$base"
mkdir -p "$base/modules"
cp "$top/build/bench/throttle/modules/ngx_mealapi_module.so" "$base/modules/"

for v in a b; do
    mkdir -p "$base/$v/logs" "$base/$v/temp"
    cp -r "$top/build/bench/throttle/$v/conf" "$base/$v/"
    sed -i -e "s|^load_module .*|load_module $base/modules/ngx_mealapi_module.so;|" \
        -e 's|^master_process on;|master_process off;\ndaemon off;|' \
        -e 's|^worker_processes .*|worker_processes 1;|' \
        "$base/$v/conf/nginx.conf"
    port=$(sed -n 's|^ *listen 127.0.0.1:\([0-9]*\);$|\1|p' "$base/$v/conf/nginx.conf" | tail -1)
    echo "$port" >"$base/$v/front.port"
    valgrind --tool=callgrind --collect-atstart=no \
        --callgrind-out-file="$base/$v/callgrind.out" \
        "$nginx" -p "$base/$v" -c conf/nginx.conf \
        >"$base/$v/valgrind.log" 2>&1 &
    vpid[$v]=$!
done

for v in a b; do
    port=$(cat "$base/$v/front.port")
    code=000
    for ((i = 0; i < 600; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -m 30 \
               "http://127.0.0.1:$port/t/0001/v1/samples" || true)
        [ "$code" = 200 ] && break
        sleep 0.5
    done
    [ "$code" = 200 ] || die "variant $v under valgrind answered $code"
done
say "both nginx answer under callgrind (pids ${vpid[a]} ${vpid[b]})"

wrk_run() {  # variant seconds log [connections]
    local port
    port=$(cat "$base/$1/front.port")
    wrk -t1 -c"${4:-$conns}" -d"$2s" -s "$lua" "http://127.0.0.1:$port" >"$3" 2>&1
}
new_conns() {  # variant since-msec: connections the gateway opened since
    awk -v s="$2" '$1 >= s && $3 == 1 { n++ } END { print n + 0 }' \
        "$base/$1/logs/gateway-tenants.log"
}

# warm-up, both variants at once: at 4x the concurrency, so that every
# tenant's pool grows to what the measured load needs (a second connection
# when two of its requests meet), then one round as measured
for ((w = 1; w <= warm_rounds + 1; w++)); do
    c=$((4 * conns)); [ $w -gt "$warm_rounds" ] && c=$conns
    s=$(date +%s.%N)
    wrk_run a 30 "$base/a/warm.log" "$c" & wa=$!
    wrk_run b 30 "$base/b/warm.log" "$c" & wb=$!
    wait $wa $wb
    sleep 2                        # the log buffers (flush=1s)
    say "warm-up $w (-c$c, 30 s): new gateway connections A $(new_conns a "$s"), B $(new_conns b "$s")"
done

# the measured load: collection on, wrk, collection off
for v in a b; do callgrind_control -i on "${vpid[$v]}" >/dev/null; done
s=$(date +%s.%N)
wrk_run a "$secs" "$base/a/wrk.log" & wa=$!
wrk_run b "$secs" "$base/b/wrk.log" & wb=$!
wait $wa $wb
for v in a b; do callgrind_control -i off "${vpid[$v]}" >/dev/null; done
e=$(date +%s.%N)
sleep 2
for v in a b; do
    awk -v s="$s" -v e="$e" '$1 >= s && $1 <= e { n++; if ($3 == 1) c++ }
        END { printf "%d %d\n", n, c }' "$base/$v/logs/gateway-tenants.log" \
        >"$base/$v/requests"
    say "variant $v: $(cut -d' ' -f1 "$base/$v/requests") requests measured, $(cut -d' ' -f2 "$base/$v/requests") new connections"
done

stop_all
vpid=()

for v in a b; do
    f=$(ls "$base/$v"/callgrind.out* | head -1)
    callgrind_annotate --inclusive=yes --threshold=100 "$f" \
        >"$base/$v/inclusive.txt" 2>/dev/null
    callgrind_annotate --inclusive=no --threshold=100 "$f" \
        >"$base/$v/self.txt" 2>/dev/null
done

python3 - "$base" <<'PY'
import re, sys
base = sys.argv[1]

def load(v, kind):
    costs = {}
    total = None
    for line in open(f"{base}/{v}/{kind}.txt"):
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", line)
        if not m:
            m = re.match(r"\s*([\d,]+)\s+(\S.*)$", line)
            if not m:
                continue
        n = int(m.group(1).replace(",", ""))
        name = m.group(2).strip()
        if "PROGRAM TOTALS" in name:
            total = n
            continue
        name = re.sub(r"^.*?:", "", name) if ":" in name else name
        name = re.sub(r"\s*\[.*\]$", "", name)
        costs[name] = costs.get(name, 0) + n
    return total, costs

req = {v: int(open(f"{base}/{v}/requests").read().split()[0]) for v in "ab"}
conn = {v: int(open(f"{base}/{v}/requests").read().split()[1]) for v in "ab"}
ta, sa = load("a", "self")
tb, sb = load("b", "self")
_, ia = load("a", "inclusive")
_, ib = load("b", "inclusive")
pa, pb = ta / req["a"], tb / req["b"]
print()
print(f"instructions per request (user space, whole process: front, gateway, backend):")
print(f"  A {pa:,.0f}   B {pb:,.0f}   A-B {pa - pb:+,.0f} ({100 * (pa - pb) / pb:+.2f} %)")
print(f"  requests measured: A {req['a']}, B {req['b']}; new connections: A {conn['a']}, B {conn['b']}")
hs = ("ngx_ssl_handshake", "ngx_ssl_shutdown", "ngx_ssl_create_connection")
xa = (ta - sum(ia.get(n, 0) for n in hs)) / req["a"]
xb = (tb - sum(ib.get(n, 0) for n in hs)) / req["b"]
print(f"  without TLS handshakes and shutdowns ({', '.join(hs)}, inclusive):")
print(f"  A {xa:,.0f}   B {xb:,.0f}   A-B {xa - xb:+,.0f} ({100 * (xa - xb) / xb:+.2f} %)")
print()
print("largest differences in self cost per request (A - B):")
names = set(sa) | set(sb)
d = sorted(((sa.get(n, 0) / req["a"] - sb.get(n, 0) / req["b"], n) for n in names),
           key=lambda x: -abs(x[0]))
for diff, n in d[:25]:
    print(f"  {diff:+10.0f}  {n}")
print()
print("the module's throttling and metering, inclusive per request (A / B):")
for n in ("ngx_http_mealapi_throttle", "ngx_http_mealapi_tnode_get",
          "ngx_http_mealapi_log_handler", "ngx_http_mealapi_header_filter",
          "ngx_http_mealapi_add_out", "ngx_http_mealapi_usage_tick",
          "ngx_http_mealapi_usage_collect", "ngx_http_mealapi_usage_done",
          "ngx_http_mealapi_usage_clear", "ngx_http_mealapi_quota_load",
          "ngx_http_mealapi_access_handler", "ngx_http_mealapi_identify",
          "ngx_http_mealapi_registry_lookup", "ngx_http_mealapi_sign",
          "ngx_shmtx_lock", "ngx_shmtx_unlock", "ngx_gmtime", "ngx_sprintf",
          "ngx_vslprintf", "ngx_http_log_handler",
          "ngx_http_parse_header_line", "ngx_http_proxy_process_header",
          "ngx_http_header_filter", "SSL_write", "SSL_read"):
    a = ia.get(n, 0) / req["a"]
    b = ib.get(n, 0) / req["b"]
    print(f"  {n:40s} {a:10.0f} {b:10.0f} {a - b:+10.0f}")
PY
