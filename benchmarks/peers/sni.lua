-- wrk script for the proxy-throughput benchmark: connect to BENCH_CONNECT (host:port) while the URL's host
-- (a.test) gives the SNI and the Host header; print one JSON line with the summary when done.
local target = os.getenv("BENCH_CONNECT")

function wrk.resolve(host, service)
  if target then
    local h, p = target:match("^(.*):(%d+)$")
    wrk.addrs = wrk.lookup(h, p)
  else
    wrk.addrs = wrk.lookup(host, service)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"bytes":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
