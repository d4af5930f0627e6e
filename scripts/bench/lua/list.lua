local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- List the first page (100 tasks) of a different user each request.
function request()
  return b.get("/api/tasks", b.user())
end

function response(status, headers, body)
  b.check(status, body)
end
