-- wrk script: prints one machine-readable line with exact latency percentiles (microseconds,
-- from wrk's own histogram) instead of wrk's rounded human-readable table.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d " ..
    "mean_us=%.1f max_us=%d errors_connect=%d errors_read=%d errors_write=%d " ..
    "errors_status=%d errors_timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
