-- Every spec that starts a process ends it, and removes its folders, even when it fails: a nested busted
-- run of spec/lua/failing/leaves_nothing.lua (which starts the stand-in, serve, a background process,
-- the validator and a PostgreSQL cluster with a serve on it, then fails without stopping anything) leaves
-- no process and no folder behind.
local h = require "helpers"

describe("a failing spec run", function()
  teardown(h.cleanup)

  it("leaves no process and no folder behind", function()
    local tmp = h.tempdir()        -- the nested run's TMPDIR: every folder it makes is under it

    local out, err, code = h.sh(string.format("TMPDIR=%s RETURNFLOW_BIN=%s lua5.4 /usr/bin/busted --lpath=%s -o TAP %s",
                                              h.quote(tmp), h.quote(h.bin), h.quote(h.root .. "/spec/lua/?.lua"),
                                              h.quote(h.root .. "/spec/lua/failing/leaves_nothing.lua")))

    assert.not_equal(0, code)
    assert.truthy(out:find("failing on purpose", 1, true), out .. err)
    local pids = { out:match("\nPIDS (%d+) (%d+) (%d+) (%d+) (%d+)\n") }
    assert.equal(5, #pids, out .. err)
    for _, pid in ipairs(pids) do assert.is_false(h.alive(pid), "process " .. pid .. " still runs") end
    assert.same({}, h.processes_using(tmp))
    assert.same({}, h.entries(tmp))
  end)
end)
