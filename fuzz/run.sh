#!/bin/sh
# The schema compiler/validator (ngx_mealapi_module/ngx_http_mealapi_schema.c)
# under test:
#
#   fuzz/run.sh SECONDS    the unit tests, then libFuzzer for SECONDS
#   fuzz/run.sh selftest   the unit tests only (fuzz/schema_selftest.c, TAP)
#   fuzz/run.sh coverage   line coverage of schema.c by fuzz/corpus + tests
#
# Everything builds into build/fuzz/.  The fuzzer (fuzz/schema_fuzzer.c,
# clang -fsanitize=fuzzer,address,undefined) starts from the seeds in
# fuzz/corpus and the inputs of earlier runs (build/fuzz/corpus); after the
# run, the inputs that reach edges fuzz/corpus does not are added to it
# (FUZZ_MERGE=0: left alone).  A crash, leak or timeout leaves its input in build/fuzz/ and
# fails the run; reproduce with build/fuzz/schema_fuzzer FILE.
#
# Environment: FUZZ_MERGE=1, FUZZ_MAX_LEN=8192, FUZZ_JOBS=1, CLANG=clang.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

out=build/fuzz
src=ngx_mealapi_module/ngx_http_mealapi_schema.c
inc="-I ngx_mealapi_module"
libs="-ljansson -lpcre2-8"
clang=${CLANG:-clang}
merge=${FUZZ_MERGE:-1}
max_len=${FUZZ_MAX_LEN:-8192}
jobs=${FUZZ_JOBS:-1}

die() { echo "fuzz: $*" >&2; exit 1; }

mode=${1:-}
case $mode in
    selftest|coverage) ;;
    ''|*[!0-9]*) die "usage: fuzz/run.sh SECONDS | selftest | coverage" ;;
esac

[ -f /usr/include/jansson.h ] || die "no jansson (apt-get install libjansson-dev)"
[ -f /usr/include/pcre2.h ] || die "no PCRE2 (apt-get install libpcre2-dev)"

mkdir -p "$out/corpus"

# clang with libFuzzer and the sanitizer runtimes
need_clang() {
    if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' \
        | "$clang" -x c -fsanitize=fuzzer,address,undefined -o "$out/probe" - \
          >/dev/null 2>&1
    then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "fuzz: installing clang and libclang-rt-14-dev"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends clang libclang-rt-14-dev >/dev/null \
                || die "apt-get install clang libclang-rt-14-dev failed"
        else
            die "needs clang with libFuzzer: apt-get install -y clang libclang-rt-14-dev"
        fi
    fi
    rm -f "$out/probe"
}

# 1. unit tests: gcc (or cc), warnings as errors, ASan + UBSan + LSan
cc=$(command -v gcc || command -v cc || command -v "$clang") || die "no C compiler"
# shellcheck disable=SC2086
"$cc" -std=c99 -g -O1 -W -Wall -Wextra -Werror -fno-omit-frame-pointer \
    -fsanitize=address,undefined -fno-sanitize-recover=all $inc \
    -o "$out/schema_selftest" fuzz/schema_selftest.c "$src" $libs
echo "fuzz: selftest"
"$out/schema_selftest" conf/schemas >"$out/selftest.tap" \
    || { grep -v '^ok' "$out/selftest.tap"; die "selftest failed"; }
tail -1 "$out/selftest.tap" | sed 's/^/fuzz: selftest passed, /'

[ "$mode" = selftest ] && exit 0

need_clang

# 2. line coverage of the schema code by the corpus and the unit tests
if [ "$mode" = coverage ]; then
    prof="-fprofile-instr-generate -fcoverage-mapping"
    # shellcheck disable=SC2086
    "$clang" -g -O0 $prof -fsanitize=fuzzer $inc -o "$out/schema_fuzzer_cov" \
        fuzz/schema_fuzzer.c "$src" $libs
    # shellcheck disable=SC2086
    "$clang" -g -O0 $prof $inc -o "$out/schema_selftest_cov" \
        fuzz/schema_selftest.c "$src" $libs
    rm -f "$out"/cov-*.profraw
    LLVM_PROFILE_FILE="$out/cov-fuzz.profraw" "$out/schema_fuzzer_cov" \
        -runs=0 fuzz/corpus >/dev/null 2>&1
    LLVM_PROFILE_FILE="$out/cov-self.profraw" "$out/schema_selftest_cov" \
        conf/schemas >/dev/null
    profdata=$(command -v llvm-profdata || command -v llvm-profdata-14) \
        || die "no llvm-profdata"
    llvmcov=$(command -v llvm-cov || command -v llvm-cov-14) || die "no llvm-cov"
    "$profdata" merge -o "$out/cov-fuzz.profdata" "$out/cov-fuzz.profraw"
    "$profdata" merge -o "$out/cov-all.profdata" "$out"/cov-*.profraw
    echo "fuzz: coverage of $src by fuzz/corpus:"
    "$llvmcov" report "$out/schema_fuzzer_cov" \
        -instr-profile="$out/cov-fuzz.profdata" "$src" | tail -1
    echo "fuzz: by fuzz/corpus and the unit tests:"
    "$llvmcov" report "$out/schema_fuzzer_cov" -object "$out/schema_selftest_cov" \
        -instr-profile="$out/cov-all.profdata" "$src" | tail -1
    exit 0
fi

# 3. the fuzzer
# shellcheck disable=SC2086
"$clang" -g -O1 -W -Wall -Wextra -Wno-unused-parameter -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $inc \
    -o "$out/schema_fuzzer" fuzz/schema_fuzzer.c "$src" $libs

case $jobs in ''|*[!0-9]*|0) die "FUZZ_JOBS must be a positive number" ;; esac
# -jobs=1 would still fork a child that logs elsewhere: only for several
parallel=
[ "$jobs" -gt 1 ] && parallel="-jobs=$jobs -workers=$jobs"

echo "fuzz: $mode s, new inputs in $out/corpus, seeds in fuzz/corpus"
set +e
# shellcheck disable=SC2086
(cd "$out" && ./schema_fuzzer -max_total_time="$mode" -max_len="$max_len" \
    -timeout=10 -rss_limit_mb=2048 -dict="$top/fuzz/schema.dict" $parallel \
    -artifact_prefix="$top/$out/" -print_final_stats=1 \
    corpus "$top/fuzz/corpus") 2>"$out/fuzz.log"
rc=$?
set -e
[ "$jobs" -gt 1 ] && cat "$out"/fuzz-*.log >>"$out/fuzz.log" 2>/dev/null
grep -E '^(#[0-9]+ +DONE|Done|stat::|SUMMARY|==[0-9]+==ERROR)' "$out/fuzz.log" || true
[ "$rc" = 0 ] || { tail -40 "$out/fuzz.log"; die "fuzzer failed (exit $rc); see $out/fuzz.log"; }

# 4. fuzz/corpus gains the inputs that reach edges it does not reach yet
#    (libFuzzer -merge, edges only: -use_counters=0); it never loses any,
#    so runs do not churn it
if [ "$merge" = 1 ]; then
    before=$(find fuzz/corpus -type f | wc -l)
    "$out/schema_fuzzer" -merge=1 -use_counters=0 -max_len="$max_len" \
        -timeout=10 fuzz/corpus "$out/corpus" >"$out/merge.log" 2>&1 \
        || { tail -20 "$out/merge.log"; die "merge failed"; }
    after=$(find fuzz/corpus -type f | wc -l)
    echo "fuzz: fuzz/corpus $before -> $after inputs"
fi
