local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- Create a task (the runner deletes what was created after the scenario).
local n = 0

function request()
  n = n + 1
  local body = '{"title":"Benchmark task ' .. n .. '","description":"made by wrk",' ..
    '"priority":"high","due_date":"2030-12-01","tags":["bench","work"]}'
  return b.send("POST", "/api/tasks", b.user(), body)
end

function response(status, headers, body)
  b.check(status, body)
end
