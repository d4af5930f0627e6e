local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- Create the task a typed 100-character line makes (POST /api/tasks/quick: 201;
-- the runner deletes what was created after the scenario), a `time_zone` sent and no `#list` or `+member`: the service looks nothing up
-- (scripts/bench/quickadd.py; its BODY, which tests/scripts/test_bench.py checks is this one).
local body = '{"text":"Buy oat milk and bread for the weekend brunch with Sam and Alex tomorrow at 5pm @errands @food !high","time_zone":"Europe/Berlin"}'

function request()
  return b.send("POST", "/api/tasks/quick", b.user(), body)
end

function response(status, headers, body)
  b.check(status, body)
end
