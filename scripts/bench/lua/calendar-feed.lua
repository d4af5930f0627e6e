local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A calendar app fetches a whole feed of 1,000 tasks (no bearer header: the URL's token is
-- the credential), a different feed each request (the data file's `tokens`).
function request()
  local n = b.user()
  return wrk.format("GET", "/api/calendar/" .. b.data.tokens[n] .. ".ics")
end

function response(status, headers, body)
  b.check(status, body)
end
