local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A CalDAV client polls its 1,000-task list from a token with no change since (the data
-- file's `unchanged`), signed in with its app password; a different account each request.
function request()
  local n = b.user()
  local body = '<D:sync-collection xmlns:D="DAV:"><D:sync-token>' .. b.data.unchanged[n]
    .. '</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>'
    .. '</D:sync-collection>'
  local headers = {
    ["Authorization"] = b.data.tokens[n],
    ["Content-Type"] = "application/xml",
    ["Depth"] = "0",
  }
  return wrk.format("REPORT", "/dav/calendars/" .. b.data.lists[n] .. "/", headers, body)
end

function response(status, headers, body)
  b.check(status, body)
end
