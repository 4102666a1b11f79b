-- wrk script: every request carries one of the pre-created session cookies.
--
-- COOKIES_FILE: one "name=value" Cookie header value per line (written by run.ts).
-- PICK=shuffle (default): each wrk thread walks a random permutation of the
--   cookies, so consecutive requests use different sessions and two requests
--   in flight never share one (with fewer connections than cookies); every
--   session is hit equally often. This measures the protocol's round trips
--   without write-write conflicts.
-- PICK=uniform: an independent uniform pick per request, so concurrent
--   requests sometimes hit the same session (conflicts, lost updates).
-- RESULT_FILE: where done() writes the summary as one JSON line.

local cookies = {}
local file = os.getenv("COOKIES_FILE")
if file and file ~= "" then
  for line in io.lines(file) do
    if line ~= "" then cookies[#cookies + 1] = line end
  end
end
local pick = os.getenv("PICK") or "shuffle"

local requests = {}
local order = {}
local position = 0

function init(args)
  -- Per-thread seed: wrk starts threads in the same second.
  local seed = os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000
  math.randomseed(seed)
  if #cookies == 0 then
    requests[1] = wrk.format("GET", nil, {})
  else
    for i, cookie in ipairs(cookies) do
      requests[i] = wrk.format("GET", nil, { ["Cookie"] = cookie })
      order[i] = i
    end
    for i = #order, 2, -1 do
      local j = math.random(i)
      order[i], order[j] = order[j], order[i]
    end
  end
end

function request()
  if #requests == 1 then return requests[1] end
  if pick == "uniform" then
    return requests[math.random(#requests)]
  end
  position = position % #order + 1
  return requests[order[position]]
end

function done(summary, latency, _requests)
  local out = io.open(os.getenv("RESULT_FILE"), "w")
  out:write(string.format(
    '{"requests":%d,"durationUs":%d,"bytes":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"meanUs":%.1f,"maxUs":%d,' ..
    '"errConnect":%d,"errRead":%d,"errWrite":%d,"errStatus":%d,"errTimeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
  out:close()
end
