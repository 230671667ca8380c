# Shared by bench/gateway-identity.sh, bench/gateway-validation.sh and
# bench/registry-lookup.sh (sourced, not run): two gateway variants A and
# B, each its own nginx instance, behind one plain-HTTP front nginx that
# gives every request a tenant's client certificate over kept-alive mTLS
# connections, and one `return 200` backend; wrk drives the front, A and
# B alternately, and the medians of the rounds are compared.
#
#   wrk --HTTP--> front (1 worker) --mTLS, keep-alive--> gateway A | B
#                                         --HTTP, keep-alive--> backend
#
# The front maps /a/t/NNNN/... to gateway A as tenant bench-NNNN and
# /b/t/NNNN/... to gateway B (one upstream, i.e. one keep-alive pool and
# one client certificate, per tenant and variant).  The tenant
# certificates are bench/gateway-throttle.sh's (build/bench/tenants,
# generated the same way when missing); the tenants themselves live in a
# scratch database (a schema-only copy of nutripro), so that nothing here
# changes the shared nutripro database, and nothing the test suite does
# there (NOTIFY -> registry reloads) reaches the measured gateways.
#
# The sourcing script sets `me` (its name) and `bench` (a directory name
# under build/bench), and may set defaults (def_*) before sourcing.

set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

die() { echo "$me: $*" >&2; exit 1; }
say() { echo "$me: $*"; }
warn() { echo "$me: warning: $*" >&2; }

# settings ------------------------------------------------------------------

tenants=${BENCH_TENANTS:-${def_tenants:-8}}
conns=${BENCH_CONNS:-32}
threads=${BENCH_THREADS:-2}
secs=${BENCH_SECS:-10}
rounds=${BENCH_ROUNDS:-5}
warmup=${BENCH_WARMUP:-5}
pause=${BENCH_PAUSE:-2}
workers=${BENCH_WORKERS:-1}
lat_conns=${BENCH_LAT_CONNS:-1}
lat_pin=${BENCH_LAT_PIN:-1}
idle_wait=${BENCH_IDLE_WAIT:-3600}
record=${BENCH_RECORD:-1}
strict=${BENCH_STRICT:-0}
keep=${BENCH_KEEP:-0}
note=${BENCH_NOTE:-}

for n in tenants conns threads secs rounds warmup pause workers lat_conns lat_pin idle_wait; do
    v=${!n}
    case $v in ''|*[!0-9]*) die "$n must be a number, not '$v'" ;; esac
done
[ "$tenants" -ge 1 ] && [ "$tenants" -le 9999 ] || die "BENCH_TENANTS must be 1..9999"
[ "$rounds" -ge 1 ] || die "BENCH_ROUNDS must be at least 1"
[ "$threads" -le "$conns" ] || die "BENCH_THREADS ($threads) > BENCH_CONNS ($conns)"

nginx=${NGINX:-/usr/sbin/nginx}
pki=$top/build/pki
pgdir=$top/build/pg
pgport=${PGPORT_NUTRIPRO:-15432}
pgsock=$pgdir/.s.PGSQL.$pgport
certdir=$top/build/bench/tenants
base=$top/build/bench/$bench
out=$base/out
results=$top/bench/RESULTS.md
lua=$top/bench/gateway-identity.lua

for t in wrk curl openssl psql pg_dump perl awk python3; do
    command -v "$t" >/dev/null 2>&1 || die "no $t (make deps)"
done
[ -x "$nginx" ] || die "no nginx at $nginx"
if [ ! -f "$top/build/modules/ngx_mealapi_module.so" ]; then
    say "no build/modules/ngx_mealapi_module.so: ./scripts/build.sh"
    ./scripts/build.sh
fi
[ -S "$pgsock" ] || die "PostgreSQL is not running (make db)"
for f in tenant-ca.crt tenant-ca.key gateway.crt gateway.key identity.key; do
    [ -f "$pki/$f" ] || die "no $pki/$f (scripts/pki.sh)"
done

# PostgreSQL (as postgres, over the unix socket) ----------------------------

psql_su() {  # database, psql arguments
    local db=$1; shift
    PGOPTIONS='-c client_min_messages=warning' \
        psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$pgport" -U postgres \
        -d "$db" "$@"
}

# the cluster is shared: the test suite restarts it (t/011-pgasync.t)
wait_pg() {
    local i
    for ((i = 0; i < 240; i++)); do
        psql_su postgres -tAc 'SELECT 1' >/dev/null 2>&1 && return 0
        [ $i = 0 ] && say "waiting for PostgreSQL (restarted by someone else?)"
        sleep 0.5
    done
    die "PostgreSQL did not answer for 2 minutes"
}

pg_started() {
    psql_su postgres -tAc 'SELECT pg_postmaster_start_time()' 2>/dev/null || echo "not running"
}

# tenant certificates (bench/gateway-throttle.sh's recipe) -----------------
#
# One P-256 key (bench.key) for all; bench-NNNN.crt signed by the tenant
# CA; bench-NNNN.meta: slug, fingerprint, serial, validity.  Only missing
# files are made; certificates of another CA are not replaced (that is
# gateway-throttle.sh's business): the run stops instead.

gen_one() {  # NNNN, in $certdir
    local n=$1 serial
    serial=$(printf '42454e43%04x%04x%04x' $RANDOM $RANDOM "$((10#$n))")
    openssl x509 -new -force_pubkey bench.pub \
        -subj "/O=AI Nutrition-Pro bench/CN=bench-$n" \
        -CA "$pki/tenant-ca.crt" -CAkey "$pki/tenant-ca.key" \
        -set_serial "0x$serial" -days 825 -extfile bench.ext \
        -out "bench-$n.crt.tmp.$$" 2>/dev/null
    mv "bench-$n.crt.tmp.$$" "bench-$n.crt"
    openssl x509 -in "bench-$n.crt" -noout -fingerprint -sha256 -serial \
        -startdate -enddate | awk -v slug="bench-$n" -F= '
        /Fingerprint/ { fp = tolower($2); gsub(":", "", fp) }
        /^serial/     { serial = $2 }
        /^notBefore/  { nb = $2 }
        /^notAfter/   { na = $2 }
        END { printf "%s\t%s\t%s\t%s\t%s\n", slug, fp, serial, nb, na }' \
        >"bench-$n.meta.tmp.$$"
    mv "bench-$n.meta.tmp.$$" "bench-$n.meta"
}

make_certs() {
    local i n missing=()
    mkdir -p "$certdir"
    (
        cd "$certdir"
        if [ ! -f bench.key ]; then
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                -out bench.key.tmp.$$ 2>/dev/null
            chmod 600 bench.key.tmp.$$
            mv bench.key.tmp.$$ bench.key
            rm -f bench-*.crt bench-*.meta
        fi
        [ -f bench.pub ] || { openssl pkey -in bench.key -pubout -out bench.pub.tmp.$$ && mv bench.pub.tmp.$$ bench.pub; }
        [ -f bench.ext ] || { printf '%s\n' "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=clientAuth" >bench.ext.tmp.$$ && mv bench.ext.tmp.$$ bench.ext; }
        if [ -f bench-0001.crt ] && {
               ! openssl verify -CAfile "$pki/tenant-ca.crt" bench-0001.crt >/dev/null 2>&1 \
               || ! openssl x509 -in bench-0001.crt -noout -checkend 86400 >/dev/null 2>&1; }
        then
            die "build/bench/tenants/bench-0001.crt is of another tenant CA or expires within a day: run bench/gateway-throttle.sh (it regenerates them) or remove build/bench/tenants"
        fi
        for ((i = 1; i <= tenants; i++)); do
            printf -v n '%04d' "$i"
            [ -f "bench-$n.meta" ] && [ -f "bench-$n.crt" ] || missing+=("$n")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            say "generating ${#missing[@]} tenant certificates in build/bench/tenants"
            for n in "${missing[@]}"; do gen_one "$n"; done
        fi
    )
}

# scratch databases ---------------------------------------------------------
#
# A schema-only copy of nutripro (pg_dump -s: tables, views, triggers,
# grants), the plan "bench" (100000 r/s, no quota, every route) and the
# tenants bench-0001..BENCH_TENANTS with their certificates.  Only
# nutripro_gateway (and postgres) may connect.  Dropped at the end.

scratch_dbs=()

scratch_db_create() {  # name
    local db=$1 i n
    wait_pg
    psql_su postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    psql_su postgres -c "CREATE DATABASE $db"
    scratch_dbs+=("$db")
    psql_su postgres -c "REVOKE ALL ON DATABASE $db FROM PUBLIC;
                         GRANT CONNECT ON DATABASE $db TO nutripro_gateway"
    pg_dump -s -h "$pgdir" -p "$pgport" -U postgres nutripro \
        | psql_su "$db" -f - >/dev/null
    {
        cat <<'SQL'
BEGIN;
INSERT INTO plans (name, description, rate_per_sec, burst, monthly_quota, routes)
VALUES ('bench', 'benchmark tenants', 100000, 100000, NULL, NULL);
CREATE TEMP TABLE bench_certs (slug text, fp text, serial text,
                               nb timestamptz, na timestamptz) ON COMMIT DROP;
COPY bench_certs FROM STDIN;
SQL
        for ((i = 1; i <= tenants; i++)); do
            printf -v n '%04d' "$i"
            cat "$certdir/bench-$n.meta"
        done
        cat <<'SQL'
\.
INSERT INTO tenants (slug, name, plan_id)
SELECT slug, 'Benchmark tenant ' || slug, (SELECT id FROM plans WHERE name = 'bench')
FROM bench_certs;
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject,
                                 issuer, serial, not_before, not_after)
SELECT t.id, decode(b.fp, 'hex'), 'O=AI Nutrition-Pro bench,CN=' || b.slug,
       'O=AI Nutrition-Pro dev,CN=Tenant CA', b.serial, b.nb, b.na
FROM bench_certs b JOIN tenants t ON t.slug = b.slug;
COMMIT;
SQL
    } | psql_su "$db" -f - >/dev/null
}

scratch_db_drop_all() {
    local db
    for db in "${scratch_dbs[@]}"; do
        psql_su postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 \
            || warn "could not drop database $db"
    done
    scratch_dbs=()
}

# nginx instances -----------------------------------------------------------

instances=()

inst_pid() { cat "$base/$1/logs/nginx.pid" 2>/dev/null || true; }

inst_stop() {  # instance
    local pid i
    pid=$(inst_pid "$1")
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { rm -f "$base/$1/logs/nginx.pid"; return 0; }
    kill -QUIT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    warn "nginx $1 (master $pid) still running, sending TERM"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

inst_start() {  # instance (without the run's lock: fd 9, see guard)
    "$nginx" -p "$base/$1" -c conf/nginx.conf 9>&- || die "nginx $1 did not start"
}

stop_all() {
    local i
    for ((i = ${#instances[@]} - 1; i >= 0; i--)); do
        inst_stop "${instances[$i]}"
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ "$keep" = 1 ] && [ $rc = 0 ]; then
        say "BENCH_KEEP=1: nginx instances and scratch databases left (${instances[*]}; ${scratch_dbs[*]:-})"
    else
        stop_all
        scratch_db_drop_all
    fi
    exit $rc
}

setup_base() {
    local i
    for i in front a b backend; do   # leftovers of an interrupted run
        inst_stop "$i"
    done
    rm -rf "$base"
    mkdir -p "$base/modules" "$out"
    # a private copy of the module: one run measures one build
    cp "$top/build/modules/ngx_mealapi_module.so" "$base/modules/"
    so=$base/modules/ngx_mealapi_module.so
    sobuilt=$(date -u -r "$top/build/modules/ngx_mealapi_module.so" '+%Y-%m-%d %H:%M:%S UTC')
    sosum=$(sha256sum "$so" | cut -c1-12)
    read -r front_port front_st gw_a gw_a_st gw_b gw_b_st be_port be_st < <(free_ports 8)
}

free_ports() {  # count: distinct free loopback ports
    perl -MIO::Socket::INET -e '
        my @s;
        for (1 .. $ARGV[0]) {
            push @s, IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                           LocalPort => 0, ReuseAddr => 1)
                or die "no free port: $!\n";
        }
        print join(" ", map { $_->sockport } @s), "\n";' "$1"
}

# write_inst INSTANCE WORKERS STATUS-PORT ERROR-LEVEL MAIN-TEXT HTTP-TEXT
write_inst() {
    local i=$1 w=$2 st=$3 lvl=$4 main=$5 body=$6 p=$base/$1
    mkdir -p "$p/conf" "$p/logs" "$p/temp"
    cat >"$p/conf/nginx.conf" <<CONF
# written by bench/$me: $i
$main
master_process on;
worker_processes $w;
worker_rlimit_nofile 16384;
error_log logs/error.log $lvl;
pid logs/nginx.pid;

events {
    worker_connections 8192;
}

http {
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 600s;

    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;

    # counters for the script (accepts = new connections), never measured
    server {
        listen 127.0.0.1:$st;
        location / { stub_status; }
    }

$body
}
CONF
    "$nginx" -p "$p" -c conf/nginx.conf -t -q || die "nginx -t failed for $p/conf/nginx.conf"
    instances+=("$i")
}

# the backend: answers at once, echoing what the gateway added
write_backend() {
    write_inst backend 1 "$be_st" warn "" "    server {
        listen 127.0.0.1:$be_port;
        location / { return 200 \"ok \$http_x_mealapi_tenant \$http_x_mealapi_body_sha256\\n\"; }
    }"
}

# the gateways' way to the backend (keep-alive)
gw_upstream() {
    echo "    upstream backend {"
    echo "        server 127.0.0.1:$be_port;"
    echo "        keepalive 64;"
    echo "        keepalive_requests 1000000;"
    echo "        keepalive_timeout 600s;"
    echo "    }"
}

# the front: plain HTTP for wrk; /a/t/NNNN/ -> gateway A as bench-NNNN,
# /b/t/NNNN/ -> gateway B; keep-alive pools of $conns per tenant, so a
# warmed-up run opens no TLS connection
write_front() {
    local body v port i n
    body="    proxy_http_version 1.1;
    proxy_set_header Connection \"\";
    proxy_ssl_session_reuse off;
    proxy_ssl_certificate_key $certdir/bench.key;
"
    for v in a b; do
        if [ $v = a ]; then port=$gw_a; else port=$gw_b; fi
        for ((i = 1; i <= tenants; i++)); do
            printf -v n '%04d' "$i"
            body+="    upstream ${v}_$n { server 127.0.0.1:$port; keepalive $conns; keepalive_requests 1000000; keepalive_timeout 600s; }
"
        done
    done
    body+="    server {
        listen 127.0.0.1:$front_port;
"
    for v in a b; do
        for ((i = 1; i <= tenants; i++)); do
            printf -v n '%04d' "$i"
            body+="        location /$v/t/$n/ { proxy_pass https://${v}_$n/; proxy_ssl_certificate $certdir/bench-$n.crt; }
"
        done
    done
    body+="        location / { return 404; }
    }"
    write_inst front 1 "$front_st" warn "" "$body"
}

# stub_status of an instance: "accepts requests"
inst_status() {
    local st
    case $1 in
        front) st=$front_st ;; a) st=$gw_a_st ;; b) st=$gw_b_st ;; backend) st=$be_st ;;
    esac
    curl -s "http://127.0.0.1:$st/" | awk 'NR == 3 { print $1, $3 }'
}

# CPU ticks (1/100 s) used so far by an instance, master and workers
inst_ticks() {
    local p c
    p=$(inst_pid "$1")
    [ -n "$p" ] || { echo 0; return; }
    {
        cat "/proc/$p/stat" 2>/dev/null || true
        for c in $(pgrep -P "$p" || true); do cat "/proc/$c/stat" 2>/dev/null || true; done
    } | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

worker_pids() {  # instance
    pgrep -P "$(inst_pid "$1")" || true
}

# the machine ---------------------------------------------------------------

cpu_ticks() { awk '/^cpu / { print $2+$3+$4+$6+$7+$8, $5 }' /proc/stat; }
# process time only (user, nice, system; not irq and softirq, which the
# kernel charges to no process: the loopback traffic of the run itself is
# mostly softirq), for comparing with what the run's processes used
proc_ticks() { awk '/^cpu / { print $2+$3+$4, $5+$6+$7+$8 }' /proc/stat; }
busy_pct() {  # ticks-before ticks-after
    echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2;
        printf "%d", (b + i) ? 100 * b / (b + i) : 0 }'
}

# other people's benchmarks and test runs (not this script, its children
# or the shells that started it); anything else (a valgrind'd nginx, a
# build) counts only through the CPU checks
others_pat='wrk|pgbench|gateway-throttle|bench/run.sh|gateway-identity|gateway-validation|registry-lookup|prove|perf record'
others() {
    local anc=" " p pid q mine cmd
    p=$$
    while [ -n "$p" ] && [ "$p" -gt 1 ]; do
        anc+="$p "
        p=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $2 }')
    done
    for pid in $(pgrep -f "$others_pat" || true); do
        case $anc in *" $pid "*) continue ;; esac
        q=$pid; mine=0
        while [ -n "$q" ] && [ "$q" -gt 1 ]; do
            [ "$q" = $$ ] && { mine=1; break; }
            q=$(sed 's/^.*) //' "/proc/$q/stat" 2>/dev/null | awk '{ print $2 }')
        done
        [ $mine = 1 ] && continue
        cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-120) || continue
        case $cmd in ''|'nginx: '*) continue ;; esac   # nginx (this script's among them)
        printf '%s: %s\n' "$pid" "$cmd"
    done
}

# waits (BENCH_IDLE_WAIT seconds at most, polling every 10 s) until no
# other benchmark or test run is running and the CPUs are quiet; sets
# busy0, waited_total (cumulative) and quiet_failed
waited_total=0
quiet_failed=0
wait_quiet() {
    local waited=0 o t0 t1 last=""
    while :; do
        o=$(others)
        if [ -z "$o" ]; then
            t0=$(cpu_ticks); sleep 2; t1=$(cpu_ticks)
            busy0=$(busy_pct "$t0" "$t1")
            [ "$busy0" -le 20 ] && break
            o="CPUs ${busy0}% busy"
        fi
        if [ "$waited" -ge "$idle_wait" ]; then
            warn "gave up waiting after ${waited}s: $o"
            quiet_failed=1
            busy0=${busy0:-?}
            break
        fi
        if [ "$o" != "$last" ]; then
            say "waiting for other work to finish: $(echo "$o" | head -3 | tr '\n' ';')"
            last=$o
        fi
        sleep 10
        waited=$((waited + 10)); waited_total=$((waited_total + 10))
    done
}

# wrk -----------------------------------------------------------------------

wrk_env() {  # variant: the environment of the wrk script
    echo "BENCH_PREFIX=/$1 BENCH_TENANTS=$tenants${wrk_extra_env:+ $wrk_extra_env}"
}

wrk_cmd() {  # variant threads conns secs [wrapper]
    echo "$(wrk_env "$1") ${5:+$5 }wrk -t$2 -c$3 -d${4}s --latency -s bench/gateway-identity.lua http://127.0.0.1:$front_port"
}

# the latency phase (BENCH_LAT_PIN=1) runs wrk and every nginx worker on
# one CPU: without it, whether a hand-over between two processes wakes the
# other (halted) CPU or not makes the -c1 latency bimodal (40 vs 100 us
# here); on one CPU a request's latency is the CPU time of its path
pin_cpu=$(( $(nproc) - 1 ))
wrk_wrap=
pin_workers() {  # cpu-list
    local i p
    for i in "${instances[@]}"; do
        for p in $(worker_pids "$i"); do taskset -p -c "$1" "$p" >/dev/null || true; done
    done
}
lat_wrap() { [ "$lat_pin" = 1 ] && echo "taskset -c $pin_cpu" || true; }

run_wrk() {  # variant threads conns secs logfile
    env $(wrk_env "$1") $wrk_wrap wrk -t"$2" -c"$3" -d"$4s" --latency -s "$lua" \
        "http://127.0.0.1:$front_port" >"$5" 2>&1 \
        || { cat "$5" >&2; die "wrk failed (variant ${1^^})"; }
}

# "rps avg_us p50_us p99_us non2xx socket_errors" of a wrk log
parse_wrk() {
    awk 'function us(x) { if (x ~ /us$/) return x + 0; if (x ~ /ms$/) return (x + 0) * 1000;
                          if (x ~ /m$/) return (x + 0) * 60e6; if (x ~ /s$/) return (x + 0) * 1e6; return x + 0 }
        /^ +Latency / && !avg { avg = us($2) }
        /^ +50%/ { p50 = us($2) }
        /^ +99%/ { p99 = us($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { se = $0; sub(/^ *Socket errors: */, "", se); gsub(/[ ,]+/, "_", se) }
        END { printf "%s %.0f %.0f %.0f %d %s\n", rps, avg, p50, p99, bad, (se == "" ? "-" : se) }' "$1"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2];
          else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# measure PHASE THREADS CONNS: BENCH_ROUNDS rounds, A and B alternating
# (A B, then B A, ...), each after wait_quiet; a run during which other
# work took more than 10 % of the machine is done again (twice at most).
# Results in the associative arrays R_rps R_avg R_p50 R_p99 R_bad R_se
# R_cpu (front/gw/backend/wrk, % of one core) R_acc (new connections at
# the gateway) R_req (requests at the gateway) R_foreign, keyed PHASE:v:r.
declare -A R_rps R_avg R_p50 R_p99 R_bad R_se R_cpu R_acc R_req R_foreign R_gwus
redone=0
measure() {
    local phase=$1 t=$2 c=$3 r v order try log f0 g0 b0 w0 f1 g1 b1 w1 s0 s1 c0 c1 st0 st1 fp
    if [ "$phase" = lat ] && [ "$lat_pin" = 1 ]; then
        pin_workers "$pin_cpu"
        wrk_wrap=$(lat_wrap)
        say "latency phase: wrk and all nginx workers on CPU $pin_cpu"
    fi
    for ((r = 1; r <= rounds; r++)); do
        if ((r % 2)); then order="a b"; else order="b a"; fi
        for v in $order; do
            for ((try = 0; try < 3; try++)); do
                wait_quiet
                log=$out/wrk-$phase-$v-$r.log
                st0=$(inst_status "$v")
                f0=$(inst_ticks front); g0=$(inst_ticks "$v"); b0=$(inst_ticks backend)
                times >"$out/times.tmp"; w0=$(child_ticks)
                c0=$(proc_ticks); s0=$(date +%s.%N)
                run_wrk "$v" "$t" "$c" "$secs" "$log"
                s1=$(date +%s.%N); c1=$(proc_ticks)
                times >"$out/times.tmp"; w1=$(child_ticks)
                f1=$(inst_ticks front); g1=$(inst_ticks "$v"); b1=$(inst_ticks backend)
                st1=$(inst_status "$v")
                fp=$(echo "$c0 $c1 $((f1 - f0 + g1 - g0 + b1 - b0)) $((w1 - w0))" | awk '{
                    b = $3 - $1; i = $4 - $2; f = b - $5 - $6; if (f < 0) f = 0;
                    printf "%d", (b + i) ? 100 * f / (b + i) : 0 }')
                if [ "$fp" -gt 10 ] && [ $try -lt 2 ]; then
                    say "$phase round $r ${v^^}: other work took ${fp}% of the machine: again"
                    redone=$((redone + 1))
                    sleep "$pause"
                    continue
                fi
                break
            done
            read -r R_rps[$phase:$v:$r] R_avg[$phase:$v:$r] R_p50[$phase:$v:$r] \
                 R_p99[$phase:$v:$r] R_bad[$phase:$v:$r] R_se[$phase:$v:$r] < <(parse_wrk "$log")
            R_cpu[$phase:$v:$r]=$(awk -v s="$s0" -v e="$s1" -v f=$((f1 - f0)) -v g=$((g1 - g0)) \
                -v b=$((b1 - b0)) -v w=$((w1 - w0)) 'BEGIN { d = e - s;
                printf "%d/%d/%d/%d", f / d, g / d, b / d, w / d }')
            R_acc[$phase:$v:$r]=$(( ${st1% *} - ${st0% *} - 1 ))
            R_req[$phase:$v:$r]=$(( ${st1#* } - ${st0#* } - 1 ))
            R_foreign[$phase:$v:$r]=$fp
            # the gateway's CPU time (workers and master) per request it served
            R_gwus[$phase:$v:$r]=$(awk -v g=$((g1 - g0)) -v n="${R_req[$phase:$v:$r]}" \
                'BEGIN { printf "%.1f", ((n > 0) ? g * 10000 / n : 0) }')
            say "$phase round $r ${v^^}: ${R_rps[$phase:$v:$r]} req/s, p50 ${R_p50[$phase:$v:$r]} us, p99 ${R_p99[$phase:$v:$r]} us (CPU % of a core front/gateway/backend/wrk: ${R_cpu[$phase:$v:$r]}; gateway ${R_gwus[$phase:$v:$r]} us per request; others ${fp}% of the machine; new TLS connections ${R_acc[$phase:$v:$r]})"
            sleep "$pause"
        done
    done
    if [ -n "$wrk_wrap" ]; then
        pin_workers "0-$pin_cpu"
        wrk_wrap=
    fi
}

child_ticks() {  # from the output of `times` in $out/times.tmp (this shell's children)
    awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/);
        printf "%d", 100 * (u[1] * 60 + u[2] + s[1] * 60 + s[2]) }' "$out/times.tmp"
}

warm() {  # seconds of wrk per variant at twice the concurrency, not recorded
    local v
    [ "$warmup" -gt 0 ] || return 0
    for v in a b; do
        wait_quiet
        say "warm-up ${v^^}: ${warmup}s at -c$((2 * conns))"
        run_wrk "$v" "$threads" $((2 * conns)) "$warmup" "$out/warmup-$v.log"
    done
}

list_of() {  # ARRAY PHASE VARIANT: the rounds' values
    local -n arr=$1
    local r s=""
    for ((r = 1; r <= rounds; r++)); do s+="${arr[$2:$3:$r]} "; done
    echo "${s% }"
}

med_of() { list_of "$@" | median; }

# "front/gw/backend/wrk" medians over the rounds
cpu_med() {  # phase variant
    local k parts=() r
    for k in 1 2 3 4; do
        parts+=("$(for ((r = 1; r <= rounds; r++)); do echo "${R_cpu[$1:$2:$r]}" | cut -d/ -f$k; done | tr '\n' ' ' | median | cut -d. -f1)")
    done
    echo "${parts[0]}/${parts[1]}/${parts[2]}/${parts[3]}"
}

sum_of() { list_of "$@" | tr ' ' '\n' | awk '{ s += $1 } END { print s + 0 }'; }

# problems found in the logs and wrk outputs; sets problems
check_problems() {
    local v k n f
    problems=
    for k in "${!R_bad[@]}"; do
        [ "${R_bad[$k]}" != 0 ] && problems+="; wrk saw ${R_bad[$k]} non-2xx responses ($k)"
        [ "${R_se[$k]}" != - ] && problems+="; wrk socket errors ($k): ${R_se[$k]//_/ }"
    done
    for v in front a b backend; do
        f=$base/$v/logs/error.log
        n=$(grep -c 'exited on signal' "$f" || true)
        [ "$n" != 0 ] && problems+="; $v: $n worker crash(es)"
        n=$(grep -c '\[\(error\|crit\|alert\|emerg\)\]' "$f" || true)
        [ "$n" != 0 ] && problems+="; $v: $n error-log lines of level error or worse"
    done
    [ "$pg_start0" != "$(pg_started)" ] && problems+="; PostgreSQL restarted during the run"
    [ "$quiet_failed" = 1 ] && problems+="; other benchmarks or tests were still running (waited ${idle_wait}s)"
    for k in "${!R_foreign[@]}"; do
        [ "${R_foreign[$k]}" -gt 10 ] && problems+="; other work took ${R_foreign[$k]}% of the machine during $k"
    done
    problems=${problems#; }
}

# the record's common lines
record_head() {  # title
    local cpu srvver ngxver rev dirty
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    srvver=$(psql_su postgres -tAc 'SHOW server_version' 2>/dev/null || true)
    ngxver=$("$nginx" -v 2>&1 | sed 's/^nginx version: //')
    rev=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$top" status --porcelain -- common ngx_mealapi_module 2>/dev/null | head -1)
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC'): $1 (bench/$me)"
    echo
    echo "- machine: nproc $(nproc), ${cpu:-unknown CPU}, $(uname -sm)"
    echo "- software: $ngxver, $(openssl version | cut -d' ' -f1-2), PostgreSQL $srvver, $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
    echo "- source: $rev${dirty:+ (uncommitted changes in the module sources)}; ngx_mealapi_module.so built $sobuilt, sha256 $sosum"
}

# results -------------------------------------------------------------------
#
# report RATIO-TARGET P99-TARGET-US (empty: none): sets table (markdown),
# summary (lines), ratio, add_p99, verdict (for the record and the exit
# status); uses label_a and label_b.
report() {
    local rt=$1 pt=$2 phase t c v lab pairs r ma mb pa pb la lb ok
    table=
    summary=
    verdict="meets target"
    for phase in tput lat; do
        if [ $phase = tput ]; then t=$threads; c=$conns; else t=1; c=$lat_conns; fi
        [ "$c" -gt 0 ] || continue
        table+="
| wrk | variant | req/s per round | median req/s | p99 per round (us) | median p99 (us) | median p50 (us) | CPU, % of one core: front/gateway/backend/wrk | gateway CPU per request (us) | new TLS connections at the gateway |
| --- | --- | --- | ---: | --- | ---: | ---: | --- | ---: | ---: |
"
        for v in a b; do
            if [ $v = a ]; then lab=$label_a; else lab=$label_b; fi
            table+="| $([ $v = a ] && echo "wrk -t$t -c$c") | ${v^^}: $lab | $(list_of R_rps $phase $v) | $(med_of R_rps $phase $v) | $(list_of R_p99 $phase $v) | $(med_of R_p99 $phase $v | cut -d. -f1) | $(med_of R_p50 $phase $v | cut -d. -f1) | $(cpu_med $phase $v) | $(printf '%.1f' "$(med_of R_gwus $phase $v)") | $(sum_of R_acc $phase $v) |
"
        done
        ma=$(med_of R_rps $phase a); mb=$(med_of R_rps $phase b)
        pa=$(med_of R_p99 $phase a); pb=$(med_of R_p99 $phase b)
        la=$(med_of R_p50 $phase a); lb=$(med_of R_p50 $phase b)
        pairs=$(for ((r = 1; r <= rounds; r++)); do
                    awk -v a="${R_rps[$phase:a:$r]}" -v b="${R_rps[$phase:b:$r]}" 'BEGIN { printf "%.3f ", a / b }'
                done)
        local rr ap ad
        rr=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", a / b }')
        ap=$(awk -v a="$pa" -v b="$pb" 'BEGIN { printf "%d", a - b }')
        ad=$(awk -v a="$la" -v b="$lb" 'BEGIN { printf "%d", a - b }')
        local ga gb
        ga=$(med_of R_gwus $phase a); gb=$(med_of R_gwus $phase b)
        if [ $phase = tput ]; then
            ratio=$rr; add_p99=$ap
            if [ -n "$rt" ]; then
                ok=$(awk -v r="$rr" -v t="$rt" 'BEGIN { print (r >= t) ? "meets" : "BELOW" }')
                [ "$ok" = meets ] || verdict="BELOW target"
                summary+="- wrk -t$t -c$c (throughput): ratio A/B of the median req/s **$rr** (per round: ${pairs% }), target >= $rt: $ok target
"
            else
                verdict="no target"
                summary+="- wrk -t$t -c$c (throughput): ratio A/B of the median req/s **$rr** (per round: ${pairs% })
"
            fi
            if [ -n "$pt" ]; then
                ok=$(awk -v a="$ap" -v t="$pt" 'BEGIN { print (a < t) ? "meets" : "BELOW" }')
                [ "$ok" = meets ] || verdict="BELOW target"
                summary+="- wrk -t$t -c$c: p99 added by A = median p99(A) - median p99(B) = $(printf '%.0f' "$pa") - $(printf '%.0f' "$pb") = **$ap us** (p50: $ad us), target < $pt us: $ok target
"
            else
                summary+="- wrk -t$t -c$c: median p99 A $(printf '%.0f' "$pa") us, B $(printf '%.0f' "$pb") us: A - B = $ap us (p50: $ad us)
"
            fi
        else
            summary+="- wrk -t1 -c$c (latency without queueing$([ "$lat_pin" = 1 ] && echo ", wrk and all nginx workers on CPU $pin_cpu")): median p99 A $(printf '%.0f' "$pa") us, B $(printf '%.0f' "$pb") us: A - B = **$ap us** (p50: $ad us); req/s ratio $rr (per round: ${pairs% })
"
        fi
        summary+="  - gateway CPU time per request (workers + master, /proc ticks / requests served), medians: A $(printf '%.1f' "$ga") us, B $(printf '%.1f' "$gb") us: A - B = $(awk -v a="$ga" -v b="$gb" 'BEGIN { printf "%+.1f", a - b }') us
"
    done
    table=${table#$'\n'}
}

record_common() {  # the lines after record_head: setup, differences, commands, CPU, validity
    local v phase t c
    echo "- rounds: warm-up ${warmup}s per variant at -c$((2 * conns)) (not recorded); then $rounds rounds per phase, A B / B A alternating, ${secs}s each, ${pause}s rest after each run; each run after a check that no other benchmark or test run is running and the CPUs are under 20 % busy (waited ${waited_total}s in all; runs redone because other work took over 10 % of the machine: $redone)"
    echo "- commands (A, B):"
    for phase in tput lat; do
        if [ $phase = tput ]; then t=$threads; c=$conns; else t=1; c=$lat_conns; fi
        [ "$c" -gt 0 ] || continue
        for v in a b; do
            echo "  - \`$(wrk_cmd $v $t $c "$secs" "$([ $phase = lat ] && lat_wrap)")\`"
        done
    done
    echo "- A and B differ only in (ports aside):"
    echo "$confdiff" | sed 's/^/  - `/; s/$/`/'
    [ -n "$note" ] && echo "- note: $note"
    if [ -n "$problems" ]; then echo "- valid: NO: $problems"; else echo "- valid: yes"; fi
}

# what differs between gateway A's and B's configuration, ports aside
conf_diff() {
    diff <(sed "s/$gw_a_st/STATUS/; s/$gw_a/PORT/; s/: a$/: X/" "$base/a/conf/nginx.conf") \
         <(sed "s/$gw_b_st/STATUS/; s/$gw_b/PORT/; s/: b$/: X/" "$base/b/conf/nginx.conf") \
        | grep '^[<>]' | sed 's/^< /A: /; s/^> /B: /; s/  */ /g; s/`/'"'"'/g' || true
}

append_record() {  # text
    [ -f "$results" ] || printf '# Benchmark results\n' >"$results"
    printf '%s\n' "$1" >>"$results"
    say "recorded in bench/RESULTS.md"
}

# profiling -----------------------------------------------------------------
#
# profile_ab SECONDS: `perf record` (cpu-clock, DWARF call graphs) on each
# gateway's (first) worker while wrk drives it as in the throughput phase;
# the requests it served meanwhile from stub_status; listings in $out
# (perf-{a,b}-self.txt, perf-{a,b}-children.txt; perf-{a,b}.data) and the comparison
# (gateway-identity-perf.py) in profile_md.  BENCH_PROFILE: auto (when a
# target is missed), 1 (always), 0 (never).
profile=${BENCH_PROFILE:-auto}
profile_hz=${BENCH_PROFILE_HZ:-999}
profile_md=
declare -A preq
profile_wanted() {  # verdict
    case $profile in
        1) return 0 ;;
        0) return 1 ;;
        *) case $1 in "meets target"|"no target") return 1 ;; *) return 0 ;; esac ;;
    esac
}
profile_ab() {
    local psecs=${1:-8} v pid wpid st0 st1
    if ! command -v perf >/dev/null 2>&1; then
        profile_md="(no perf: not profiled)"
        return 0
    fi
    for v in a b; do
        wait_quiet
        pid=$(worker_pids "$v" | head -1)
        say "profiling ${v^^} (worker $pid): perf record -F $profile_hz -e cpu-clock --call-graph dwarf for ${psecs}s under wrk -t$threads -c$conns"
        run_wrk "$v" "$threads" "$conns" $((psecs + 3)) "$out/wrk-profile-$v.log" &
        wpid=$!
        sleep 1
        st0=$(inst_status "$v")
        perf record -F "$profile_hz" -e cpu-clock --call-graph dwarf,8192 -p "$pid" \
            -o "$out/perf-$v.data" -- sleep "$psecs" >"$out/perf-record-$v.log" 2>&1 \
            || { warn "perf record failed: $(tail -2 "$out/perf-record-$v.log")"; profile_md="(perf record failed)"; wait "$wpid" || true; return 0; }
        st1=$(inst_status "$v")
        wait "$wpid" || die "wrk failed (profile)"
        preq[$v]=$(( ${st1#* } - ${st0#* } - 1 ))
    done
    for v in a b; do
        perf report -i "$out/perf-$v.data" -n --stdio --no-children --sort dso,sym -g none \
            >"$out/perf-$v-self.txt" 2>/dev/null || true
        perf report -i "$out/perf-$v.data" -n --stdio --children --sort dso,sym -g none \
            >"$out/perf-$v-children.txt" 2>/dev/null || true
    done
    profile_md=$(python3 "$top/bench/gateway-identity-perf.py" "$profile_hz" \
        "${preq[a]}" "$out/perf-a-self.txt" "$out/perf-a-children.txt" \
        "${preq[b]}" "$out/perf-b-self.txt" "$out/perf-b-children.txt") \
        || profile_md="(comparison failed; listings in build/bench/$bench/out/perf-*.txt)"
}
profile_cmd() {
    echo "perf record -F $profile_hz -e cpu-clock --call-graph dwarf,8192 -p <gateway worker> -- sleep 8 (under wrk -t$threads -c$conns), perf report -n --stdio --no-children --sort dso,sym -g none / --children"
}

# guard: one run of a benchmark at a time (a lock in build/bench), and
# nothing set up (build/bench/<bench> is wiped) until the machine is quiet
guard() {
    mkdir -p "$top/build/bench"
    exec 9>"$top/build/bench/$bench.lock"
    if ! flock -n 9; then
        say "another run of bench/$me is in progress: waiting for it"
        flock -w "$idle_wait" 9 || die "another run of bench/$me did not end within ${idle_wait}s"
    fi
    wait_quiet
}
