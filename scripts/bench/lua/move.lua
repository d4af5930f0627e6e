local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- Move a top-level task of a list owner's seeded list of 1,000 (the data file's `lists`, in
-- seeded order) right after one of four fixed anchors, every 37th task in turn: the move takes
-- the midpoint of a gap, and about every sixteenth into the same gap finds its neighbours
-- adjacent and respaces a run of siblings. The runner puts the tasks back after the run.
local anchors = { 100, 300, 500, 700 }
local n = 0

function request()
  n = n + 1
  local owner = b.user()
  local tops = b.data.lists[owner]
  local anchor = tops[anchors[1 + n % #anchors]]
  local moved = tops[1 + (n * 37) % #tops]
  if moved == anchor then
    moved = tops[1 + (n * 37 + 1) % #tops]
  end
  return b.send("POST", "/api/tasks/" .. moved .. "/move", owner, '{"after_id":' .. anchor .. '}')
end

function response(status, headers, body)
  b.check(status, body)
end
