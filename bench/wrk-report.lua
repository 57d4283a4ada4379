-- wrk script: optional pacing and connection-per-request, and one JSON line of results.
-- BENCH_DELAY_MS: pause between a response and the next request on a connection (wrk has no
-- clock in Lua, so a fixed rate is approximated by connections * 1000 / delay).
-- BENCH_CLOSE=1: send "Connection: close", so every request opens a new connection.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if os.getenv("BENCH_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"bytes":%d,"errors":%d,"status":%d,' ..
      '"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
