local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- Delete a list of 1,000 tasks (subtasks included) made for it (the pool file: owner and list
-- id, one list per request, never reused).
function request()
  local pair = b.disposable()
  if pair == nil then
    exhausted = exhausted + 1
    -- Counted as a failure below: the pool was too small for this run.
    return b.send("DELETE", "/api/lists/0", 1)
  end
  return b.send("DELETE", "/api/lists/" .. pair[2], pair[1])
end

function response(status, headers, body)
  b.check(status, body)
end
