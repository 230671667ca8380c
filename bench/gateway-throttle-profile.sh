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
    valgrind --tool=callgrind --instr-atstart=no \
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
    callgrind_annotate --tree=calling --inclusive=yes --threshold=100 "$f" \
        >"$base/$v/calling.txt" 2>/dev/null
done

python3 - "$base" <<'PY'
import re, sys
base = sys.argv[1]

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+([*>]?)\s*(\S.*?)(?:\s+\((\d[\d,]*)x\))?(?:\s+\[.*\])?\s*$")

def norm(name):
    name = re.sub(r"\s*\[.*\]$", "", name.strip())
    if name.startswith("<counts for unidentified lines in "):
        return name
    return name.split(":", 1)[1] if ":" in name else name

def load(v, kind, dedup):
    """function -> cost; self costs of "file:fn" and "???:fn" add up,
    inclusive ones nest (take the larger)"""
    costs, total = {}, None
    for line in open(f"{base}/{v}/{kind}.txt"):
        m = LINE.match(line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in m.group(3):
            total = n
            continue
        name = norm(m.group(3))
        costs[name] = max(costs.get(name, 0), n) if dedup else costs.get(name, 0) + n
    return total, costs

def callees(v, fn):
    """fn's direct callees (inclusive cost, calls), from --tree=calling"""
    out, cur = {}, None
    for line in open(f"{base}/{v}/calling.txt"):
        m = LINE.match(line)
        if not m:
            if not line.strip():
                cur = None
            continue
        if m.group(2) == "*":
            cur = norm(m.group(3))
            continue
        if m.group(2) == ">" and cur == fn:
            name = norm(m.group(3))
            if name == fn:
                continue
            c, k = out.get(name, (0, 0))
            out[name] = (c + int(m.group(1).replace(",", "")),
                         k + int((m.group(4) or "0").replace(",", "")))
    return out

req = {}
conn = {}
for v in "ab":
    r, c = open(f"{base}/{v}/requests").read().split()
    req[v], conn[v] = int(r), int(c)
ta, sa = load("a", "self", False)
tb, sb = load("b", "self", False)
_, ia = load("a", "inclusive", True)
_, ib = load("b", "inclusive", True)
per = lambda d, v, n: d.get(n, 0) / req[v]

hs = ("ngx_ssl_handshake", "ngx_ssl_shutdown", "ngx_ssl_create_connection")
flush = ("ngx_http_mealapi_usage_tick", "ngx_http_mealapi_usage_done")
pa, pb = ta / req["a"], tb / req["b"]
xa = (ta - sum(ia.get(n, 0) for n in hs)) / req["a"]
xb = (tb - sum(ib.get(n, 0) for n in hs)) / req["b"]
ya = xa - sum(per(ia, "a", n) for n in flush)
yb = xb - sum(per(ib, "b", n) for n in flush)

print()
print("instructions per request, user space, one process (front + gateway + backend):")
print(f"  requests measured: A {req['a']}, B {req['b']}; new connections in the window: A {conn['a']}, B {conn['b']}")
print(f"  all:                                   A {pa:9,.0f}  B {pb:9,.0f}  A-B {pa - pb:+7,.0f} ({100 * (pa - pb) / pb:+.2f} %)")
print(f"  without TLS handshakes/shutdowns:      A {xa:9,.0f}  B {xb:9,.0f}  A-B {xa - xb:+7,.0f} ({100 * (xa - xb) / xb:+.2f} %)")
print(f"  ... and without the usage flush:       A {ya:9,.0f}  B {yb:9,.0f}  A-B {ya - yb:+7,.0f} ({100 * (ya - yb) / yb:+.2f} %)")

fl = callees("a", "ngx_http_mealapi_usage_tick")
nflush = sum(k for n, (c, k) in callees("a", "ngx_pgasync_query").items()) or 0
ticks = ia.get("ngx_http_mealapi_usage_tick", 0) + ia.get("ngx_http_mealapi_usage_done", 0)
print()
print(f"usage flush (A): {ticks:,} instructions in the window (usage_tick + usage_done, inclusive),")
print(f"  = {ticks / req['a']:,.0f} per request at callgrind's {req['a']} requests per window: under callgrind")
print(f"  the flush's fixed cost is spread over ~100x fewer requests than at full speed")
for n, (c, k) in sorted(fl.items(), key=lambda x: -x[1][0])[:6]:
    print(f"    {c:14,}  {k:8,}x  {n}")

print()
print("per request, A - B (inclusive where a function includes its callees):")
rows = [
    ("ngx_http_mealapi_throttle (access phase)", per(ia, "a", "ngx_http_mealapi_throttle") - per(ib, "b", "ngx_http_mealapi_throttle")),
    ("ngx_http_mealapi_log_handler (metering)", per(ia, "a", "ngx_http_mealapi_log_handler") - per(ib, "b", "ngx_http_mealapi_log_handler")),
    ("gateway header filters (2 more header lines)", per(ia, "a", "ngx_http_mealapi_header_filter") - per(ib, "b", "ngx_http_mealapi_header_filter")),
    ("front: ngx_http_parse_header_line (self)", per(sa, "a", "ngx_http_parse_header_line") - per(sb, "b", "ngx_http_parse_header_line")),
    ("SSL_read + SSL_write (more bytes, both ends)", per(ia, "a", "SSL_read") + per(ia, "a", "SSL_write") - per(ib, "b", "SSL_read") - per(ib, "b", "SSL_write")),
]
for label, d in rows:
    print(f"  {d:+8.0f}  {label}")
print(f"  {ya - yb - sum(d for _, d in rows):+8.0f}  the rest (front: header hash/list, proxy copy; allocation; noise)")

print()
print("ngx_http_mealapi_throttle's callees per request (A):")
for n, (c, k) in sorted(callees("a", "ngx_http_mealapi_throttle").items(), key=lambda x: -x[1][0]):
    print(f"  {c / req['a']:8.0f}  {k / req['a']:4.1f} calls  {n}")
print(f"  {per(sa, 'a', 'ngx_http_mealapi_throttle') + per(sa, 'a', '<counts for unidentified lines in ngx_mealapi_module/ngx_http_mealapi_throttle.c>'):8.0f}  self")
print("ngx_http_mealapi_log_handler's callees per request (A):")
for n, (c, k) in sorted(callees("a", "ngx_http_mealapi_log_handler").items(), key=lambda x: -x[1][0]):
    print(f"  {c / req['a']:8.0f}  {k / req['a']:4.1f} calls  {n}")

print()
print("largest differences in self cost per request (A - B):")
names = set(sa) | set(sb)
d = sorted(((per(sa, "a", n) - per(sb, "b", n), n) for n in names), key=lambda x: -abs(x[0]))
for diff, n in d[:20]:
    print(f"  {diff:+8.0f}  {n}")
PY
