-- The host writes an event's body from the profile and the action (core/script/klaviyo_body.c) and
-- reads them raw: a `changes` function sees the profile table, and a metatable it gives that table
-- changes nothing that is sent (no __index of a script runs while bodies are written).
local h = require "helpers"

local function mapped_with(after)
  local scripts = h.scripts_dir({
    ["10-track.lua"] = 'return { ["return.created"] = function(ret, out) out:track("Tracked", { a = 1 }) end }\n',
    ["20-after.lua"] = "return { after = " .. after .. " }\n",
  })
  local docs, run = h.map(h.fixture_path("return.created.json"), { scripts = scripts })
  assert.equal(1, #docs, run.stderr)
  return docs[1]
end

describe("the bodies the host writes", function()
  teardown(h.cleanup)

  it("read the profile raw: a metatable given to it in `after` adds nothing", function()
    local plain = mapped_with("function(ev, action) end")
    local called = mapped_with([[function(ev, action)
      setmetatable(action.profile, { __index = function(_, k) return "from-index-" .. k end })
    end]])
    assert.equal("mapped", plain.status, plain.reason)
    assert.equal("mapped", called.status, called.reason)
    assert.same(plain.requests, called.requests)
    assert.is_nil(called.raw:find("from-index-", 1, true))
  end)
end)
