local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A member lists the list shared with it (100 tasks, one page), a different member each
-- request (the data file's `tokens` are the members', `lists` theirs in the same order).
function request()
  local n = b.user()
  return b.get("/api/tasks?list_id=" .. b.data.lists[n], n)
end

function response(status, headers, body)
  b.check(status, body)
end
