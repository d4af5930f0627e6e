local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- Toggle a seeded task's completion (PATCH .../complete without a body).
function request()
  local pair = b.owned()
  return b.send("PATCH", "/api/tasks/" .. pair[2] .. "/complete", pair[1])
end

function response(status, headers, body)
  b.check(status, body)
end
