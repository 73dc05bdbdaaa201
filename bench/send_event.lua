-- wrk script: POST one small valid event per request to SpongeBob/Fruits.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- WRK_BODY: another body (e.g. an invalid event: the 422 path); WRK_TOKEN: a bearer token;
-- WRK_IDEMPOTENCY=1: a fresh Idempotency-Key on every request.
wrk.body = os.getenv("WRK_BODY") or '{"fruit":"pineapple","quantity":3}'
local token = os.getenv("WRK_TOKEN")
if token then
  wrk.headers["Authorization"] = "Bearer " .. token
end
if os.getenv("WRK_IDEMPOTENCY") == "1" then
  local counter = 0
  local run = tostring(os.time()) .. "-" .. tostring(math.random(1000000))
  request = function()
    counter = counter + 1
    local headers = {}
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    headers["Idempotency-Key"] = run .. "-" .. counter
    return wrk.format(nil, nil, headers, nil)
  end
end

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status))
end
