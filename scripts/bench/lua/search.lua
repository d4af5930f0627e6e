local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- List with a filter and a search term: pending tasks whose title or description
-- contains "invoice".
function request()
  return b.get("/api/tasks?status=pending&q=invoice", b.user())
end

function response(status, headers, body)
  b.check(status, body)
end
