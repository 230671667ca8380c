#!/usr/bin/env bash
# The gateway with throttling and metering on (variant A) versus off
# (variant B), 1,000 active tenants, in one run; wrk through a plain-HTTP
# front server that gives every request its tenant's client certificate.
# Prints a table and appends a dated record to bench/RESULTS.md.
# Run from anywhere (it cds to the repository root); idempotent.
# See bench/gateway-throttle.md.
#
# Environment (all optional):
#   BENCH_TENANTS=1000  tenants bench-0001.. (certificates, rows, requests)
#   BENCH_CONNS=64      wrk -c
#   BENCH_THREADS=2     wrk -t
#   BENCH_SECS=10       seconds per measured round
#   BENCH_ROUNDS=5      rounds; each measures A then B
#   BENCH_WARMUP=10     seconds of wrk warm-up per variant, at 4 x BENCH_CONNS
#                       (not recorded)
#   BENCH_PAUSE=6       seconds of rest after each measured run (longer than
#                       the flush interval, so A's flush lands in no B run)
#   BENCH_WORKERS=1     nginx worker_processes of each instance (1: the
#                       worker is the bottleneck and wrk has the other core;
#                       2 gives noisier numbers, see bench/gateway-throttle.md)
#   BENCH_FLUSH=5s      mealapi_usage flush interval (variant A)
#   BENCH_KEEPALIVE=4   idle keep-alive connections per tenant and worker
#   BENCH_RECORD=1      0: print only, do not append to bench/RESULTS.md
#   BENCH_STRICT=0      1: exit 3 when the ratio is below BENCH_TARGET or
#                       the run is invalid
#   BENCH_TARGET=0.97   required median rps A / median rps B
#   BENCH_KEEP=0        1: leave both nginx running at the end (profiling)
#   BENCH_SETUP_ONLY=0  1: certificates, tenants, configurations; no nginx
#   BENCH_IDLE_WAIT=120 seconds to wait at most for a quiet machine
#   BENCH_OTHERS_MAX=5  a round (A and B) in which other processes used more
#                       than this % of the machine is discarded and measured
#                       again (at most 3 x BENCH_ROUNDS attempts in all)
#   BENCH_NOTE=         free text stored with the record
set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

tenants=${BENCH_TENANTS:-1000}
conns=${BENCH_CONNS:-64}
threads=${BENCH_THREADS:-2}
secs=${BENCH_SECS:-10}
rounds=${BENCH_ROUNDS:-5}
warmup=${BENCH_WARMUP:-10}
pause=${BENCH_PAUSE:-6}
workers=${BENCH_WORKERS:-1}
flush=${BENCH_FLUSH:-5s}
keepalive=${BENCH_KEEPALIVE:-4}
record=${BENCH_RECORD:-1}
strict=${BENCH_STRICT:-0}
target=${BENCH_TARGET:-0.97}
keep=${BENCH_KEEP:-0}
others_max=${BENCH_OTHERS_MAX:-5}
note=${BENCH_NOTE:-}

nginx=${NGINX:-/usr/sbin/nginx}
pki=$top/build/pki
pgdir=$top/build/pg
pgport=${PGPORT_NUTRIPRO:-15432}
pgsock=$pgdir/.s.PGSQL.$pgport
certdir=$top/build/bench/tenants
base=$top/build/bench/throttle
out=$base/out
results=$top/bench/RESULTS.md
lua=$top/bench/gateway-throttle.lua

die() { echo "gateway-throttle: $*" >&2; exit 1; }
say() { echo "gateway-throttle: $*"; }

for n in tenants conns threads secs rounds warmup pause workers keepalive others_max; do
    v=${!n}
    case $v in ''|*[!0-9]*) die "$n must be a number, not '$v'" ;; esac
done
[ "$tenants" -ge 1 ] && [ "$tenants" -le 9999 ] \
    || die "BENCH_TENANTS must be 1..9999"
[ "$rounds" -ge 1 ] || die "BENCH_ROUNDS must be at least 1"
[ "$threads" -le "$conns" ] || die "BENCH_THREADS ($threads) > BENCH_CONNS ($conns)"

# tools, build, services ---------------------------------------------------

for t in wrk curl openssl psql perl awk xargs; do
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

psql_su() {
    PGOPTIONS='-c client_min_messages=warning' \
        psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$pgport" -U postgres \
        -d nutripro "$@"
}

# the cluster is shared: the test suite restarts it (t/011-pgasync.t)
wait_pg() {
    local i
    for ((i = 0; i < 240; i++)); do
        psql_su -tAc 'SELECT 1' >/dev/null 2>&1 && return 0
        [ $i = 0 ] && say "waiting for PostgreSQL (restarted by someone else?)"
        sleep 0.5
    done
    die "PostgreSQL did not answer for 2 minutes"
}

# 1. tenant certificates ---------------------------------------------------
#
# One P-256 key (bench.key) for all certificates: the gateway identifies a
# tenant by the SHA-256 of its certificate, never by its key, and a shared
# key makes 1,000 certificates a matter of `openssl x509 -new` per tenant
# (about 20 ms each), run $(nproc)-wide.  Each certificate gets a .meta
# line (slug, fingerprint, serial, validity) for the registration.

gen_one() {  # NNNN, in $certdir
    local n=$1 serial
    serial=$(printf '42454e43%04x%04x%04x' $RANDOM $RANDOM "$((10#$n))")
    openssl x509 -new -force_pubkey bench.pub \
        -subj "/O=AI Nutrition-Pro bench/CN=bench-$n" \
        -CA "$pki/tenant-ca.crt" -CAkey "$pki/tenant-ca.key" \
        -set_serial "0x$serial" -days 825 -extfile bench.ext \
        -out "bench-$n.crt.tmp" 2>/dev/null
    mv "bench-$n.crt.tmp" "bench-$n.crt"
    openssl x509 -in "bench-$n.crt" -noout -fingerprint -sha256 -serial \
        -startdate -enddate | awk -v slug="bench-$n" -F= '
        /Fingerprint/ { fp = tolower($2); gsub(":", "", fp) }
        /^serial/     { serial = $2 }
        /^notBefore/  { nb = $2 }
        /^notAfter/   { na = $2 }
        END { printf "%s\t%s\t%s\t%s\t%s\n", slug, fp, serial, nb, na }' \
        >"bench-$n.meta.tmp"
    mv "bench-$n.meta.tmp" "bench-$n.meta"
}

make_certs() {
    mkdir -p "$certdir"
    cd "$certdir"
    # certificates of an older tenant CA, or about to expire: start over
    if [ -f bench-0001.crt ] && {
           ! openssl verify -CAfile "$pki/tenant-ca.crt" bench-0001.crt \
                 >/dev/null 2>&1 \
           || ! openssl x509 -in bench-0001.crt -noout -checkend 2592000 \
                 >/dev/null 2>&1; }
    then
        say "tenant certificates of another CA or expiring: regenerating"
        rm -f bench-*.crt bench-*.meta
    fi
    if [ ! -f bench.key ]; then
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
            -out bench.key.tmp 2>/dev/null
        chmod 600 bench.key.tmp
        mv bench.key.tmp bench.key
        rm -f bench-*.crt bench-*.meta
    fi
    openssl pkey -in bench.key -pubout -out bench.pub
    printf '%s\n' "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=clientAuth" >bench.ext
    local missing=() i n
    for ((i = 1; i <= tenants; i++)); do
        printf -v n '%04d' "$i"
        [ -f "bench-$n.meta" ] && [ -f "bench-$n.crt" ] || missing+=("$n")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "generating ${#missing[@]} tenant certificates in build/bench/tenants ($(nproc) at a time)"
        export -f gen_one
        export pki
        local t0=$SECONDS
        printf '%s\n' "${missing[@]}" \
            | xargs -n 25 -P "$(nproc)" bash -c 'for n; do gen_one "$n"; done' _
        say "generated in $((SECONDS - t0)) s"
    fi
    cd "$top"
}

make_certs

# 2. tenants, plan "bench", certificates (as postgres, idempotent) ---------
#
# Updates only what differs, so a second run sends no NOTIFY and no running
# registry reloads for nothing.

register() {
    local i n
    wait_pg
    {
        cat <<'SQL'
BEGIN;
INSERT INTO plans (name, description, rate_per_sec, burst, monthly_quota, routes)
VALUES ('bench', 'benchmark tenants (bench/gateway-throttle.sh)', 100000, 100000, NULL, NULL)
ON CONFLICT (name) DO UPDATE
SET rate_per_sec = EXCLUDED.rate_per_sec, burst = EXCLUDED.burst,
    monthly_quota = NULL, routes = NULL
WHERE plans.rate_per_sec <> EXCLUDED.rate_per_sec
   OR plans.burst <> EXCLUDED.burst
   OR plans.monthly_quota IS NOT NULL OR plans.routes IS NOT NULL;
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
SELECT b.slug, 'Benchmark tenant ' || b.slug,
       (SELECT id FROM plans WHERE name = 'bench')
FROM bench_certs b
ON CONFLICT (slug) DO UPDATE
SET status = 'active', plan_id = EXCLUDED.plan_id, deleted_at = NULL
WHERE tenants.status <> 'active' OR tenants.plan_id <> EXCLUDED.plan_id
   OR tenants.deleted_at IS NOT NULL;
-- certificates of bench tenants that are not the current files, or revoked
DELETE FROM tenant_certificates c
USING tenants t
WHERE c.tenant_id = t.id AND t.slug LIKE 'bench-%'
  AND (c.status <> 'active'
       OR NOT EXISTS (SELECT 1 FROM bench_certs b
                      WHERE b.slug = t.slug
                        AND decode(b.fp, 'hex') = c.fingerprint_sha256));
INSERT INTO tenant_certificates (tenant_id, fingerprint_sha256, subject,
                                 issuer, serial, not_before, not_after)
SELECT t.id, decode(b.fp, 'hex'), 'O=AI Nutrition-Pro bench,CN=' || b.slug,
       'O=AI Nutrition-Pro dev,CN=Tenant CA', b.serial, b.nb, b.na
FROM bench_certs b JOIN tenants t ON t.slug = b.slug
ON CONFLICT (fingerprint_sha256) DO NOTHING;
COMMIT;
SQL
    } | psql_su -f - >/dev/null
    local got
    got=$(psql_su -tAc "SELECT count(*) FROM gateway_registry
                        WHERE tenant_slug LIKE 'bench-%' AND cert_status = 'active'
                          AND tenant_status = 'active' AND plan_name = 'bench'
                          AND tenant_slug <= 'bench-$(printf %04d "$tenants")'")
    [ "$got" -ge "$tenants" ] \
        || die "only $got of $tenants bench tenants in gateway_registry"
    say "$tenants tenants bench-0001..bench-$(printf %04d "$tenants") registered (plan bench: 100000 r/s, burst 100000, no quota)"
}

register

# 3. two nginx instances, identical but for throttling + metering ----------
#
# mealapi_throttle_zone and mealapi_usage are http-level: with the zone
# configured, every request takes the zone's lock and is metered even with
# "mealapi_throttle off".  So the baseline is a second nginx without them;
# both run side by side (the idle one costs nothing) and are measured in
# turn, A B A B ..., so that both see the same machine.

pid_of() { cat "$base/$1/logs/nginx.pid" 2>/dev/null || true; }

nginx_stop() {  # variant
    local pid i
    pid=$(pid_of "$1")
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { rm -f "$base/$1/logs/nginx.pid"; return 0; }
    # graceful: the workers of A flush their usage deltas as they leave
    kill -QUIT "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "gateway-throttle: nginx $1 (master $pid) still running, sending TERM" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "gateway-throttle: nginx $1 (master $pid) still running, sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ "$keep" = 1 ] && [ $rc = 0 ]; then
        say "BENCH_KEEP=1: nginx left running (masters $(pid_of a) $(pid_of b)); stop with: kill -QUIT \$(cat $base/{a,b}/logs/nginx.pid)"
    else
        nginx_stop a
        nginx_stop b
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

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

nginx_stop a                       # leftovers of an interrupted run
nginx_stop b
rm -rf "$base"
mkdir -p "$base/modules" "$out"

# a private copy of the module: one run measures one build
cp "$top/build/modules/ngx_mealapi_module.so" "$base/modules/"
so=$base/modules/ngx_mealapi_module.so
sobuilt=$(date -u -r "$top/build/modules/ngx_mealapi_module.so" '+%Y-%m-%d %H:%M:%S UTC')
sosum=$(sha256sum "$so" | cut -c1-12)

read -r front_a gw_a be_a front_b gw_b be_b < <(free_ports 6)

write_conf() {  # variant front-port gateway-port backend-port
    local v=$1 front=$2 gw=$3 be=$4 p=$base/$1 i n
    mkdir -p "$p/conf" "$p/logs" "$p/temp"

    # the front's per-tenant upstreams and locations
    {
        echo "# one upstream (own keep-alive pool) and one location per tenant:"
        echo "# a kept-alive connection to the gateway always carries the"
        echo "# certificate of the tenant it is used for"
        for ((i = 1; i <= tenants; i++)); do
            printf -v n '%04d' "$i"
            echo "upstream gw_$n { server 127.0.0.1:$gw; keepalive $keepalive; keepalive_requests 1000000; keepalive_timeout 600s; }"
        done
    } >"$p/conf/front-upstreams.conf"
    {
        for ((i = 1; i <= tenants; i++)); do
            printf -v n '%04d' "$i"
            echo "location = /t/$n/v1/samples { proxy_pass https://gw_$n/v1/samples; proxy_ssl_certificate $certdir/bench-$n.crt; }"
        done
    } >"$p/conf/front-locations.conf"

    if [ "$v" = a ]; then
        throttle_zone="mealapi_throttle_zone bench_limits:8m;"
        usage="mealapi_usage database=gw flush=$flush;"
        throttle="mealapi_throttle on;"
    else
        throttle_zone="# (variant B: no mealapi_throttle_zone)"
        usage="# (variant B: no mealapi_usage)"
        throttle="mealapi_throttle off;"
    fi

    cat >"$p/conf/nginx.conf" <<CONF
# written by bench/gateway-throttle.sh: variant ${v^^}
load_module $so;

master_process on;
worker_processes $workers;
worker_rlimit_nofile 16384;
error_log logs/error.log warn;
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

    mealapi_database gw {
        server unix:$pgsock;
        dbname nutripro;
        user nutripro_gateway;
    }
    mealapi_registry zone=bench_registry:8m database=gw;
    $throttle_zone
    $usage

    # which tenant each request was, for counting the distinct tenants
    log_format bench_tenant '\$msec \$mealapi_tenant \$connection_requests \$status \$connection';

    # the gateway (mTLS)
    server {
        listen 127.0.0.1:$gw ssl;
        ssl_certificate $pki/gateway.crt;
        ssl_certificate_key $pki/gateway.key;
        ssl_client_certificate $pki/tenant-ca.crt;
        ssl_verify_client optional_no_ca;

        mealapi_route samples.list GET /v1/samples;
        mealapi_signing_key $pki/identity.key;
        $throttle

        access_log logs/gateway-tenants.log bench_tenant buffer=256k flush=1s;

        error_page 495 496 = @mealapi_refused;
        location @mealapi_refused { mealapi on; }

        location / {
            mealapi on;
            proxy_pass http://bench_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    # the backend: answers at once
    upstream bench_backend {
        server 127.0.0.1:$be;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:$be;
        location / { return 200 "ok \$http_x_mealapi_tenant\n"; }
    }

    # the front: plain HTTP for wrk, /t/NNNN/v1/samples -> the gateway as
    # tenant bench-NNNN
    include front-upstreams.conf;
    server {
        listen 127.0.0.1:$front;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_ssl_session_reuse off;
        # a wrk run that ends leaves its requests in flight: let them finish,
        # so that their kept-alive connections to the gateway survive
        proxy_ignore_client_abort on;
        proxy_ssl_certificate_key $certdir/bench.key;
        include front-locations.conf;
        location / { return 404; }
    }
}
CONF
    "$nginx" -p "$p" -c conf/nginx.conf -t -q \
        || die "nginx -t failed for $p/conf/nginx.conf"
}

write_conf a "$front_a" "$gw_a" "$be_a"
write_conf b "$front_b" "$gw_b" "$be_b"
# what differs, ports aside
confdiff=$(diff <(sed "s/$front_a/FRONT/; s/$gw_a/GW/; s/$be_a/BE/; s/variant A/variant X/" "$base/a/conf/nginx.conf") \
                <(sed "s/$front_b/FRONT/; s/$gw_b/GW/; s/$be_b/BE/; s/variant B/variant X/" "$base/b/conf/nginx.conf") \
            | grep '^[<>]' | sed 's/^< /A: /; s/^> /B: /; s/  */ /g' || true)

if [ "${BENCH_SETUP_ONLY:-0}" = 1 ]; then
    say "BENCH_SETUP_ONLY=1: configurations in build/bench/throttle/{a,b}/conf, nothing started"
    exit 0
fi

front_of() { if [ "$1" = a ]; then echo "$front_a"; else echo "$front_b"; fi; }

pg_started() {
    psql_su -tAc 'SELECT pg_postmaster_start_time()' 2>/dev/null || echo "not running"
}
wait_pg
pg_start0=$(pg_started)

# metered requests of each bench tenant so far (all days)
usage_snapshot() {
    psql_su -tAc "SELECT t.slug, coalesce(sum(u.requests), 0)
                  FROM tenants t LEFT JOIN usage_daily u ON u.tenant_id = t.id
                  WHERE t.slug LIKE 'bench-%' GROUP BY t.slug" \
        | tr '|' '\t' | sort
}
usage_snapshot >"$out/usage-before.tsv"

say "starting nginx A (front :$front_a, gateway :$gw_a) and B (front :$front_b, gateway :$gw_b), $workers workers each"
for v in a b; do
    "$nginx" -p "$base/$v" -c conf/nginx.conf || die "nginx $v did not start"
done

# both answer for the first and the last tenant, A with RateLimit headers
check() {  # variant
    local v=$1 front n code body hdr i
    front=$(front_of "$v")
    for n in 0001 "$(printf %04d "$tenants")"; do
        code=000
        for ((i = 0; i < 100; i++)); do
            code=$(curl -s -D "$out/check-$v.h" -o "$out/check-$v.b" \
                   -w '%{http_code}' "http://127.0.0.1:$front/t/$n/v1/samples" || true)
            [ "$code" = 200 ] && break
            sleep 0.1
        done
        body=$(cat "$out/check-$v.b" 2>/dev/null || true)
        [ "$code" = 200 ] && [ "$body" = "ok bench-$n" ] || {
            tail -5 "$base/$v/logs/error.log" >&2 || true
            die "variant ${v^^}: /t/$n/v1/samples answered $code '$body', not 200 'ok bench-$n'"
        }
        hdr=$(grep -ci '^RateLimit:' "$out/check-$v.h" || true)
        if [ "$v" = a ] && [ "$hdr" = 0 ]; then
            die "variant A answered without RateLimit headers: throttling is not on"
        fi
        if [ "$v" = b ] && [ "$hdr" != 0 ]; then
            die "variant B answered with RateLimit headers"
        fi
    done
}
check a
check b

# 4. measure ---------------------------------------------------------------

cpu_ticks() { awk '/^cpu / { print $2+$3+$4+$6+$7+$8, $5 }' /proc/stat; }
busy_pct() {  # ticks-before ticks-after
    echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2;
        printf "%d", (b + i) ? 100 * b / (b + i) : 0 }'
}
# CPU ticks (1/100 s) used so far by both nginx instances, masters and workers
ngx_ticks() {
    local v p
    for v in a b; do
        p=$(pid_of "$v")
        [ -n "$p" ] || continue
        cat "/proc/$p/stat" 2>/dev/null || true
        for c in $(pgrep -P "$p" || true); do cat "/proc/$c/stat" 2>/dev/null || true; done
    done | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
# CPU ticks used so far by this shell's finished children (wrk among them),
# into the variable named $1 (not in a $(...) subshell: "times" must run
# in this shell)
child_ticks() {
    times >"$out/times.tmp"
    printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/);
        printf "%d", 100 * (u[1] * 60 + u[2] + s[1] * 60 + s[2]) }' "$out/times.tmp")"
}
# the share of the machine that neither nginx nor wrk used during a run
# (other people's work: it skews that run)
foreign_pct() {  # cpu-before cpu-after ngx-delta child-delta
    echo "$1 $2 $3 $4" | awk '{ b = $3 - $1; i = $4 - $2; f = b - $5 - $6;
        if (f < 0) f = 0; printf "%d", (b + i) ? 100 * f / (b + i) : 0 }'
}

# wait (up to BENCH_IDLE_WAIT seconds) for a quiet machine
idle_wait=${BENCH_IDLE_WAIT:-120}
waited=0
while :; do
    t0=$(cpu_ticks); sleep 2; t1=$(cpu_ticks)
    busy0=$(busy_pct "$t0" "$t1")
    [ "$busy0" -le 20 ] || [ "$waited" -ge "$idle_wait" ] && break
    [ "$waited" = 0 ] && say "the CPUs are ${busy0}% busy: waiting up to ${idle_wait}s for a quiet machine"
    waited=$((waited + 2))
done
load0=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$busy0" -gt 20 ] && echo "gateway-throttle: warning: the CPUs were ${busy0}% busy before the run: other work on this machine skews the numbers" >&2

wrk_cmd() {  # port
    echo "BENCH_TENANTS=$tenants wrk -t$threads -c$conns -d${secs}s --latency -s bench/gateway-throttle.lua http://127.0.0.1:$1"
}

run_wrk() {  # variant seconds logfile [connections]
    local front
    front=$(front_of "$1")
    BENCH_TENANTS=$tenants wrk -t"$threads" -c"${4:-$conns}" -d"$2s" --latency \
        -s "$lua" "http://127.0.0.1:$front" >"$3" 2>&1 \
        || { cat "$3" >&2; die "wrk failed (variant ${1^^})"; }
}

if [ "$warmup" -gt 0 ]; then
    for v in a b; do
        # 4 x the concurrency: each tenant's pool grows to what the
        # measured runs need, so that they open (almost) no connections
        say "warm-up ${v^^}: ${warmup}s at -c$((4 * conns)) (opens the keep-alive connections of all tenants)"
        run_wrk "$v" "$warmup" "$out/warmup-$v.log" $((4 * conns))
        sleep "$pause"
    done
fi

: >"$out/windows.tsv"            # kept runs: variant round start end busy% others%
: >"$out/discarded.tsv"
declare -A rps
r=1; attempt=0; discarded=0
while [ $r -le "$rounds" ]; do
    attempt=$((attempt + 1))
    [ $attempt -le $((3 * rounds)) ] \
        || die "other work disturbed too many rounds ($discarded discarded): try again on a quiet machine, or raise BENCH_OTHERS_MAX"
    lines=; worst=0
    for v in a b; do
        log=$out/wrk-$v-$attempt.log
        n0=$(ngx_ticks); child_ticks w0
        s=$(date +%s.%N); c0=$(cpu_ticks)
        run_wrk "$v" "$secs" "$log"
        e=$(date +%s.%N); c1=$(cpu_ticks)
        n1=$(ngx_ticks); child_ticks w1
        rps[$v$r]=$(awk '/^Requests\/sec:/ { print $2 }' "$log")
        fp=$(foreign_pct "$c0" "$c1" $((n1 - n0)) $((w1 - w0)))
        [ "$fp" -gt "$worst" ] && worst=$fp
        lines+=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$v" "$r" "$s" "$e" \
                 "$(busy_pct "$c0" "$c1")" "$fp" "${rps[$v$r]}")$'\n'
        say "round $r ${v^^}: ${rps[$v$r]} req/s (CPU: nginx $(( (n1 - n0) / secs ))%, wrk $(( (w1 - w0) / secs ))%, others ${fp}% of the machine)"
        sleep "$pause"
    done
    if [ "$worst" -gt "$others_max" ]; then
        # someone else's work took its share of the machine: measure again
        discarded=$((discarded + 1))
        printf '%s' "$lines" >>"$out/discarded.tsv"
        say "round $r discarded: other work used ${worst}% of the machine (more than BENCH_OTHERS_MAX=${others_max}%); measuring it again"
        continue
    fi
    printf '%s' "$lines" >>"$out/windows.tsv"
    r=$((r + 1))
done

pg_start1=$(pg_started)

# errors before stopping (a stop may log its own lines)
declare -A crashes errs
for v in a b; do
    crashes[$v]=$(grep -c 'exited on signal' "$base/$v/logs/error.log" || true)
    errs[$v]=$(grep -c '\[\(error\|crit\|alert\|emerg\)\]' "$base/$v/logs/error.log" || true)
done

if [ "$keep" != 1 ]; then
    nginx_stop a                   # A's workers flush their last deltas
    nginx_stop b
fi
wait_pg
usage_snapshot >"$out/usage-after.tsv"

# 5. results ---------------------------------------------------------------

median() {  # [printf format]; numbers on stdin, separated by blanks
    tr ' ' '\n' | grep . | sort -g | awk -v f="${1:-%.2f}" '{ v[NR] = $1 }
    END { if (NR % 2) printf f, v[(NR + 1) / 2];
          else printf f, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

list_a=; list_b=
for ((r = 1; r <= rounds; r++)); do
    list_a="$list_a ${rps[a$r]}"; list_b="$list_b ${rps[b$r]}"
done
med_a=$(echo "$list_a" | median)
med_b=$(echo "$list_b" | median)
ratio=$(awk -v a="$med_a" -v b="$med_b" 'BEGIN { printf "%.3f", a / b }')
# each round's A against the B measured right after it
pairs=$(for ((r = 1; r <= rounds; r++)); do
            awk -v a="${rps[a$r]}" -v b="${rps[b$r]}" 'BEGIN { printf "%.3f ", a / b }'
        done)
pairs=${pairs% }
pair_median=$(echo "$pairs" | median %.3f)
verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r >= t) ? "meets target" : "BELOW target" }')

# the gateway's log, measured rounds only: distinct tenants, requests, new
# connections (= TLS handshakes), statuses
tenant_stats() {  # variant
    awk -v v="$1" -F'\t' 'FNR == NR { if ($1 == v) { s[++k] = $3; e[k] = $4 } next }
        {
            split($0, f, " ")
            t = f[1] + 0; inwin = 0
            for (i = 1; i <= k; i++) if (t >= s[i] && t <= e[i]) { inwin = 1; break }
            if (!inwin) next
            n++
            if (f[2] ~ /^bench-/) seen[f[2]]++
            if (f[3] == 1) hs++
            if (f[4] != 200) bad++
        }
        END {
            d = 0; min = -1; max = 0
            for (x in seen) { d++; if (min < 0 || seen[x] < min) min = seen[x]; if (seen[x] > max) max = seen[x] }
            printf "%d %d %d %d %d %d\n", d, n, hs + 0, bad + 0, (min < 0 ? 0 : min), max
        }' "$out/windows.tsv" "$base/$1/logs/gateway-tenants.log"
}
read -r seen_a lines_a hs_a bad_a min_a max_a < <(tenant_stats a)
read -r seen_b lines_b hs_b bad_b min_b max_b < <(tenant_stats b)

# what A metered into usage_daily during this run (warm-up and checks included)
read -r metered_tenants metered_requests < <(
    join -t $'\t' -a 2 -e 0 -o 0,1.2,2.2 "$out/usage-before.tsv" "$out/usage-after.tsv" \
    | awk -F'\t' '$3 - $2 > 0 { n++; s += $3 - $2 } END { printf "%d %d\n", n, s }')
# A's gateway log over the whole run, for comparison with usage_daily
logged_a_all=$(awk '$2 ~ /^bench-/ && $4 == 200 { n++ } END { print n + 0 }' "$base/a/logs/gateway-tenants.log")

total_non2xx=0; sockerrs=
for f in "$out"/wrk-*.log; do
    x=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
    total_non2xx=$((total_non2xx + ${x:-0}))
    y=$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$f")
    [ -n "$y" ] && sockerrs="$sockerrs $(basename "$f" .log): $y;"
done

problems=
foreign_max=$(awk -F'\t' '$6 > m { m = $6 } END { print m + 0 }' "$out/windows.tsv")
[ "$foreign_max" -gt "$others_max" ] && problems="$problems; other work on the machine used up to ${foreign_max}% of it during a measured run"
[ "$total_non2xx" != 0 ] && problems="$problems; wrk saw $total_non2xx non-2xx responses"
[ -n "$sockerrs" ] && problems="$problems; wrk socket errors:$sockerrs"
[ "$pg_start0" != "$pg_start1" ] \
    && problems="$problems; PostgreSQL restarted during the run ($pg_start0 -> $pg_start1)"
for v in a b; do
    [ "${crashes[$v]:-0}" != 0 ] && problems="$problems; ${v^^}: ${crashes[$v]} worker crash(es)"
    [ "${errs[$v]:-0}" != 0 ] && problems="$problems; ${v^^}: ${errs[$v]} error-log lines of level error or worse"
done
[ "$seen_a" -lt "$tenants" ] && problems="$problems; A's gateway saw only $seen_a of $tenants tenants in the measured rounds"
[ "$seen_b" -lt "$tenants" ] && problems="$problems; B's gateway saw only $seen_b of $tenants tenants in the measured rounds"
if [ -n "$problems" ]; then
    valid="NO${problems}"
    verdict="INVALID ($verdict)"
else
    valid=yes
fi

foreign_of() { awk -F'\t' -v v="$1" '$1 == v { printf "%s%s%%", sep, $6; sep = " " }' "$out/windows.tsv"; }

table=$(
    echo "| variant | rps per round | median rps | gateway: distinct tenants | requests logged | new TLS connections | requests per tenant (min-max) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    echo "| A: throttle + metering on | ${list_a# } | $med_a | $seen_a | $lines_a | $hs_a | $min_a-$max_a |"
    echo "| B: off (baseline) | ${list_b# } | $med_b | $seen_b | $lines_b | $hs_b | $min_b-$max_b |"
)

echo
echo "$table"
echo
echo "ratio A/B of the medians: $ratio (per round: $pairs; their median $pair_median), target $target: $verdict"
echo "usage_daily: $metered_tenants bench tenants metered, $metered_requests requests (A's log: $logged_a_all 200s, warm-up included)"
[ -n "$problems" ] && echo "gateway-throttle: run NOT valid${problems}" >&2
echo "logs: build/bench/throttle/{a,b}/logs, build/bench/throttle/out"

if [ "$record" = 1 ]; then
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    srvver=$(psql_su -tAc 'SHOW server_version' 2>/dev/null || true)
    ngxver=$("$nginx" -v 2>&1 | sed 's/^nginx version: //')
    rev=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$top" status --porcelain -- common ngx_mealapi_module 2>/dev/null | head -1)
    rec=$(mktemp)
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC'): gateway throttling + metering on/off (bench/gateway-throttle.sh)"
        echo
        echo "- machine: nproc $(nproc), ${cpu:-unknown CPU}, $(uname -sm)"
        echo "- software: $ngxver, $(openssl version | cut -d' ' -f1-2), PostgreSQL $srvver, $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
        echo "- source: $rev${dirty:+ (uncommitted changes in the module sources)}; ngx_mealapi_module.so built $sobuilt, sha256 $sosum"
        echo "- setup: two nginx instances side by side (build/bench/throttle/{a,b}), each worker_processes $workers, with a plain-HTTP front (wrk -> /t/NNNN/v1/samples), the mTLS gateway (route GET /v1/samples, signing key) and a \`return 200\` backend; the front has one upstream per tenant (keepalive $keepalive, its own client certificate bench-NNNN), so every request reaches the gateway as the tenant wrk chose (uniformly random of $tenants, plan \`bench\`: 100000 r/s, burst 100000, no quota); the gateway logs \`\$mealapi_tenant\` per request (buffered) in both"
        echo "- A and B differ only in (ports aside):"
        echo "$confdiff" | sed 's/^/  - `/; s/$/`/'
        echo "- warm-up: ${warmup}s of wrk per variant at -c$((4 * conns)), not recorded; then $rounds rounds of A then B, ${secs}s each, ${pause}s rest after each run"
        [ -n "$note" ] && echo "- note: $note"
        echo "- commands (A, B):"
        echo "  - \`$(wrk_cmd "$front_a")\`"
        echo "  - \`$(wrk_cmd "$front_b")\`"
        echo "- CPUs before the runs: ${busy0}% busy over 2 s, load average $load0$([ "$waited" -gt 0 ] && echo " (after waiting ${waited}s for it)"); CPU used by neither nginx nor wrk during the runs: A $(foreign_of a), B $(foreign_of b) of the machine"
        if [ "$discarded" -gt 0 ]; then
            echo "- discarded and measured again ($discarded rounds: other work used more than ${others_max}% of the machine): $(awk -F'\t' '{ printf "%s%s %s req/s (others %s%%)", sep, toupper($1), $7, $6; sep = ", " }' "$out/discarded.tsv")"
        fi
        echo "- usage_daily after the run: $metered_tenants bench tenants metered by A, $metered_requests requests (A's gateway log: $logged_a_all 200s, warm-up and checks included)"
        echo "- valid: $valid"
        echo
        echo "$table"
        echo
        echo "Ratio A/B of the medians: **$ratio** (target $target): $verdict. Per round (A over the B right after it): $pairs; their median $pair_median."
    } >"$rec"
    [ -f "$results" ] || printf '# Benchmark results\n' >"$results"
    cat "$rec" >>"$results"
    rm -f "$rec"
    say "recorded in bench/RESULTS.md"
fi

if [ "$strict" = 1 ]; then
    case $verdict in "meets target") ;; *) exit 3 ;; esac
fi
exit 0
