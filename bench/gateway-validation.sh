#!/usr/bin/env bash
# Issue 6: what input validation costs, end to end.  In one run:
#
#   A: the gateway with validation on: POST /v1/samples is declared with
#      schema=conf/schemas/samples.create.json
#   B: the same gateway and route without schema=
#
# Both identify the tenant, read the body and sign it (X-Mealapi-Body-SHA256
# and the signature); only A parses the JSON and validates it.  The body is
# bench/gateway-validation-body.json (1,150 bytes, every property of the
# schema, valid), Content-Type: application/json.  Target: A's throughput
# at least 0.9 of B's.  The harness (front nginx with the tenants' client
# certificates, kept-alive mTLS, `return 200` backend, alternating rounds)
# is gateway-identity-lib.sh's; see bench/gateway-identity.sh for the
# environment variables (BENCH_CONNS, BENCH_SECS, BENCH_ROUNDS, ...), and:
#
#   BENCH_TARGET=0.9    required ratio of the median req/s A/B
#   BENCH_BODY=bench/gateway-validation-body.json
#   BENCH_KEEP=1 leaves the scratch database nutripro_gwbench_validation
me=gateway-validation
bench=gateway-validation
source "$(dirname "$0")/gateway-identity-lib.sh"

target=${BENCH_TARGET:-0.9}
bodyfile=${BENCH_BODY:-bench/gateway-validation-body.json}
[ -f "$bodyfile" ] || die "no body file $bodyfile"
schema=$top/conf/schemas/samples.create.json
[ -f "$schema" ] || die "no $schema"
db=nutripro_gwbench_validation
label_a="validation on: route with schema="
label_b="validation off: the same route without schema="
wrk_extra_env="BENCH_METHOD=POST BENCH_BODY=$bodyfile"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

guard
make_certs
setup_base
scratch_db_create "$db"

gateway_conf() {  # variant port status-port
    local v=$1 port=$2 st=$3 body create
    if [ "$v" = a ]; then
        create="mealapi_route samples.create     POST /v1/samples schema=$schema;"
    else
        create="mealapi_route samples.create     POST /v1/samples;"
    fi
    body="    mealapi_database gw {
        server unix:$pgsock;
        dbname $db;
        user nutripro_gateway;
    }
    mealapi_registry zone=gwbench_registry:8m database=gw;
$(gw_upstream)

    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $pki/gateway.crt;
        ssl_certificate_key $pki/gateway.key;
        ssl_client_certificate $pki/tenant-ca.crt;
        ssl_verify_client on;

        $create
        mealapi_route samples.list       GET  /v1/samples;
        mealapi_route generations.create POST /v1/generations cost=5;
        mealapi_route generations.get    GET  \"/v1/generations/{id}\";
        mealapi_max_body 64k;
        client_max_body_size 64k;
        mealapi_signing_key $pki/identity.key;

        location / {
            mealapi on;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
    write_inst "$v" "$workers" "$st" warn "load_module $so;" "$body"
}

write_backend
gateway_conf a "$gw_a" "$gw_a_st"
gateway_conf b "$gw_b" "$gw_b_st"
write_front
confdiff=$(conf_diff)

wait_pg
pg_start0=$(pg_started)
say "starting backend :$be_port, gateway A :$gw_a, gateway B :$gw_b, front :$front_port (gateways: $workers worker(s))"
for i in backend a b front; do inst_start "$i"; done

post() {  # variant file: "status body"
    curl -s -o "$out/check-$1.b" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$2" "http://127.0.0.1:$front_port/$1/t/0001/v1/samples" || true
}
sha=$(sha256sum "$bodyfile" | cut -d' ' -f1)
for v in a b; do
    for ((i = 0; i < 100; i++)); do
        code=$(post "$v" "$bodyfile")
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    body=$(cat "$out/check-$v.b" 2>/dev/null || true)
    [ "$code" = 200 ] && [ "$body" = "ok bench-0001 $sha" ] || {
        tail -5 "$base/$v/logs/error.log" >&2 || true
        die "variant ${v^^}: the body answered $code '$body', not 200 'ok bench-0001 $sha'"
    }
done
# a body that breaks the schema: A refuses it (422), B passes it
sed 's/"kind":"meal_plan"/"kind":"poem"/' "$bodyfile" >"$out/invalid.json"
code=$(post a "$out/invalid.json")
[ "$code" = 422 ] || die "variant A passed a body that breaks the schema ($code): validation is not on"
code=$(post b "$out/invalid.json")
[ "$code" = 200 ] || die "variant B refused a body that breaks the schema ($code): validation is on"

warm
measure tput "$threads" "$conns"
[ "$lat_conns" -gt 0 ] && measure lat 1 "$lat_conns"

check_problems
report "$target" ""
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
        record_head "gateway input validation on vs off, POST /v1/samples with a $(wc -c <"$bodyfile")-byte JSON body"
        echo "- setup: four nginx instances: wrk -> front (plain HTTP, 1 worker, access_log off; one upstream per tenant and variant: keepalive $conns, client certificate bench-NNNN, $tenants tenants drawn uniformly per request; the front reads the body, then sends it) -> gateway A or B (TLS 1.3, ssl_verify_client on, mealapi on, the API's four routes, signing key, worker_processes $workers, access_log off) -> backend (\`return 200\`, 1 worker) over kept-alive HTTP; body $bodyfile (valid, sha256 ${sha:0:12}), Content-Type: application/json; tenants in a scratch copy of the nutripro schema ($db, dropped afterwards)"
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
