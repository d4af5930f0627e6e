local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, done = b.setup, b.done

-- Issue 31 item 4: every connection toggles the tasks of ONE user (the first seeded pair's
-- owner), so the requests contend for that user's change lock and rows.
local mine = {}
local next_mine = 1

function init(args)
  b.init(args)
  local owner = b.data.owned[1][1]
  for _, pair in ipairs(b.data.owned) do
    if pair[1] == owner then
      table.insert(mine, pair)
    end
  end
  next_mine = ((b.tid - 1) % #mine) + 1
end

function request()
  local pair = mine[next_mine]
  next_mine = (next_mine % #mine) + 1
  return b.send("PATCH", "/api/tasks/" .. pair[2] .. "/complete", pair[1])
end

function response(status, headers, body)
  b.check(status, body)
end
