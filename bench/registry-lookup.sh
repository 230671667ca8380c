#!/usr/bin/env bash
# Issue 4: the registry lookup's cost with 100,000 tenants loaded.  In one
# run, two gateways identical but for what their registry holds:
#
#   A: 100,000 extra tenants with one certificate each (rl-000001 ..,
#      random 32-byte fingerprints) + the bench tenants
#   B: the bench tenants only (BENCH_TENANTS, 8 by default)
#
# Both: mealapi on, the API's routes, signing key, no throttle, no
# validation (bench/gateway-identity.sh's variant A), resync=1h (no
# periodic reload in the measured rounds; a reload is timed on its own),
# error_log at info (for the registry's "loaded N certificates" line).
# wrk drives both through the front nginx as the bench tenants (the
# harness of gateway-identity-lib.sh), A and B alternating.
#
# Also reported: the first load's time (nginx start to the "loaded" line,
# and the query time that line gives), the time of a whole load and of a
# one-certificate change (NOTIFY to the "loaded" or "changed" line) and
# how long each stalls a request in flight, and the
# registry zone's use read from its slab allocator (registry-lookup-slab.py).
#
# The tenants live in two scratch databases (schema-only copies of
# nutripro: nutripro_gwbench_rlbig and nutripro_gwbench_rlfew), dropped at
# the end: the 100,000 rows never reach nutripro, whose other gateways
# (the test suite's 1m zones, other benchmarks) would reload them.
#
# Environment: as bench/gateway-identity.sh (BENCH_CONNS, BENCH_SECS,
# BENCH_ROUNDS, ...), and
#   BENCH_REGISTRY_CERTS=100000  extra certificates in A's registry
#   BENCH_ZONE=64m               registry zone size of both
#   BENCH_TARGET=                a required ratio of the median req/s A/B
#                                (none by default: the cost is reported)
#   BENCH_PROFILE=auto           1: perf profile of both gateways after the
#                                rounds (auto: only when BENCH_TARGET is missed)
me=registry-lookup
bench=registry-lookup
source "$(dirname "$0")/gateway-identity-lib.sh"

target=${BENCH_TARGET:-}   # none: the issue asks for the cost, not a bound
big=${BENCH_REGISTRY_CERTS:-100000}
zone=${BENCH_ZONE:-64m}
case $big in ''|*[!0-9]*) die "BENCH_REGISTRY_CERTS must be a number" ;; esac
case $zone in *[0-9]m) zone_bytes=$(( ${zone%m} * 1024 * 1024 )) ;; *) die "BENCH_ZONE: a size in m" ;; esac
db_big=nutripro_gwbench_rlbig
db_few=nutripro_gwbench_rlfew
label_a="$big + $tenants certificates in the registry"
label_b="$tenants certificates in the registry"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

guard
make_certs
setup_base
scratch_db_create "$db_few"
scratch_db_create "$db_big"

wait_quiet   # the insert keeps PostgreSQL busy for seconds: not during others' runs
say "inserting $big tenants and certificates into $db_big"
t0=$(date +%s.%N)
psql_su "$db_big" <<SQL
BEGIN;
-- no NOTIFY per row (nobody listens to this database yet)
SET LOCAL session_replication_role = replica;
INSERT INTO tenants (slug, name, plan_id)
SELECT 'rl-' || lpad(i::text, 6, '0'), 'Registry lookup tenant ' || i,
       (SELECT id FROM plans WHERE name = 'bench')
FROM generate_series(1, $big) i;
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject,
                                 issuer, serial, not_before, not_after)
SELECT t.id, sha256(convert_to(t.slug || ':' || random()::text || ':' || clock_timestamp()::text, 'UTF8')),
       'O=AI Nutrition-Pro bench,CN=' || t.slug,
       'O=AI Nutrition-Pro dev,CN=Tenant CA', to_hex(t.id),
       now() - interval '1 day', now() + interval '365 days'
FROM tenants t WHERE t.slug LIKE 'rl-%';
COMMIT;
ANALYZE;
SQL
insert_secs=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
n_big=$(psql_su "$db_big" -tAc "SELECT count(*) FROM gateway_registry")
n_few=$(psql_su "$db_few" -tAc "SELECT count(*) FROM gateway_registry")
say "$db_big: $n_big certificates (inserted in ${insert_secs}s); $db_few: $n_few"
db_bytes=$(psql_su postgres -tAc "SELECT pg_size_pretty(pg_database_size('$db_big'))")

gateway_conf() {  # variant port status-port database
    local v=$1 port=$2 st=$3 db=$4 body
    body="    mealapi_database gw {
        server unix:$pgsock;
        dbname $db;
        user nutripro_gateway;
    }
    mealapi_registry zone=rl_registry:$zone database=gw resync=1h;
$(gw_upstream)

    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $pki/gateway.crt;
        ssl_certificate_key $pki/gateway.key;
        ssl_client_certificate $pki/tenant-ca.crt;
        ssl_verify_client on;

        mealapi_route samples.create     POST /v1/samples;
        mealapi_route samples.list       GET  /v1/samples;
        mealapi_route generations.create POST /v1/generations cost=5;
        mealapi_route generations.get    GET  \"/v1/generations/{id}\";
        mealapi_signing_key $pki/identity.key;

        location / {
            mealapi on;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
    write_inst "$v" "$workers" "$st" info "load_module $so;" "$body"
}

write_backend
gateway_conf a "$gw_a" "$gw_a_st" "$db_big"
gateway_conf b "$gw_b" "$gw_b_st" "$db_few"
write_front
confdiff=$(conf_diff)

wait_pg
pg_start0=$(pg_started)

# the Nth "loaded" line of an instance, waiting for it (120 s at most)
log_line() {  # instance pattern n
    local i
    for ((i = 0; i < 6000; i++)); do
        l=$(grep "mealapi registry: $2" "$base/$1/logs/error.log" 2>/dev/null | sed -n "$3p")
        [ -n "$l" ] && { echo "$l"; return 0; }
        sleep 0.02
    done
    die "$1: no '$2' line after 120 s"
}
loaded_line() { log_line "$1" 'loaded [0-9]* certificates' "$2"; }  # instance n

say "starting backend :$be_port, front :$front_port, gateway B :$gw_b"
for i in backend front b; do inst_start "$i"; done
loaded_b=$(loaded_line b 1)

wait_quiet
say "starting gateway A :$gw_a: loading its registry"
t0=$(date +%s.%N)
inst_start a
loaded_a=$(loaded_line a 1)
t1=$(date +%s.%N)
load_wall_ms=$(awk -v s="$t0" -v e="$t1" 'BEGIN { printf "%d", (e - s) * 1000 }')
load_cpu_ms=$(( $(inst_ticks a) * 10 ))
load_n=$(echo "$loaded_a" | sed 's/.*loaded \([0-9]*\) certificates.*/\1/')
load_query_ms=$(echo "$loaded_a" | sed 's/.* in \([0-9]*\) ms.*/\1/')
[ "$load_n" = "$n_big" ] || die "A loaded $load_n certificates, not $n_big"
say "A: $loaded_a; wall time from start ${load_wall_ms} ms, CPU of A's processes so far ${load_cpu_ms} ms"

slab() {  # instance: the zone's use
    python3 "$top/bench/registry-lookup-slab.py" "$(worker_pids "$1" | head -1)" "$zone_bytes"
}
slab a >"$out/slab-a.txt"
slab b >"$out/slab-b.txt"
kv() { awk -F= -v k="$2" '$1 == k { sub(/^[^=]*=/, ""); print }' "$out/slab-$1.txt"; }
used_a=$(kv a used_bytes); used_b=$(kv b used_bytes)
say "zone use: A $(( used_a / 1024 )) KiB, B $(( used_b / 1024 )) KiB (of $zone); A's size classes: $(grep '^slot_' "$out/slab-a.txt" | tr '\n' ';')"

check() {  # variant
    local v=$1 code body i want="ok bench-0001 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for ((i = 0; i < 100; i++)); do
        code=$(curl -s -o "$out/check-$v.b" -w '%{http_code}' \
               "http://127.0.0.1:$front_port/$v/t/0001/v1/samples" || true)
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    body=$(cat "$out/check-$v.b" 2>/dev/null || true)
    [ "$code" = 200 ] && [ "$body" = "$want" ] || {
        tail -5 "$base/$v/logs/error.log" >&2 || true
        die "variant ${v^^}: /$v/t/0001/v1/samples answered $code '$body', not 200 '$want'"
    }
}
check a
check b

warm
measure tput "$threads" "$conns"
[ "$lat_conns" -gt 0 ] && measure lat 1 "$lat_conns"

# a load of the whole registry (what every resync, a LISTEN reconnect and
# a notification naming no certificate, tenant or plan do), and a change
# (a NOTIFY naming one certificate): its time, and what it does to
# requests in flight: wrk -t1 -c1 on A for 6 s, the NOTIFY 2 s in; the
# same without a NOTIFY for comparison
reload_probe() {  # none|whole|change logfile
    local pid n payload pattern
    run_wrk a 1 1 6 "$2" &
    pid=$!
    sleep 2
    if [ "$1" != none ]; then
        if [ "$1" = whole ]; then
            payload='bench:UPDATE:0'; pattern='loaded [0-9]* certificates'
        else
            payload="tenant_certificates:UPDATE:$(psql_su "$db_big" -tA -c 'SELECT min(id) FROM tenant_certificates')"
            pattern='changed [0-9]* certificates'
        fi
        n=$(grep -c "mealapi registry: $pattern" "$base/a/logs/error.log" || true)
        r0=$(date +%s.%N); rt0=$(inst_ticks a)
        psql_su "$db_big" -c "SELECT pg_notify('nutripro_registry', '$payload')" >/dev/null
        reload_line=$(log_line a "$pattern" $((n + 1)))
        r1=$(date +%s.%N); rt1=$(inst_ticks a)
    fi
    wait "$pid" || die "wrk failed (reload probe)"
}
maxlat() { awk '/^ +Latency / { print $4; exit }' "$1"; }
wait_quiet
reload_probe none "$out/wrk-reload-without.log"
max_without=$(maxlat "$out/wrk-reload-without.log")
p99_without=$(parse_wrk "$out/wrk-reload-without.log" | cut -d' ' -f4)
for kind in whole change; do
    sleep "$pause"
    wait_quiet
    reload_probe $kind "$out/wrk-reload-$kind.log"
    printf -v "${kind}_wall_ms" '%s' "$(awk -v s="$r0" -v e="$r1" 'BEGIN { printf "%d", (e - s) * 1000 }')"
    printf -v "${kind}_cpu_ms" '%s' "$(( (rt1 - rt0) * 10 ))"
    printf -v "${kind}_line" '%s' "${reload_line#*mealapi registry: }"
    printf -v "${kind}_max" '%s' "$(maxlat "$out/wrk-reload-$kind.log")"
    printf -v "${kind}_p99" '%s' "$(parse_wrk "$out/wrk-reload-$kind.log" | cut -d' ' -f4)"
done
say "whole load: ${whole_wall_ms} ms from NOTIFY to '$whole_line' (A's CPU ${whole_cpu_ms} ms); wrk -c1 max latency ${whole_max} with it, ${max_without} without"
say "change: ${change_wall_ms} ms from NOTIFY to '$change_line' (A's CPU ${change_cpu_ms} ms); wrk -c1 max latency ${change_max}"
slab a >"$out/slab-a-after.txt"

check_problems
report "$target" ""
if profile_wanted "$verdict"; then profile_ab 8; fi
if [ "$keep" != 1 ]; then stop_all; fi
[ -n "$problems" ] && verdict="INVALID ($verdict)"

per_cert=$(awk -v a="$used_a" -v b="$used_b" -v n=$((n_big - n_few)) 'BEGIN { printf "%.0f", (a - b) / n }')
# pages a 32m zone would have: each 4 KiB page also needs its 24-byte
# ngx_slab_page_t, and the pool header and statistics take about a page
fits32=$(awk -v a="$used_a" 'BEGIN { cap = int((32 * 1048576 - 4096) / (4096 + 24));
    printf "%s (%d of about %d pages)", (a / 4096 <= cap) ? "yes" : "no", a / 4096, cap }')
extra="- registry A: $n_big certificates ($big rl-NNNNNN + $n_few bench), inserted in ${insert_secs}s (database $db_bytes); B: $n_few
- first load of A: **${load_wall_ms} ms** from starting nginx to the log line \`${loaded_a#*mealapi registry: }\` (the query: ${load_query_ms} ms); A's processes had used ${load_cpu_ms} ms of CPU by then
- whole load of A (every resync; a NOTIFY that names no certificate, tenant or plan): **${whole_wall_ms} ms** from the NOTIFY to \`${whole_line}\`, A's CPU ${whole_cpu_ms} ms; one request at a time during it (wrk -t1 -c1, 6 s): max latency **${whole_max}** (p99 ${whole_p99} us) vs ${max_without} (p99 ${p99_without} us) without a NOTIFY
- change of one certificate (a NOTIFY \`tenant_certificates:UPDATE:<id>\`, as the schema's triggers send): **${change_wall_ms} ms** from the NOTIFY to \`${change_line}\`, A's CPU ${change_cpu_ms} ms; max latency ${change_max} (p99 ${change_p99} us)
- registry zone ($zone) from its slab allocator: A **$(( used_a / 1024 )) KiB** in use, B $(( used_b / 1024 )) KiB: $per_cert bytes per certificate; A's size classes: $(grep '^slot_' "$out/slab-a.txt" | sed 's/ reqs=[0-9]*//' | tr '\n' ' ')(used/total chunks); allocation failures: $(kv a fails_total) (after the reload: $(awk -F= '$1 == "fails_total" { print $2 }' "$out/slab-a-after.txt")); fits in 32m: $fits32"

echo
echo "$table"
echo
echo "$summary"
echo "$extra"
[ -n "$profile_md" ] && { echo; echo "Profile (gateway worker, A vs B):"; echo; echo "$profile_md"; echo; }
[ -n "$problems" ] && echo "$me: run NOT valid: $problems" >&2
echo "logs: build/bench/$bench/{front,a,b,backend}/logs, build/bench/$bench/out"

if [ "$record" = 1 ]; then
    append_record "$(
        record_head "gateway registry lookup with $big tenants loaded vs $tenants"
        echo "- setup: four nginx instances: wrk -> front (plain HTTP, 1 worker, access_log off; one upstream per tenant and variant: keepalive $conns, client certificate bench-NNNN, $tenants tenants drawn uniformly per request) -> gateway A or B (TLS 1.3, ssl_verify_client on, mealapi on, the API's four routes, signing key, no throttle or validation, mealapi_registry zone=rl_registry:$zone resync=1h, worker_processes $workers, access_log off, error_log info) -> backend (\`return 200\`, 1 worker) over kept-alive HTTP; A's registry from $db_big, B's from $db_few (scratch schema-only copies of nutripro, dropped afterwards)"
        record_common
        echo "- SQL for A's extra tenants (in $db_big, session_replication_role = replica): \`INSERT INTO tenants (slug, name, plan_id) SELECT 'rl-' || lpad(i::text, 6, '0'), 'Registry lookup tenant ' || i, <bench plan> FROM generate_series(1, $big) i\`, then one certificate each, fingerprint \`sha256(slug || random() || clock_timestamp())\`"
        echo "- reload probe: \`$(wrk_cmd a 1 1 6)\`, \`SELECT pg_notify('nutripro_registry', 'bench:UPDATE:0')\` (whole) or \`'tenant_certificates:UPDATE:<min id>'\` (change) in $db_big 2 s in"
        echo
        echo "$table"
        echo
        echo "$summary"
        echo "$extra"
        echo
        echo "Verdict: $verdict$([ -n "$target" ] || echo " (the cost is reported: the gateway CPU per request and the req/s ratio above)")."
        if [ -n "$profile_md" ]; then
            echo
            echo "Profile of the gateway worker, A vs B (\`$(profile_cmd)\`):"
            echo
            echo "$profile_md"
        fi
    )"
fi

if [ "$strict" = 1 ]; then
    case $verdict in "meets target"|"no target") ;; *) exit 3 ;; esac
fi
exit 0
