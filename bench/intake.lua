-- SPDX-License-Identifier: MIT
--
-- wrk script for bench/bench_intake.py: every request is a valid BigCommerce
-- webhook (store/customer/updated, the secret header ferry checks) with a
-- `hash` of its own, so that intake never recognises one as a redelivery and
-- every acknowledgement is a durable job row. The hash is the run tag, the
-- wrk thread and a per-thread counter; the customer id walks with the counter
-- so that jobs have distinct keys as real traffic does.
--
-- usage: wrk -t T -c C -d D -s bench/intake.lua URL -- SECRET TAG
-- done() prints one line, "FERRY_BENCH_JSON {...}", with the request count,
-- errors and latency percentiles in microseconds.

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  threads[#threads + 1] = thread
end

function init(args)
  secret = args[1] or ""
  tag = tonumber(args[2] or "0") or 0
  n = 0
  headers = { ["Content-Type"] = "application/json", ["X-Ferry-Secret"] = secret }
  stamp = tostring(os.time())
end

function request()
  n = n + 1
  -- 40 hex digits, as BigCommerce's sha1 hashes are.
  local hash = string.format("%08x%08x%024x", tag, tid, n)
  local body = '{"scope":"store/customer/updated","store_id":"1000001","data":{"type":"customer","id":'
    .. tostring(tid * 100000000 + n) .. '},"hash":"' .. hash .. '","created_at":' .. stamp
    .. ',"producer":"stores/teststore"}'
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'FERRY_BENCH_JSON {"tool":"wrk","requests":%d,"duration_us":%d,"connect_errors":%d,'
      .. '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,'
      .. '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    latency.mean))
end
