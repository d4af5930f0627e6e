-- Shared by every scenario script: data loading, per-request tokens, non-2xx counting and
-- the machine-readable summary line that scripts/bench/wrk.py parses.
--
-- wrk runs one Lua state per thread (request/response) plus one for setup/done. Each thread
-- loads the data file given after `--` (tokens in user order, owned task ids) and walks the
-- users with its own stride, so consecutive requests come from different users.

local M = {}

local threads = {}

function M.setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function M.init(args)
  M.data = dofile(args[1])
  M.nthreads = tonumber(args[2])
  M.tid = tid
  M.pool = args[3] and dofile(args[3]) or nil
  M.next_user = ((tid - 1) % #M.data.tokens) + 1
  -- The list scenarios' data file has no seeded task pairs, only lists.
  M.next_owned = ((tid - 1) % math.max(1, #(M.data.owned or {}))) + 1
  M.next_pool = tid
  non2xx = 0
  exhausted = 0
  first_bad = ""
end

function M.auth(user)
  return "Bearer " .. M.data.tokens[user]
end

-- The next user (round-robin over all seeded users, starting at this thread's offset).
function M.user()
  local user = M.next_user
  M.next_user = user + M.nthreads
  if M.next_user > #M.data.tokens then
    M.next_user = ((M.next_user - 1) % #M.data.tokens) + 1
  end
  return user
end

-- A seeded task and its owner: {user, id}.
function M.owned()
  local pair = M.data.owned[M.next_owned]
  M.next_owned = M.next_owned + M.nthreads
  if M.next_owned > #M.data.owned then
    M.next_owned = ((M.next_owned - 1) % #M.data.owned) + 1
  end
  return pair
end

-- A task made for deleting, used once: {user, id}, or nil when the pool is used up.
function M.disposable()
  local pair = M.pool[M.next_pool]
  M.next_pool = M.next_pool + M.nthreads
  return pair
end

function M.get(path, user)
  return wrk.format("GET", path, { ["Authorization"] = M.auth(user) })
end

function M.send(method, path, user, body)
  local headers = { ["Authorization"] = M.auth(user) }
  if body then
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(method, path, headers, body)
end

function M.check(status, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200)
    end
    return false
  end
  return true
end

local function escape(s)
  return (string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end))
end

function M.done(summary, latency, requests)
  local bad, used_up, sample = 0, 0, ""
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    used_up = used_up + (thread:get("exhausted") or 0)
    local first = thread:get("first_bad") or ""
    if sample == "" and first ~= "" then
      sample = first
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"non2xx":%d,"exhausted":%d,"first_bad":"%s",' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    bad, used_up, escape(sample),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end

return M
