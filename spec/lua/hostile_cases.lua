-- The hostile-script cases (format: spec/hostile/README.md), listed for the two runners
-- (spec/lua/hostile_map.lua, spec/lua/hostile_serve.lua) and split into the shards they run as.
local h = require "helpers"

local M = {}

-- The per-event CPU cap of a case without a `cap:` line. A case that is to be stopped by the cap
-- (expect failed or refused, reason cap) gets STOP_CAP: it runs until the cap stops it, so a smaller
-- cap is the same check at less than half the CPU (both runners, both builds; 15 cases set 0.2
-- themselves). Every other case gets DEFAULT_CAP: its work must fit under the cap.
local DEFAULT_CAP, STOP_CAP = 0.5, 0.2

--- A case's header (its leading comment block of "-- key: value" lines; other comment lines continue
-- the one before) as a table; cap a number (seconds), kill the signal name of "serve: kill SIG".
function M.header(text)
  local hd = {}
  for line in text:gmatch("[^\n]*") do
    if not line:match("^%-%-") then break end
    local key, value = line:match("^%-%- (%a+): (.*)$")
    if key then hd[key] = value end
  end
  local stopped = (hd.expect == "failed" or hd.expect == "refused") and hd.reason == "cap"
  hd.cap = tonumber(hd.cap) or (stopped and STOP_CAP or DEFAULT_CAP)
  hd.kill = hd.serve and hd.serve:match("^kill (%u+)$")
  return hd
end

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
