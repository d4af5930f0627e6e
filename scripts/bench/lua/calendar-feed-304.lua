local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A calendar app revalidates a feed it has (its current ETag, the data file's `tags`): 304.
function request()
  local n = b.user()
  return wrk.format("GET", "/api/calendar/" .. b.data.tokens[n] .. ".ics", {
    ["If-None-Match"] = b.data.tags[n],
  })
end

function response(status, headers, body)
  if status == 304 then
    status = 200 -- the expected answer: not an error
  end
  b.check(status, body)
end
