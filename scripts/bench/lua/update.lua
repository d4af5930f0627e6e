local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- PATCH a seeded task's title and priority.
local n = 0
local priorities = { "none", "low", "medium", "high" }

function request()
  n = n + 1
  local pair = b.owned()
  local body = '{"title":"Renamed task ' .. n .. '","priority":"' .. priorities[1 + n % 4] .. '"}'
  return b.send("PATCH", "/api/tasks/" .. pair[2], pair[1], body)
end

function response(status, headers, body)
  b.check(status, body)
end
