local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- Get one seeded task, with its owner's token.
function request()
  local pair = b.owned()
  return b.get("/api/tasks/" .. pair[2], pair[1])
end

function response(status, headers, body)
  b.check(status, body)
end
