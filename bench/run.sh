#!/bin/sh
# make bench: GET /api/v1/plans through nginx (wrk) against pgbench on the
# same PostgreSQL, same client concurrency, same run.  Prints a table and
# appends a dated record to bench/RESULTS.md.  See bench/README.md.
#
# Environment (all optional):
#   BENCH_CONNS=32     client concurrency: wrk -c and pgbench -c
#   BENCH_SECS=10      seconds per measured run
#   BENCH_THREADS=2    wrk -t and pgbench -j
#   BENCH_WARMUP=3     seconds of wrk warm-up (not recorded)
#   BENCH_WORKERS=1    nginx worker_processes
#   BENCH_PG_CONNS=8   controlplane_database max_connections (per worker)
#   BENCH_PORT=        nginx port (default: a free one)
#   BENCH_RECORD=1     0: do not append to bench/RESULTS.md
#   BENCH_STRICT=0     1: exit 3 when the ratio is below BENCH_TARGET
#   BENCH_TARGET=0.8   required nginx rps / pgbench -S -M prepared tps
#   BENCH_NOTE=        free text stored with the record
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

conns=${BENCH_CONNS:-32}
secs=${BENCH_SECS:-10}
threads=${BENCH_THREADS:-2}
warmup=${BENCH_WARMUP:-3}
workers=${BENCH_WORKERS:-1}
pgconns=${BENCH_PG_CONNS:-8}
record=${BENCH_RECORD:-1}
strict=${BENCH_STRICT:-0}
target=${BENCH_TARGET:-0.8}
note=${BENCH_NOTE:-}

nginx=${NGINX:-/usr/sbin/nginx}
pgdir=$top/build/pg
pgport=${PGPORT_NUTRIPRO:-15432}
prefix=$top/build/bench/nginx
out=$top/build/bench/out
results=$top/bench/RESULTS.md
path='/api/v1/plans?limit=3'

die() { echo "bench: $*" >&2; exit 1; }

for n in conns secs threads warmup workers pgconns; do
    eval "v=\$$n"
    case $v in ''|*[!0-9]*) die "$n must be a number, not '$v'" ;; esac
done
[ "$threads" -le "$conns" ] || die "BENCH_THREADS ($threads) > BENCH_CONNS ($conns)"

# tools -----------------------------------------------------------------

pgbench=$(command -v pgbench 2>/dev/null || true)
if [ -z "$pgbench" ]; then
    pgbench=$(ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null \
              | sort -V | tail -1)
fi
[ -n "$pgbench" ] && [ -x "$pgbench" ] \
    || die "no pgbench (apt-get install postgresql-client)"
command -v wrk >/dev/null 2>&1 || die "no wrk (apt-get install wrk)"
command -v curl >/dev/null 2>&1 || die "no curl (apt-get install curl)"
[ -x "$nginx" ] || die "no nginx at $nginx"
[ -f "$top/build/modules/ngx_controlplane_module.so" ] \
    || die "no build/modules/ngx_controlplane_module.so (make build)"
[ -S "$pgdir/.s.PGSQL.$pgport" ] || die "PostgreSQL is not running (make db)"

psql_su() {
    PGOPTIONS='-c client_min_messages=warning' \
        psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$pgport" -U postgres "$@"
}

# nginx -----------------------------------------------------------------

nginx_stop() {
    pidf=$prefix/logs/nginx.pid
    [ -f "$pidf" ] || return 0
    pid=$(cat "$pidf" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidf"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "bench: nginx master $pid did not exit, sending KILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    rc=$?
    trap - EXIT INT TERM HUP
    nginx_stop
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                      LocalPort => 0, ReuseAddr => 1)
            or die "no free port: $!\n";
        print $s->sockport, "\n";'
}

nginx_stop                         # a leftover from an interrupted run
rm -rf "$prefix" "$out"
mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/temp" "$prefix/modules" "$out"

# A private copy of the module: one run measures one build, whatever a
# concurrent `make build` does to build/modules (and a .so rewritten in
# place, as scripts/build.sh did before 3cfb7a8, crashes the workers that
# have it mapped).
cp "$top/build/modules/ngx_controlplane_module.so" "$prefix/modules/"
so=$prefix/modules/ngx_controlplane_module.so
sobuilt=$(date -u -r "$top/build/modules/ngx_controlplane_module.so" '+%Y-%m-%d %H:%M:%S UTC')
sosum=$(sha256sum "$so" | cut -c1-12)

port=${BENCH_PORT:-$(free_port)}

cat > "$prefix/conf/nginx.conf" <<CONF
# written by bench/run.sh
load_module $so;

master_process on;
worker_processes $workers;
error_log logs/error.log warn;
pid logs/nginx.pid;

events {
    worker_connections 4096;
}

http {
    access_log off;
    default_type application/octet-stream;

    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;

    controlplane_database cp {
        server unix:$pgdir/.s.PGSQL.$pgport;
        dbname nutripro;
        user nutripro_controlplane;
        max_connections $pgconns;
        queue 1024;
    }

    server {
        listen 127.0.0.1:$port;

        location /api/ {
            controlplane_api cp;
        }
    }
}
CONF

"$nginx" -p "$prefix" -c conf/nginx.conf -t -q \
    || die "nginx -t failed for $prefix/conf/nginx.conf"
"$nginx" -p "$prefix" -c conf/nginx.conf || die "nginx did not start"

url="http://127.0.0.1:$port$path"
code=000
i=0
while [ $i -lt 50 ]; do
    code=$(curl -s -o "$out/sample.json" -w '%{http_code}' "$url" || true)
    [ "$code" = 200 ] && break
    sleep 0.1; i=$((i + 1))
done
if [ "$code" != 200 ]; then
    cat "$out/sample.json" >&2 2>/dev/null || true
    tail -20 "$prefix/logs/error.log" >&2 2>/dev/null || true
    die "GET $path answered $code, not 200"
fi
grep -q '"items":\[{' "$out/sample.json" \
    || die "unexpected body: $(cat "$out/sample.json")"

# pgbench database (separate from nutripro) -------------------------------

if ! psql_su -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'nutripro_bench'" \
        | grep -q 1; then
    psql_su -d postgres -c "CREATE DATABASE nutripro_bench"
fi
"$pgbench" -h "$pgdir" -p "$pgport" -U postgres -i -s 1 -q nutripro_bench \
    >"$out/pgbench-init.log" 2>&1 \
    || { cat "$out/pgbench-init.log" >&2; die "pgbench -i failed"; }

# runs --------------------------------------------------------------------

# the run is only valid if PostgreSQL was not restarted in between (the
# test suite restarts the shared cluster) and no worker died
pg_started() {
    psql_su -d postgres -tAc 'SELECT pg_postmaster_start_time()' 2>/dev/null \
        || echo "not running"
}
pg_start0=$(pg_started)
# how busy the machine is for 2 s before the runs (the load average would
# still count the previous benchmark's clients for minutes)
cpu_ticks() { awk '/^cpu / { print $2+$3+$4+$6+$7+$8, $5 }' /proc/stat; }
t0=$(cpu_ticks); sleep 2; t1=$(cpu_ticks)
busy0=$(echo "$t0 $t1" | awk '{ b = $3 - $1; i = $4 - $2;
    printf "%d", (b + i) ? 100 * b / (b + i) : 0 }')
load0=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$busy0" -gt 20 ] && echo "bench: warning: the CPUs were ${busy0}% busy before the run: other work on this machine skews the numbers" >&2

wrk_cmd="wrk -t$threads -c$conns -d${secs}s --latency '$url'"
pgs_cmd="pgbench -h $pgdir -p $pgport -U postgres -S -M prepared -c $conns -j $threads -T $secs nutripro_bench"
pgf_cmd="pgbench -h $pgdir -p $pgport -U nutripro_controlplane -n -f $top/bench/plans_page.sql -M prepared -c $conns -j $threads -T $secs nutripro"
pge_cmd="pgbench -h $pgdir -p $pgport -U nutripro_controlplane -n -f $top/bench/plans_page.sql -M extended -c $conns -j $threads -T $secs nutripro"

echo "bench: nginx on 127.0.0.1:$port (workers $workers, pool $pgconns), $conns clients, ${secs}s per run"

if [ "$warmup" -gt 0 ]; then
    echo "bench: warm-up ${warmup}s"
    wrk -t"$threads" -c"$conns" -d"${warmup}s" "$url" >"$out/warmup.log" 2>&1 \
        || { cat "$out/warmup.log" >&2; die "wrk warm-up failed"; }
fi

echo "bench: $wrk_cmd"
wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "$url" \
    >"$out/wrk.log" 2>&1 || { cat "$out/wrk.log" >&2; die "wrk failed"; }
nginx_stop                         # the pgbench runs get the machine alone

run_pgbench() {  # name, then the arguments after "pgbench"
    name=$1; shift
    echo "bench: pgbench $*" | sed "s|$top/||g"
    "$pgbench" "$@" >"$out/$name.log" 2>&1 \
        || { cat "$out/$name.log" >&2; die "pgbench ($name) failed"; }
}

run_pgbench pgbench-S -h "$pgdir" -p "$pgport" -U postgres -S -M prepared \
    -c "$conns" -j "$threads" -T "$secs" nutripro_bench
run_pgbench pgbench-plans-prepared -h "$pgdir" -p "$pgport" \
    -U nutripro_controlplane -n -f "$top/bench/plans_page.sql" -M prepared \
    -c "$conns" -j "$threads" -T "$secs" nutripro
run_pgbench pgbench-plans-extended -h "$pgdir" -p "$pgport" \
    -U nutripro_controlplane -n -f "$top/bench/plans_page.sql" -M extended \
    -c "$conns" -j "$threads" -T "$secs" nutripro

pg_start1=$(pg_started)

# results -----------------------------------------------------------------

rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out/wrk.log")
wrk_lat=$(awk '/^    Latency/ { print $2; exit }' "$out/wrk.log")
wrk_p99=$(awk '/^ +99%/ { print $2; exit }' "$out/wrk.log")
wrk_total=$(awk '/requests in/ { print $1; exit }' "$out/wrk.log")
non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out/wrk.log")
sockerr=$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out/wrk.log")
non2xx=${non2xx:-0}

tps_of() {
    awk '/^tps = .*without initial connection time/ { printf "%.1f\n", $3 }' "$out/$1.log"
}
lat_of() {
    awk '/^latency average/ { print $4 }' "$out/$1.log"
}

tps_s=$(tps_of pgbench-S)
tps_fp=$(tps_of pgbench-plans-prepared)
tps_fe=$(tps_of pgbench-plans-extended)
[ -n "$rps" ] && [ -n "$tps_s" ] && [ -n "$tps_fp" ] && [ -n "$tps_fe" ] \
    || die "could not parse the results (see $out)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
r_s=$(ratio "$rps" "$tps_s")
r_fp=$(ratio "$rps" "$tps_fp")
r_fe=$(ratio "$rps" "$tps_fe")
verdict=$(awk -v r="$r_s" -v t="$target" \
    'BEGIN { print (r >= t) ? "meets target" : "BELOW target" }')
problems=
[ "$non2xx" != 0 ] && problems="$problems; wrk saw $non2xx non-2xx responses"
[ -n "$sockerr" ] && problems="$problems; wrk socket errors: $sockerr"
[ "$pg_start0" != "$pg_start1" ] \
    && problems="$problems; PostgreSQL restarted during the run ($pg_start0 -> $pg_start1)"
crashes=$(grep -c 'exited on signal' "$prefix/logs/error.log" 2>/dev/null || true)
[ "${crashes:-0}" != 0 ] && problems="$problems; $crashes nginx worker crash(es), see $prefix/logs/error.log"
errors=$(grep -c '\[\(error\|crit\|alert\|emerg\)\]' "$prefix/logs/error.log" 2>/dev/null || true)
[ "${errors:-0}" != 0 ] && problems="$problems; $errors error-log lines of level error or worse"
for f in pgbench-S pgbench-plans-prepared pgbench-plans-extended; do
    n=$(awk '/^number of failed transactions:/ { print $5; exit }' "$out/$f.log")
    [ "${n:-0}" != 0 ] && problems="$problems; $f: $n failed transactions"
done
if [ -n "$problems" ]; then
    valid="NO${problems}"
    verdict="INVALID ($verdict)"
else
    valid=yes
fi

table=$(cat <<TXT
| run | clients | throughput | mean latency | ratio nginx/this |
| --- | ---: | ---: | ---: | ---: |
| nginx GET /api/v1/plans?limit=3 (wrk) | $conns | $rps req/s | $wrk_lat (p99 $wrk_p99) | - |
| pgbench -S -M prepared (pgbench_accounts, s=1) | $conns | $tps_s tps | $(lat_of pgbench-S) ms | **$r_s** |
| pgbench -f plans_page.sql -M prepared | $conns | $tps_fp tps | $(lat_of pgbench-plans-prepared) ms | $r_fp |
| pgbench -f plans_page.sql -M extended | $conns | $tps_fe tps | $(lat_of pgbench-plans-extended) ms | $r_fe |
TXT
)

echo
echo "$table"
echo
echo "primary ratio (nginx rps / pgbench -S -M prepared tps): $r_s, target $target: $verdict"
echo "wrk: $wrk_total requests, non-2xx $non2xx${sockerr:+, socket errors: $sockerr}"
[ -n "$problems" ] && echo "bench: run NOT valid${problems}" >&2
echo "logs: $out"

if [ "$record" = 1 ]; then
    [ -f "$results" ] || printf '# Benchmark results\n\nAppended by `make bench` (bench/run.sh); see bench/README.md.\n' >"$results"
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    pgver=$("$pgbench" --version 2>/dev/null | head -1)
    srvver=$(psql_su -d postgres -tAc 'SHOW server_version' 2>/dev/null || true)
    ngxver=$("$nginx" -v 2>&1 | sed 's/^nginx version: //')
    rev=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$top" status --porcelain -- common ngx_controlplane_module 2>/dev/null | head -1)
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo
        echo "- machine: nproc $(nproc), ${cpu:-unknown CPU}, $(uname -sm)"
        echo "- software: $ngxver, PostgreSQL $srvver, ${pgver:-pgbench}, $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
        echo "- source: $rev${dirty:+ (uncommitted changes in the module sources)}; ngx_controlplane_module.so built $sobuilt, sha256 $sosum"
        echo "- nginx: worker_processes $workers, controlplane_database max_connections $pgconns, queue 1024, access_log off"
        echo "- warm-up: ${warmup}s of wrk, not recorded; runs one after another, ${secs}s each"
        [ -n "$note" ] && echo "- note: $note"
        echo "- commands:"
        echo "  - \`$wrk_cmd\`"
        echo "  - \`$pgs_cmd\`"
        echo "  - \`$pgf_cmd\`"
        echo "  - \`$pge_cmd\`"
        echo "- before the runs: CPUs ${busy0}% busy over 2 s, load average $load0"
        echo "- valid: $valid"
        echo
        echo "$table"
        echo
        echo "Primary ratio, nginx req/s / \`pgbench -S -M prepared\` tps: **$r_s** (target $target): $verdict."
    } >>"$results"
    echo "bench: recorded in bench/RESULTS.md"
fi

if [ "$strict" = 1 ]; then
    case $verdict in "meets target") ;; *) exit 3 ;; esac
fi
exit 0
