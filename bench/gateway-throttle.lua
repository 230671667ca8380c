-- wrk script for bench/gateway-throttle.sh: every request names a tenant.
--
--   BENCH_TENANTS=1000 wrk -t2 -c64 -d10s -s bench/gateway-throttle.lua \
--       http://127.0.0.1:PORT
--
-- Each request is GET /t/NNNN/v1/samples with NNNN drawn uniformly from
-- 0001..BENCH_TENANTS (default 1000), independently for every request.  The
-- front server maps /t/NNNN/ to its own upstream (keep-alive pool) and
-- client certificate bench-NNNN, so the gateway sees tenant bench-NNNN.
-- The 1,000 request strings are built once per thread: request() only
-- draws a number, so wrk's own cost is the same for both variants.

local n = tonumber(os.getenv("BENCH_TENANTS") or "1000")
local reqs = {}
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("id", threads)
end

function init(args)
   -- a different sequence per thread and per run
   math.randomseed(os.time() * 7919 + (id or 0) * 104729)
   for i = 1, n do
      reqs[i] = wrk.format("GET", string.format("/t/%04d/v1/samples", i))
   end
end

function request()
   return reqs[math.random(n)]
end
