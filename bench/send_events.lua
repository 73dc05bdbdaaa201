-- wrk script: POST a batch of 500 small valid events per request to SpongeBob/Fruits.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local event = '{"fruit":"pineapple","quantity":3}'
wrk.body = "[" .. string.rep(event .. ",", 499) .. event .. "]"

done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d events_per_s=%.0f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status, 500 * summary.requests / (summary.duration / 1e6)))
end
