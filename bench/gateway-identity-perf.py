#!/usr/bin/env python3
"""Where the gateway's extra time goes: two `perf report` listings (A, B)
compared per request.

    gateway-identity-perf.py HZ REQ_A SELF_A CHILD_A REQ_B SELF_B CHILD_B

SELF_x: `perf report -n --stdio --no-children --sort dso,sym -g none`
CHILD_x: `perf report -n --stdio --children --sort dso,sym -g none`
REQ_x: requests the profiled worker served while perf recorded; HZ: the
sampling frequency of `perf record -F` (cpu-clock), so one sample stands
for 1e6/HZ microseconds of CPU.

Prints markdown: the profiled CPU per request of each variant, the
symbols whose self time differs most (us per request, A - B), the same by
shared object, and the inclusive time of the gateway module's functions
(and of the OpenSSL calls they make) per request in A.
"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?(\d+)\s+(.*?)\s*$")


def parse_self(path):
    syms, dsos = defaultdict(int), defaultdict(int)
    for line in open(path, errors="replace"):
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        n, rest = int(m.group(3)), m.group(4)
        parts = re.split(r"\s+\[[.kgu]\]\s+", rest, maxsplit=1)
        dso = parts[0].strip()
        sym = parts[1].strip() if len(parts) > 1 else rest
        syms[(dso, sym)] += n
        dsos[dso] += n
    return syms, dsos


def parse_children(path):
    out = defaultdict(float)
    for line in open(path, errors="replace"):
        if line.startswith("#"):
            continue
        # children mode: "Children  Self  Samples  Shared-Object  [.] Symbol"
        m = re.match(r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\S+)\s+\[[.kgu]\]\s+(.*?)\s*$", line)
        if not m:
            continue
        # one line per (object, symbol): a name in two objects (a PLT
        # stub and the function) adds up
        out[m.group(5)] += float(m.group(1))
    return out


def main():
    hz = float(sys.argv[1])
    us = 1e6 / hz
    req_a, self_a, child_a = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    req_b, self_b, child_b = int(sys.argv[5]), sys.argv[6], sys.argv[7]
    sa, da = parse_self(self_a)
    sb, db = parse_self(self_b)
    tot_a, tot_b = sum(sa.values()), sum(sb.values())
    pa = lambda n: n * us / req_a
    pb = lambda n: n * us / req_b
    print(f"Profiled CPU of the gateway worker per request: A {pa(tot_a):.1f} us "
          f"({tot_a} samples, {req_a} requests), B {pb(tot_b):.1f} us "
          f"({tot_b} samples, {req_b} requests): A - B = {pa(tot_a) - pb(tot_b):+.1f} us")
    print()
    print("| shared object | A us/request | B us/request | A - B |")
    print("| --- | ---: | ---: | ---: |")
    keys = sorted(set(da) | set(db), key=lambda k: -(pa(da.get(k, 0)) - pb(db.get(k, 0))))
    for k in keys:
        a, b = pa(da.get(k, 0)), pb(db.get(k, 0))
        if max(a, b) >= 0.2:
            print(f"| {k} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
    print()
    print("| symbol (self time) | shared object | A us/request | B us/request | A - B |")
    print("| --- | --- | ---: | ---: | ---: |")
    keys = sorted(set(sa) | set(sb), key=lambda k: -(pa(sa.get(k, 0)) - pb(sb.get(k, 0))))
    for k in keys[:30]:
        a, b = pa(sa.get(k, 0)), pb(sb.get(k, 0))
        if a - b < 0.05:
            break
        print(f"| {k[1]} | {k[0]} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
    print()
    ca = parse_children(child_a)
    if ca:
        print("Inclusive time in A (self + callees, from the call graphs), us per request:")
        print()
        print("| function | A us/request | share of A's profiled CPU |")
        print("| --- | ---: | ---: |")
        want = re.compile(r"^(ngx_http_mealapi_|ngx_mealapi_|HMAC|EVP_|X509_digest|"
                          r"json_|mealapi_|pcre2_|ngx_nutripro_|ngx_http_read_client_request_body|"
                          r"ngx_http_proxy_handler|ngx_ssl_|SSL_read|SSL_write|"
                          r"ngx_http_core_run_phases|ngx_process_events_and_timers)")
        rows = [(s, p) for s, p in ca.items() if want.match(s)]
        rows.sort(key=lambda r: -r[1])
        for s, p in rows[:40]:
            print(f"| {s} | {p / 100 * tot_a * us / req_a:.2f} | {p:.1f} % |")


if __name__ == "__main__":
    main()
