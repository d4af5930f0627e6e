local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A CalDAV client saves an edit: the whole object PUT to its href, signed in with HTTP Basic
-- (the data file's `tokens` are the headers), no If-Match (as Tasks.org sends it); a
-- different account each request (scripts/bench/dav.py).
local n = 0

function request()
  n = n + 1
  local user = b.user()
  local path = b.data.paths[user]
  local uid = path:match("([^/]+)%.ics$")
  local body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench//EN\r\nBEGIN:VTODO\r\n"
    .. "UID:" .. uid .. "\r\nSUMMARY:Saved on the phone " .. n .. "\r\nPRIORITY:"
    .. (1 + n % 9) .. "\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
  local headers = { ["Authorization"] = b.data.tokens[user], ["Content-Type"] = "text/calendar" }
  return wrk.format("PUT", path, headers, body)
end

function response(status, headers, body)
  b.check(status, body)
end
