-- The Klaviyo API revision a tenant sends by default is one value: the host's (core/base/version.h,
-- printed by `returnflow help map`) and the Lua side's (returnflow.klaviyo's REVISION, which the
-- emitter and `returnflow install` use) cannot drift apart.
local h = require "helpers"

describe("the Klaviyo revision default", function()
  it("is the same in the host and in returnflow.klaviyo", function()
    local lua = h.read(h.root .. "/core/lua/returnflow/klaviyo.lua"):match('\nM%.REVISION = "([^"]+)"')
    assert.is_not_nil(lua, "returnflow.klaviyo sets M.REVISION")
    local help = h.sh_ok(h.quote(h.bin) .. " help map 2>&1")
    local host = help:match("%-%-revision REV%s+[^\n]-%(default: ([%w.-]+)%)")
    assert.is_not_nil(host, help)
    assert.are.equal(lua, host)
  end)
end)
