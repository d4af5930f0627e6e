local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- The owner lists the same list as shared-list.lua's member, its own: the same request, the
-- owner's token (the data file's `owners`) instead of the member's.
function request()
  local n = b.user()
  return wrk.format("GET", "/api/tasks?list_id=" .. b.data.lists[n], {
    ["Authorization"] = "Bearer " .. b.data.owners[n],
  })
end

function response(status, headers, body)
  b.check(status, body)
end
