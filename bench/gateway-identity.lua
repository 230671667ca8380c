-- wrk script for bench/gateway-identity.sh, bench/gateway-validation.sh and
-- bench/registry-lookup.sh: every request names a variant and a tenant.
--
--   BENCH_PREFIX=/a BENCH_TENANTS=8 wrk -t2 -c32 -d10s --latency \
--       -s bench/gateway-identity.lua http://127.0.0.1:FRONT
--
-- Each request is METHOD PREFIX/t/NNNN/PATH with NNNN drawn uniformly from
-- 0001..BENCH_TENANTS for every request; the front server maps
-- /a/t/NNNN/ (/b/t/NNNN/) to its own keep-alive pool to gateway A (B)
-- with client certificate bench-NNNN.
--
-- Environment: BENCH_PREFIX (/a), BENCH_TENANTS (1), BENCH_METHOD (GET),
-- BENCH_PATH (/v1/samples), BENCH_BODY (a file: sent as the body, with
-- Content-Type: application/json).  The request strings are built once
-- per thread, so wrk's own cost is the same for every variant.

local n = tonumber(os.getenv("BENCH_TENANTS") or "1")
local prefix = os.getenv("BENCH_PREFIX") or "/a"
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/v1/samples"
local bodyfile = os.getenv("BENCH_BODY") or ""
local reqs = {}
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("id", threads)
end

function init(args)
   local body = nil
   local headers = {}
   if bodyfile ~= "" then
      local f = assert(io.open(bodyfile, "rb"))
      body = f:read("*a")
      f:close()
      headers["Content-Type"] = "application/json"
   end
   math.randomseed(os.time() * 7919 + (id or 0) * 104729)
   for i = 1, n do
      local h = {}
      for k, v in pairs(headers) do h[k] = v end
      reqs[i] = wrk.format(method, string.format("%s/t/%04d%s", prefix, i, path), h, body)
   end
end

function request()
   return reqs[math.random(n)]
end
