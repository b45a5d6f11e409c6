--- The default scripts, as one handler table a merchant's own file can build on.
-- The binary carries scripts/*.lua as they shipped with it, so `return require "returnflow.defaults"`
-- maps exactly as the default scripts folder does, and a merchant's handler can call
-- `defaults["return.created"](ret, out)` and then add or change what it emits. Each trigger's
-- function runs every default file's "*" and own handler in file-name order, as the host would.
-- For scripts only: the default scripts it reads are compiled into the binary and returnflow.native,
-- so outside the sandbox (plain lua5.4) this module has nothing to load.
-- @module returnflow.defaults
local files = require "returnflow.defaults.files"
local runtime = require "returnflow.runtime"

local handler_tables = {}
for i, name in ipairs(files) do handler_tables[i] = require("returnflow.defaults." .. name) end

local function for_trigger(trigger)
  local chain = {}
  for _, handlers in ipairs(handler_tables) do
    chain[#chain + 1] = handlers["*"]
    chain[#chain + 1] = handlers[trigger]
  end
  if #chain == 0 then return nil end
  return function(event, out)
    for i = 1, #chain do chain[i](event, out) end
  end
end

local M = {}
for trigger in pairs(runtime.TRIGGERS) do M[trigger] = for_trigger(trigger) end
return M
