#!/usr/bin/env bash
# Issue 4: what the gateway's identity costs.  Over kept-alive mTLS
# connections, in one run:
#
#   A: the gateway: ssl_verify_client, mealapi on, the API's routes, the
#      registry, identity headers and their signature (no throttle, no
#      validation: no schemas, no query parameters)
#   B: plain: the same TLS server with ssl_verify_client and the same
#      proxy_pass, no module
#
# Target: A's throughput at least 0.95 of B's; p99 latency added by A
# under 100 microseconds.  wrk drives a plain-HTTP front nginx (1 worker,
# access_log off) that proxies to A or B with a tenant's client
# certificate over kept-alive connections (see gateway-identity-lib.sh).
# Two phases: throughput (wrk -t2 -c32: the target's numbers) and latency
# without queueing (wrk -t1 -c1, all processes on one CPU: what one
# request waits for A's work).  Both also report the gateway's CPU time
# per request (from /proc), which is steadier than req/s on 2 CPUs.
# Prints a table and appends a dated record to bench/RESULTS.md.
#
# Environment (all optional):
#   BENCH_TENANTS=8      tenants bench-0001.. (certificates, front pools)
#   BENCH_CONNS=32       wrk -c of the throughput phase
#   BENCH_THREADS=2      wrk -t of the throughput phase
#   BENCH_LAT_CONNS=1    wrk -c of the latency phase (-t1; 0: no such phase)
#   BENCH_SECS=10        seconds per measured run
#   BENCH_ROUNDS=5       rounds per phase (A B, then B A, ...)
#   BENCH_LAT_PIN=1      the latency phase runs wrk and all nginx workers on
#                        the last CPU (0: wherever the scheduler puts them)
#   BENCH_WARMUP=5       seconds of warm-up per variant (not recorded)
#   BENCH_PAUSE=2        seconds of rest after each run
#   BENCH_WORKERS=1      worker_processes of the gateways (front, backend: 1)
#   BENCH_VERIFY=on      ssl_verify_client of both gateways
#   BENCH_TARGET=0.95    required ratio of the median req/s A/B
#   BENCH_P99_TARGET=100 largest p99 added by A, microseconds
#   BENCH_IDLE_WAIT=3600 seconds to wait at most for other benchmarks/tests
#   BENCH_RECORD=1       0: print only
#   BENCH_STRICT=0       1: exit 3 when a target is missed or the run is invalid
#   BENCH_KEEP=0         1: leave the nginx instances and the scratch
#                        database (nutripro_gwbench_identity) at the end
#   BENCH_PROFILE=auto   perf profile of both gateways after the rounds: auto
#                        (when a target is missed), 1 (always), 0 (never)
#   BENCH_NOTE=          free text stored with the record
me=gateway-identity
bench=gateway-identity
source "$(dirname "$0")/gateway-identity-lib.sh"

target=${BENCH_TARGET:-0.95}
p99_target=${BENCH_P99_TARGET:-100}
verify=${BENCH_VERIFY:-on}
case $verify in on|optional|optional_no_ca) ;; *) die "BENCH_VERIFY: on, optional or optional_no_ca" ;; esac
db=nutripro_gwbench_identity
label_a="gateway: routes + registry identity + signed headers"
label_b="plain proxy_pass with ssl_verify_client $verify"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

guard
make_certs
setup_base
scratch_db_create "$db"

gateway_conf() {  # variant port
    local v=$1 port=$2 main body
    if [ "$v" = a ]; then
        main="load_module $so;"
        body="    mealapi_database gw {
        server unix:$pgsock;
        dbname $db;
        user nutripro_gateway;
    }
    mealapi_registry zone=gwbench_registry:8m database=gw;
"
    else
        main="# (variant B: no module)"
        body="    # (variant B: no mealapi_database, no mealapi_registry)
"
    fi
    body+="$(gw_upstream)

    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $pki/gateway.crt;
        ssl_certificate_key $pki/gateway.key;
        ssl_client_certificate $pki/tenant-ca.crt;
        ssl_verify_client $verify;
"
    if [ "$v" = a ]; then
        body+="
        # the API's routes as conf/demo.conf.in declares them, without
        # schemas and query parameters (validation is issue 6)
        mealapi_route samples.create     POST /v1/samples;
        mealapi_route samples.list       GET  /v1/samples;
        mealapi_route generations.create POST /v1/generations cost=5;
        mealapi_route generations.get    GET  \"/v1/generations/{id}\";
        mealapi_signing_key $pki/identity.key;
"
    fi
    body+="
        location / {
$(if [ "$v" = a ]; then echo "            mealapi on;"; fi)
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
    write_inst "$v" "$workers" "$([ "$v" = a ] && echo "$gw_a_st" || echo "$gw_b_st")" warn "$main" "$body"
}

write_backend
gateway_conf a "$gw_a"
gateway_conf b "$gw_b"
write_front
confdiff=$(conf_diff)

wait_pg
pg_start0=$(pg_started)
say "starting backend :$be_port, gateway A :$gw_a, gateway B :$gw_b, front :$front_port (gateways: $workers worker(s))"
for i in backend a b front; do inst_start "$i"; done

# A answers as the tenant, with the digest of the empty body; B plainly
check() {  # variant expected-body
    local v=$1 want=$2 code body i
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
check a "ok bench-0001 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
check b "ok  "
# the gateway is not a pass-through: an undeclared path is refused
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$front_port/a/t/0001/v1/nothing" || true)
[ "$code" = 404 ] || die "variant A: an undeclared route answered $code, not 404"

warm
measure tput "$threads" "$conns"
[ "$lat_conns" -gt 0 ] && measure lat 1 "$lat_conns"

check_problems
report "$target" "$p99_target"
if profile_wanted "$verdict"; then profile_ab 8; fi
if [ "$keep" != 1 ]; then stop_all; fi
[ -n "$problems" ] && verdict="INVALID ($verdict)"

echo
echo "$table"
echo
echo "$summary"
[ -n "$profile_md" ] && { echo "Profile (gateway worker, A vs B):"; echo; echo "$profile_md"; echo; }
[ -n "$problems" ] && echo "$me: run NOT valid: $problems" >&2
echo "logs: build/bench/$bench/{front,a,b,backend}/logs, build/bench/$bench/out"

if [ "$record" = 1 ]; then
    append_record "$(
        record_head "gateway identity cost: routes + registry + signature vs plain mTLS proxy_pass"
        echo "- setup: four nginx instances: wrk -> front (plain HTTP, 1 worker, access_log off; one upstream per tenant and variant: keepalive $conns, client certificate bench-NNNN, $tenants tenants drawn uniformly per request) -> gateway A or B (TLS 1.3, ssl_verify_client $verify against the tenant CA, worker_processes $workers, access_log off) -> backend (\`return 200\`, 1 worker) over kept-alive HTTP; tenants and certificates in a scratch copy of the nutripro schema ($db, dropped afterwards)"
        record_common
        echo
        echo "$table"
        echo
        echo "$summary"
        echo "Verdict: $verdict."
        if [ -n "$profile_md" ]; then
            echo
            echo "Profile of the gateway worker, A vs B (\`$(profile_cmd)\`):"
            echo
            echo "$profile_md"
        fi
    )"
fi

if [ "$strict" = 1 ]; then
    case $verdict in "meets target") ;; *) exit 3 ;; esac
fi
exit 0
