--- `returnflow init DIR`: a merchant's starter folder that passes `returnflow test` as written.
-- The files are here, as text, so the binary can write them anywhere without a share folder.
-- @module returnflow.cli.starter
local M = {}

M.files = {}

M.files[".busted"] = [[
-- busted settings: `returnflow test` (or `busted`, which then starts itself under lua5.4).
return {
  default = {
    ROOT = { "spec" },
    pattern = "_spec",
    lua = "lua5.4",
  },
}
]]

M.files[".luacheckrc"] = [[
-- luacheck settings: scripts run in returnflow's sandbox, which offers only these globals
-- (no io, no os but time/date/clock, no package, no debug, no string.dump).
stds.returnflow_sandbox = {
  read_globals = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "rawequal", "rawget", "rawlen",
    "rawset", "select", "tonumber", "tostring", "type", "getmetatable", "setmetatable", "print", "load",
    "require", "_VERSION", "_G",
    string = { other_fields = true }, table = { other_fields = true }, math = { other_fields = true },
    utf8 = { other_fields = true }, coroutine = { other_fields = true },
    os = { fields = { "time", "date", "clock" } },
  },
}
std = "returnflow_sandbox"
max_line_length = 120
self = false
files["spec"] = { std = "lua54+busted" }
]]

M.files["scripts/10-loop-defaults.lua"] = [[
-- Loop's native Klaviyo events, exactly as returnflow's default scripts send them ("Loop Return
-- Created", "Loop Label Created", refunds, store credit, the day-21 and day-28 reminders, ...).
-- Keep this file to build on them; delete it to send only what your own files emit. To change what
-- they send (rename a metric, add or remove properties, drop one), do not edit or copy them: see
-- 60-my-changes.lua, which changes their events after they ran.
return require "returnflow.defaults"
]]

M.files["scripts/60-my-changes.lua"] = [[
-- Change what the defaults send without copying them (docs/mapping-api.md, "Change the defaults"):
-- the rules below run after every handler, so later fixes of the defaults still reach you. Uncomment
-- and edit; `returnflow map --scripts scripts FILE` shows the result, a spec in spec/ proves it.
return {
  changes = {
    -- rename a metric and add a property (a value, or a function of the event):
    -- ["Loop Return Created"] = { metric = "Return Started",
    --   properties = { shopify_order_id = function(ret) return ret.provider_order_id end } },

    -- take properties out, or only for one trigger:
    -- ["Loop Refund Issued"] = { trigger = "return.closed", remove = { "product_images" } },

    -- send nothing for a metric:
    -- ["Loop Return Status Updated"] = false,
  },

  -- anything else, for every event the handlers tracked or scheduled (return false to drop it):
  -- after = function(event, action)
  --   action.properties.shop = "acme"
  -- end,
}
]]

M.files["scripts/50-high-value-returns.lua"] = [[
-- An example of your own: returns worth HIGH_VALUE or more get their own metric (for a flow that
-- alerts customer care) and the "high-value-returner" segment tag on the profile.
local loop = require "returnflow.loop"

local HIGH_VALUE = 200

return {
  ["return.created"] = function(ret, out)
    local total = loop.money(ret.total)
    if not total or total < HIGH_VALUE then return end
    out:track("High Value Return Started", {
      return_id = loop.return_id(ret),
      order = ret.order_name,
      total = total,
      reasons = loop.reasons(ret),
    }, { value = total })
    out:segment("high-value-returner")
  end,
}
]]

M.files["spec/defaults_spec.lua"] = [[
-- Loop's native events still go out alongside your own (scripts/10-loop-defaults.lua).
local testing = require "returnflow.testing"

describe("the default events", function()
  local scripts = testing.load { tenant = "my-shop" }    -- ./scripts, or returnflow test --scripts DIR

  it("track Loop Return Created with Loop's properties", function()
    local result = scripts:map(testing.fixture("return.created"))
    assert.mapped(result)
    assert.tracked(result, "Loop Return Created", { order = "#10482", return_status = "open" })
    assert.scheduled(result, "Loop Return Expiring")
  end)

  it("send nothing for a restock (no customer in it)", function()
    local result = scripts:map(testing.fixture("restock.requested"))
    assert.dropped(result)
    assert.nothing_sent(result)
  end)
end)
]]

M.files["spec/high_value_returns_spec.lua"] = [[
-- scripts/50-high-value-returns.lua: a metric and a segment for returns worth 200 or more.
local testing = require "returnflow.testing"

describe("high value returns", function()
  local scripts = testing.load { tenant = "my-shop" }    -- ./scripts, or returnflow test --scripts DIR

  it("get their own metric and the segment", function()
    local result = scripts:map(testing.fixture("return.created", { total = "250.00" }))
    assert.tracked(result, "High Value Return Started", { order = "#10482", total = 250 })
    assert.segmented(result, "high-value-returner")
  end)

  it("are not every return", function()
    local result = scripts:map(testing.fixture("return.created", { total = "118.80" }))
    assert.is_not.tracked(result, "High Value Return Started")
    assert.is_not.segmented(result, "high-value-returner")
  end)
end)
]]

local ORDER = { ".busted", ".luacheckrc", "scripts/10-loop-defaults.lua", "scripts/50-high-value-returns.lua",
                "scripts/60-my-changes.lua", "spec/defaults_spec.lua", "spec/high_value_returns_spec.lua" }

local USAGE = "usage: returnflow init DIR\n"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.main(args)
  local dir = args[1]
  if dir == "-h" or dir == "--help" then io.write(USAGE) return 0 end
  if not dir or args[2] then
    io.stderr:write("returnflow init: ", dir and "takes one folder" or "no folder given", "\n", USAGE)
    return 2
  end
  local made, kept = 0, 0
  for _, rel in ipairs(ORDER) do
    local path = dir .. "/" .. rel
    if exists(path) then
      io.stderr:write("returnflow init: ", path, " exists: kept as it is\n")
      kept = kept + 1
    else
      local folder = path:match("^(.*)/[^/]+$")
      local f, err
      if os.execute("mkdir -p '" .. folder:gsub("'", "'\\''") .. "'") then f, err = io.open(path, "wb") end
      if not f then
        io.stderr:write("returnflow init: cannot write ", path, ": ", err or "cannot make its folder", "\n")
        return 1
      end
      f:write(M.files[rel])
      f:close()
      print("  wrote " .. path)
      made = made + 1
    end
  end
  print(string.format("init: %d file%s written, %d kept. Next: cd %s && returnflow test", made,
                      made == 1 and "" or "s", kept, dir))
  return 0
end

return M
