-- wrk script: the original clients' form body (issue 15's load shape), one valid event per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = 'event=%7B%22fruit%22%3A%22kiwi%22%7D'

done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f p99.9_ms=%.2f max_ms=%.2f non2xx=%d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, summary.errors.status))
end
