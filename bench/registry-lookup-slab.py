#!/usr/bin/env python3
"""How full an nginx shared-memory zone is, read from a running worker.

    registry-lookup-slab.py PID ZONE-BYTES

nginx does not expose a zone's use, but every zone begins with its slab
allocator's header (ngx_slab_pool_t), which counts the free pages and,
per size class, the chunks in use and the allocations that failed.  This
reads that header through /proc/PID/mem (needs root or the worker's user)
from the zone's mapping: the shared mapping of exactly ZONE-BYTES bytes.

Layout of ngx_slab_pool_t on x86_64 (nginx 1.22, NGX_HAVE_POSIX_SEM),
checked at run time against the mapping (pool->addr must be the mapping's
start and pool->end inside it):

    0 lock (16)  16 min_size  24 min_shift  32 pages  40 last
    48 free (24)  72 stats  80 pfree  88 start  96 end
    104 mutex (64)  168 log_ctx  176 zero, log_nomem  184 data  192 addr

ngx_slab_stat_t: total, used, reqs, fails (4 x 8 bytes), one per size
class from min_size (8) to half a page (2048).

Prints key=value lines: zone_bytes, pages, free_pages, used_bytes (pages
in use x 4096), and per size class in use "slot_SIZE=used/total
reqs=N fails=N"; fails_total.
"""
import struct
import sys


def main():
    pid, size = int(sys.argv[1]), int(sys.argv[2])
    start = None
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if hi - lo == size and parts[1].endswith("s"):
                if start is not None:
                    sys.exit("more than one shared mapping of that size")
                start = lo
    if start is None:
        sys.exit(f"no shared mapping of {size} bytes in process {pid}")

    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(start)
        hdr = mem.read(200)
        q = lambda off: struct.unpack_from("<Q", hdr, off)[0]
        min_size, min_shift = q(16), q(24)
        stats, pfree, pstart, pend, addr = q(72), q(80), q(88), q(96), q(192)
        if addr != start or not (start < pstart < pend <= start + size) \
                or min_size != 8 or min_shift != 3:
            sys.exit("unexpected ngx_slab_pool_t layout: addr %x start %x "
                     "pages %x-%x min_size %d" % (addr, start, pstart, pend,
                                                  min_size))
        pages = (pend - pstart) // 4096
        print(f"zone_bytes={size}")
        print(f"pages={pages}")
        print(f"free_pages={pfree}")
        print(f"used_bytes={(pages - pfree) * 4096}")
        n = 12 - min_shift
        mem.seek(stats)
        raw = mem.read(32 * n)
        fails_total = 0
        for i in range(n):
            total, used, reqs, fails = struct.unpack_from("<4Q", raw, 32 * i)
            fails_total += fails
            if total or used or fails:
                print(f"slot_{min_size << i}={used}/{total} reqs={reqs} fails={fails}")
        print(f"fails_total={fails_total}")


if __name__ == "__main__":
    main()
