local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A CalDAV client saves an edit naming the object's tag: the whole object PUT to its href with
-- If-Match, signed in with HTTP Basic (the data file's `tokens` are the headers). The pool file
-- holds (account, path, tag) triples of throw-away tasks, each PUT once: a tag serves one write
-- (scripts/bench/dav.py, `make_pool`).
local n = 0

function request()
  n = n + 1
  local item = b.disposable()
  if item == nil then
    exhausted = exhausted + 1
    -- Counted as a failure below: the pool was too small for this run.
    return wrk.format("PUT", "/dav/calendars/no-list/none.ics", { ["Authorization"] = b.data.tokens[1] })
  end
  local user, path, tag = item[1], item[2], item[3]
  local uid = path:match("([^/]+)%.ics$")
  local body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench//EN\r\nBEGIN:VTODO\r\n"
    .. "UID:" .. uid .. "\r\nSUMMARY:Saved on the phone " .. n .. "\r\nPRIORITY:"
    .. (1 + n % 9) .. "\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
  local headers = {
    ["Authorization"] = b.data.tokens[user],
    ["Content-Type"] = "text/calendar",
    ["If-Match"] = tag,
  }
  return wrk.format("PUT", path, headers, body)
end

function response(status, headers, body)
  b.check(status, body)
end
