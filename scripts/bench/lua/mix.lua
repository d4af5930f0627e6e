local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A realistic mix: mostly reads, some writes. Tasks created here are deleted here (their
-- Location and owner are read from the 201), so the data set neither grows nor drains.
local created = {}
local n = 0
local priorities = { "none", "low", "medium", "high" }

local function op()
  local r = math.random(100)
  if r <= 40 then return "list" end
  if r <= 50 then return "search" end
  if r <= 75 then return "get" end
  if r <= 82 then return "create" end
  if r <= 88 then return "update" end
  if r <= 94 then return "toggle" end
  return "delete"
end

function request()
  n = n + 1
  local kind = op()
  if kind == "delete" and #created == 0 then
    kind = "create"
  end
  if kind == "list" then
    return b.get("/api/tasks", b.user())
  elseif kind == "search" then
    return b.get("/api/tasks?status=pending&q=invoice", b.user())
  elseif kind == "get" then
    local pair = b.owned()
    return b.get("/api/tasks/" .. pair[2], pair[1])
  elseif kind == "create" then
    local body = '{"title":"Mixed task ' .. n .. '","priority":"medium","tags":["bench"]}'
    return b.send("POST", "/api/tasks", b.user(), body)
  elseif kind == "update" then
    local pair = b.owned()
    local body = '{"priority":"' .. priorities[1 + n % 4] .. '"}'
    return b.send("PATCH", "/api/tasks/" .. pair[2], pair[1], body)
  elseif kind == "toggle" then
    local pair = b.owned()
    return b.send("PATCH", "/api/tasks/" .. pair[2] .. "/complete", pair[1])
  end
  local task = table.remove(created)
  return b.send("DELETE", task[2], task[1])
end

function response(status, headers, body)
  if b.check(status, body) and status == 201 then
    local location = headers["location"] or headers["Location"]
    local owner = body and string.match(body, '"user_id":%s*"user%-(%d+)"')
    if location and owner then
      table.insert(created, { tonumber(owner), location })
    end
  end
end
