-- `returnflow store backup FILE` while serve takes webhooks (issue 11, docs/operations.md "Backups"):
-- the copy is one consistent SQLite file that passes integrity_check and `store check`, holds every
-- webhook acknowledged before the backup began, and a second run never overwrites it.
local h = require "helpers"
local lfs = require "lfs"

local LOAD_POST = h.root .. "/spec/tools/load_post.py"
local FIXTURE = h.fixture_path("return.created.json")

local PROBE = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Backup Probe", { webhook = ret.id }, { unique_id = "webhook:" .. ret.id })
  end,
}
]]

local function progress(file)
  local f = io.open(file, "r")
  local acked = f and f:read("n") or 0
  if f then f:close() end
  return acked
end

describe("returnflow store backup FILE while serving", function()
  local server, standin, load
  after_each(function()
    if load then load.stop() end
    if server and server:alive() then server:stop() end
    if standin then standin.stop() end
    server, standin, load = nil, nil, nil
  end)
  teardown(h.cleanup)

  it("copies a consistent store holding every acknowledged webhook, and never overwrites a file", function()
    standin = h.start_standin({ "--no-limits", "--quiet" })
    local dir = h.tempdir()
    h.sh_ok("mkdir " .. h.quote(dir .. "/probe"))
    h.write(dir .. "/probe/10-probe.lua", PROBE)
    h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data",
  tenants = { shop = { scripts = "probe", webhook_secret = "spec-secret",
                       klaviyo = { key = "pk_spec_backup_key", base_url = %q } } },
}]], standin.url))
    server = h.start_serve(dir)
    local address = h.write(dir .. "/address", server.address)
    local function post(count, first_id, extra)
      return string.format("%s %s --address-file %s --fixture %s --secret spec-secret --count %d --first-id %d "
                           .. "--clients 2 --deadline 60 --watch-pid %s %s", h.quote(h.python), h.quote(LOAD_POST),
                           h.quote(address), h.quote(FIXTURE), count, first_id, h.own_pid(), extra or "")
    end
    -- 300 acknowledged before, then webhooks keep coming while the backup runs.
    local before = h.decode(h.sh_ok(post(300, 8100000)))
    assert.equal(300, before.acked)
    local progress_file = dir .. "/progress"
    load = h.spawn(post(2000, 8200000, "--progress " .. h.quote(progress_file)))
    assert.truthy(h.wait_for(function() return progress(progress_file) >= 50 end, 30), load.output())
    local acked_at_start = 300 + progress(progress_file)

    local copy = dir .. "/copy/data"
    h.sh_ok("mkdir -p " .. h.quote(copy))
    local file = copy .. "/returnflow.db"
    local out, err, code = h.run({ "store", "backup", "--data", dir .. "/data", file })
    assert.equal(0, code, err)
    assert.truthy(out:find(file, 1, true), out)
    assert.truthy(load.alive() and progress(progress_file) < 2000, "the load ended before the backup did")

    -- One file (no -wal beside it), sound, holding what was acknowledged before the backup began.
    assert.is_nil(lfs.attributes(file .. "-wal"))
    assert.same({ "ok" }, h.sql_rows(dir .. "/copy", "PRAGMA integrity_check"))
    local copied = h.sql_count(dir .. "/copy", "SELECT count(*) FROM events")
    assert.truthy(copied >= acked_at_start, copied .. " events copied, " .. acked_at_start .. " acked before")
    assert.equal(300, h.sql_count(dir .. "/copy", "SELECT count(DISTINCT json_extract(body, '$.id')) FROM events "
                                  .. "WHERE CAST(json_extract(body, '$.id') AS INTEGER) BETWEEN 8100000 AND 8100299"))

    -- A second run refuses, and leaves the copy as it was.
    local bytes = h.read(file)
    local _, again, again_code = h.run({ "store", "backup", "--data", dir .. "/data", file })
    assert.equal(1, again_code)
    assert.truthy(again:find(file .. " exists: give a new file", 1, true), again)
    assert.equal(bytes, h.read(file))

    local checked, check_err, check_code = h.run({ "store", "check", "--data", copy })
    assert.equal(0, check_code, check_err)
    assert.truthy(checked:find("sound", 1, true), checked)

    -- Serving went on: the load ends with every webhook acknowledged.
    assert.truthy(h.wait_for(function() return not load.alive() end, 90))
    assert.equal(2000, h.decode(load.output():match("[^\n]+")).acked)
    io.stderr:write(string.format("[faults] backup while serving: %d acked before, %d events in the copy\n",
                                  acked_at_start, copied))
  end)
end)
