-- The hostile-script cases (format: spec/hostile/README.md), listed for the two runners
-- (spec/lua/hostile_map.lua, spec/lua/hostile_serve.lua) and split into the shards they run as.
local h = require "helpers"

local M = {}

--- The case files under dir: the standing ones, then (unless redteam is false) the red team's
-- (dir/redteam/), each set sorted; only shard `shard` of `shards`: every shards-th case, so that each
-- shard gets its share of the slow ones.
function M.list(dir, shard, shards, redteam)
  local list = {}
  local globs = { h.quote(dir) .. "/*.lua" }
  if redteam ~= false then globs[2] = h.quote(dir) .. "/redteam/*.lua" end
  for _, glob in ipairs(globs) do
    local p = io.popen("ls " .. glob .. " 2>/dev/null")
    local part = {}
    for path in p:lines() do part[#part + 1] = path end
    p:close()
    table.sort(part)
    for _, path in ipairs(part) do list[#list + 1] = path end
  end
  local mine = {}
  for k, path in ipairs(list) do
    if (k - 1) % shards + 1 == shard then mine[#mine + 1] = path end
  end
  return mine
end

return M
