-- wrk script: POST one small valid event per request to SpongeBob/Fruits.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"fruit":"pineapple","quantity":3}'

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status))
end
