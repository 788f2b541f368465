-- POST bodies for wrk, from the environment; prints a JSON summary when done.
--   BENCH_PATH        the request path
--   BENCH_BODY        the JSON body of every request
--   BENCH_BODY_ALT    if set, every other request sends this body instead
--   BENCH_STOP_AFTER  if > 0, the thread stops after that many responses (use -t1)

local path = os.getenv("BENCH_PATH") or "/bench/chat/completions"
local body = os.getenv("BENCH_BODY") or "{}"
local alt = os.getenv("BENCH_BODY_ALT")
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0") or 0

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local requests = nil
local sent = 0
local seen = 0

if alt ~= nil and alt ~= "" then
  requests = {
    wrk.format("POST", path, nil, body),
    wrk.format("POST", path, nil, alt),
  }
  request = function()
    sent = sent + 1
    return requests[(sent % 2) + 1]
  end
end

if stop_after > 0 then
  response = function(status, headers, resp_body)
    seen = seen + 1
    if seen == stop_after then
      -- wrk's main thread sleeps for the whole -d; the harness sends SIGINT on this line.
      io.write("BENCH_STOPPED\n")
      io.flush()
      wrk.thread:stop()
    end
  end
end

done = function(summary, latency, reqs)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"latency_p50_us":%d,"latency_p99_us":%d}\n',
    summary.requests, summary.bytes, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
