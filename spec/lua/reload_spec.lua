-- Hot reload in `returnflow serve`, end to end: the service as a real process, its tenant's scripts
-- folder edited on disk the way a merchant edits it. A saved change is frozen into
-- DATA/scripts/shop/VERSION, checked in a fresh state and swapped in between batches; one that does
-- not load (or, with reload_requires_specs, fails its own specs) is refused and the running version
-- stays. Every mapped event records the VERSION that mapped it, so each check below compares what an
-- event got with the frozen folder of its own version.
--
-- Waits poll the log or the store (generous limits, for the ASan build). The only fixed waits: the
-- one that shows an unwatched folder is not picked up, a merchant spec that sleeps a second to
-- hold a spec run open while the next change is saved, and a scripts folder kept away for over a
-- second before it is put back.
local h = require "helpers"

local SECRET = "spec-secret"
-- Seconds any one reload or mapping may take, at most, on a loaded machine (a sanitized build maps
-- several times slower). A deadline: a passing run takes what it takes.
local WAIT = h.bin:find("asan", 1, true) and 120 or 60
local LOAD_POST = h.root .. "/spec/tools/load_post.py"
local FIXTURE = h.fixture_path("return.created.json")
local RELOADED, REFUSED = "scripts reloaded", "scripts changed but refused; the running version stays"

-- A folder with returnflow.conf.lua for one dry tenant "shop" whose scripts are DIR/scripts: a copy
-- of the repo's scripts/, or with opts.starter a merchant project written by `returnflow init DIR`
-- (DIR/scripts, DIR/spec). opts: starter, watch (default true), specs (reload_requires_specs,
-- default false), workers (mapping threads, default one a core). Returns the folder and its scripts
-- folder.
local function service_dir(opts)
  opts = opts or {}
  local dir = h.tempdir()
  local scripts = dir .. "/scripts"
  if opts.starter then
    local out, err, code = h.run({ "init", dir })
    assert(code == 0, out .. err)
  else
    h.sh_ok("cp -r " .. h.quote(h.scripts) .. " " .. h.quote(scripts))
  end
  h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data", watch_scripts = %s, reload_requires_specs = %s, workers = %d,
  tenants = { shop = { scripts = %q, webhook_secret = %q } },
}
]], tostring(opts.watch ~= false), tostring(opts.specs == true), opts.workers or 0, scripts, SECRET))
  return dir, scripts
end

-- return.created with its own id (the unique_ids of its Klaviyo events carry it); `total` optional.
local function webhook(id, total)
  local ev = h.fixture("return.created.json")
  ev.id = tostring(id)
  if total then ev.total = total end
  return h.encode(ev)
end

-- Replaces every `from` in a file (plain text, not a pattern); fails if there was none.
local function edit(path, from, to)
  local text = h.read(path)
  local i = text:find(from, 1, true)
  assert(i, path .. " has no " .. from)
  local out = {}
  local at = 1
  while i do
    out[#out + 1] = text:sub(at, i - 1) .. to
    at = i + #from
    i = text:find(from, at, true)
  end
  out[#out + 1] = text:sub(at)
  h.write(path, table.concat(out))
end

-- The serve log's entries with this message, decoded, in order.
local function entries(server, msg)
  local list, mark = {}, '"msg":' .. h.encode(msg)
  for line in server:log():gmatch("[^\n]+") do
    if line:find(mark, 1, true) then list[#list + 1] = h.decode(line) end
  end
  return list
end

-- Waits for the n-th log entry with this message; returns it.
local function await_entry(server, msg, n)
  local e = h.wait_for(function() return entries(server, msg)[n] end, WAIT)
  assert(e, string.format("no %s entry #%d within %d s:\n%s", msg, n, WAIT, server:log()))
  return e
end

local function metrics(server)
  return h.curl("http://" .. server.address .. "/metrics").body
end

-- returnflow_script_reloads_total{tenant="shop",outcome=...} in this /metrics text.
local function reloads(text, outcome)
  return tonumber(text:match('returnflow_script_reloads_total{tenant="shop",outcome="' .. outcome .. '"} (%d+)'))
end

-- The Klaviyo requests a dry tenant (default "shop") wrote, as { metric, unique_id, id (the webhook's) }.
local function dry(dir, tenant)
  local ok, text = pcall(h.read, dir .. "/data/dry/" .. (tenant or "shop") .. ".ndjson")
  local list = {}
  for line in (ok and text or ""):gmatch("[^\n]+") do
    local uid = line:match('"unique_id":"([^"]*)"')
    list[#list + 1] = { metric = line:match('"metric":{"data":{"attributes":{"name":"([^"]*)"'), unique_id = uid,
                        id = uid and uid:match("^[%w_-]+:([^:]+):") }
  end
  return list
end

-- Metric names a dry tenant (default "shop") sent for webhook `id`, sorted.
local function sent_for(dir, id, tenant)
  local names = {}
  for _, r in ipairs(dry(dir, tenant)) do
    if r.id == tostring(id) then names[#names + 1] = r.metric end
  end
  table.sort(names)
  return names
end

-- Rows of a query of the store, each a list of its '|'-separated columns.
local function sql_rows(dir, sql)
  local rows = {}
  for _, line in ipairs(h.sql_rows(dir, sql)) do
    local row = {}
    for col in (line .. "|"):gmatch("([^|]*)|") do row[#row + 1] = col end
    rows[#rows + 1] = row
  end
  return rows
end

-- The script_version that mapped webhook `id` (nil while it is not mapped).
local function version_of(dir, id)
  local rows = sql_rows(dir, "SELECT script_version FROM events WHERE state = 1 AND json_extract(body, '$.id') = '"
                             .. tostring(id) .. "'")
  return rows[1] and rows[1][1]
end

-- Waits until nothing is left to map or write, and a dry tenant (default "shop") wrote `n` requests.
local function await_mapped(dir, n, tenant)
  local done = h.wait_for(function()
    return h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 0") == 0
           and h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 0") == 0
           and #dry(dir, tenant) >= n
  end, WAIT)
  assert(done, "not mapped within " .. WAIT .. " s: " .. #dry(dir, tenant) .. " of " .. n .. " requests written")
end

-- The frozen folder of a version of a tenant (default "shop").
local function frozen(dir, version, tenant) return dir .. "/data/scripts/" .. (tenant or "shop") .. "/" .. version end

local own_pid = h.own_pid

-- Posts `count` signed webhooks (ids first, first + 1, ...) with load_post.py (2 clients, keep-alive)
-- and returns once each is acked: its summary, and the acked ids. A request not answered within
-- `timeout` seconds (default 10) counts as an error, and is sent again.
local function post_many(dir, server, count, first, timeout)
  local address = h.write(dir .. "/address", server.address)
  local acked = dir .. "/acked." .. first
  local out = h.sh_ok(string.format("%s %s --address-file %s --fixture %s --secret %s --count %d --first-id %d "
                                    .. "--clients 2 --timeout %s --deadline 30 --acked %s --watch-pid %s",
                                    h.quote(h.python), h.quote(LOAD_POST), h.quote(address), h.quote(FIXTURE), SECRET,
                                    count, first, tostring(timeout or 10), h.quote(acked), own_pid()))
  return h.decode(out), h.lines(h.read(acked))
end

-- One signed webhook, timed: curl's answer { status, seconds, ... }.
local function post_timed(server, id)
  local body = webhook(id)
  return h.curl(server:url(), { body = body, timeout = 10, headers = {
    ["Content-Type"] = "application/json", ["X-Loop-Signature"] = h.loop_signature(body, SECRET) } })
end

local function healthz(server)
  return h.curl("http://" .. server.address .. "/healthz", { timeout = 10 })
end

-- What DATA/scripts/TENANT holds (default "shop"), hidden names too, sorted.
local function listing(dir, tenant)
  local folder = dir .. "/data/scripts/" .. (tenant or "shop")
  -- status.json is rewritten through .status.tmp (renamed in place): a listing waits that out
  h.wait_for(function() return not io.open(folder .. "/.status.tmp") end, 10)
  local names = h.lines(h.sh_ok("ls -A " .. h.quote(folder)))
  table.sort(names)
  return names
end

-- The frozen versions of a tenant (default "shop"): the folders named by 12 hex digits.
local function versions(dir, tenant)
  local list = {}
  for _, name in ipairs(listing(dir, tenant)) do
    if #name == 12 and name:match("^%x+$") then list[#list + 1] = name end
  end
  return list
end

-- Burns 20 ms of CPU on each return.created: with one mapping thread, 200 events are a 4 s batch.
local SLOW = [[
return {
  ["return.created"] = function()
    local stop = os.clock() + 0.02
    while os.clock() < stop do end
  end,
}
]]

describe("hot reload in returnflow serve", function()
  local servers, procs = {}, {}

  local function start(dir)
    local s = h.start_serve(dir)
    servers[#servers + 1] = s
    return s
  end

  after_each(function()
    for _, p in ipairs(procs) do p.stop() end
    for _, s in ipairs(servers) do if s:alive() then s:stop("KILL") end end
    servers, procs = {}, {}
  end)
  teardown(h.cleanup)

  it("maps new events with a saved change, and records which version mapped each event", function()
    local dir, scripts = service_dir()
    local s = start(dir)
    assert.equal(202, (h.post_signed(s:url(), webhook(1001))))
    await_mapped(dir, 3)

    edit(scripts .. "/10-returns.lua", "Loop Return Created", "Loop Return Started")
    local loaded = await_entry(s, RELOADED, 1)
    assert.equal(1, reloads(metrics(s), "loaded"))
    assert.equal(202, (h.post_signed(s:url(), webhook(1002))))
    await_mapped(dir, 6)
    local text = metrics(s)
    s:stop()

    assert.same({ "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" }, sent_for(dir, 1001))
    assert.same({ "Loop Return Expired", "Loop Return Expiring", "Loop Return Started" }, sent_for(dir, 1002))
    local first, second = version_of(dir, 1001), version_of(dir, 1002)
    assert.truthy(first and first:match("^%x+$") and #first == 12, first)
    assert.are_not.equal(first, second)
    assert.equal(loaded.version, second)
    assert.truthy(text:find('returnflow_scripts_info{tenant="shop",version="' .. second .. '",state="running"} 1',
                            1, true), text)
    assert.equal(0, reloads(text, "refused"))
    -- Each version is a frozen folder holding the text that mapped its event.
    local old, new = h.read(frozen(dir, first) .. "/10-returns.lua"), h.read(frozen(dir, second) .. "/10-returns.lua")
    assert.truthy(old:find('out:track("Loop Return Created"', 1, true))
    assert.falsy(old:find("Loop Return Started", 1, true))
    assert.truthy(new:find('out:track("Loop Return Started"', 1, true))
    assert.falsy(new:find("Loop Return Created", 1, true))
    assert.equal(h.read(scripts .. "/10-returns.lua"), new)
  end)

  it("refuses a change that does not load, keeps mapping with the running version, and takes the fix", function()
    local dir, scripts = service_dir()
    local s = start(dir)
    assert.equal(202, (h.post_signed(s:url(), webhook(2001))))
    await_mapped(dir, 3)
    local running = version_of(dir, 2001)

    h.write(scripts .. "/40-extra.lua", "return { this is not Lua\n")
    local refused = await_entry(s, REFUSED, 1)
    -- The error is file:line in the folder the merchant edits, not in the frozen copy.
    assert.truthy(refused.error:find("^" .. h.literal(scripts .. "/40-extra.lua:1:")), refused.error)
    assert.falsy(refused.error:find("data/scripts", 1, true), refused.error)
    assert.are_not.equal(running, refused.version)
    local text = metrics(s)
    assert.equal(1, reloads(text, "refused"))
    assert.equal(0, reloads(text, "loaded"))
    assert.truthy(text:find('returnflow_scripts_info{tenant="shop",version="' .. refused.version .. '",state="refused"} 1',
                            1, true), text)
    assert.truthy(text:find('returnflow_scripts_info{tenant="shop",version="' .. running .. '",state="running"} 1',
                            1, true), text)
    local status = h.decode(h.read(dir .. "/data/scripts/shop/status.json"))
    assert.equal(running, status.version)
    assert.equal(refused.version, status.refused.version)
    assert.equal(refused.error, status.refused.error)
    local out = h.run({ "status", table.unpack(h.store_args(dir)) })
    assert.truthy(out:find("refused " .. refused.version .. " at [%dT:Z-]+, the running version stays: "
                           .. h.literal(refused.error)), out)
    -- Meanwhile events still map, with the running version.
    assert.equal(202, (h.post_signed(s:url(), webhook(2002))))
    await_mapped(dir, 6)
    assert.equal(running, version_of(dir, 2002))
    assert.same({ "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" }, sent_for(dir, 2002))

    -- Undone: the refusal is cleared, nothing is reloaded.
    assert(os.remove(scripts .. "/40-extra.lua"))
    await_entry(s, "scripts are back to the running version", 1)
    text = metrics(s)
    assert.falsy(text:find('state="refused"', 1, true), text)
    assert.equal(0, reloads(text, "loaded"))
    assert.is_nil(h.decode(h.read(dir .. "/data/scripts/shop/status.json")).refused)

    -- Broken again (a handler for a trigger Loop never sends), then fixed: loaded, the refusal gone.
    h.write(scripts .. "/40-extra.lua", 'return { ["return.craeted"] = function() end }\n')
    refused = await_entry(s, REFUSED, 2)
    assert.truthy(refused.error:find("^" .. h.literal(scripts .. "/40-extra.lua:1: unknown trigger 'return.craeted'")),
                  refused.error)
    h.write(scripts .. "/40-extra.lua", [[
return {
  ["return.created"] = function(_, out) out:track("Loop Return Noted", { note = "fixed" }) end,
}
]])
    local loaded = await_entry(s, RELOADED, 1)
    assert.are_not.equal(running, loaded.version)
    text = metrics(s)
    assert.equal(2, reloads(text, "refused"))
    assert.equal(1, reloads(text, "loaded"))
    assert.falsy(text:find('state="refused"', 1, true), text)
    status = h.decode(h.read(dir .. "/data/scripts/shop/status.json"))
    assert.equal(loaded.version, status.version)
    assert.is_nil(status.refused)
    out = h.run({ "status", table.unpack(h.store_args(dir)) })
    assert.truthy(out:find("shop%s+" .. loaded.version), out)
    assert.falsy(out:find("refused", 1, true), out)
    assert.equal(202, (h.post_signed(s:url(), webhook(2003))))
    await_mapped(dir, 10)
    s:stop()
    assert.equal(loaded.version, version_of(dir, 2003))
    assert.same({ "Loop Return Created", "Loop Return Expired", "Loop Return Expiring", "Loop Return Noted" },
                sent_for(dir, 2003))
  end)

  it("under live traffic maps every acked event once, each wholly by one frozen version", function()
    -- Two files carry the version's names: 10-returns.lua the return's metric, and lib/probe.lua
    -- (required by 15-probe.lua, in a subfolder) a second metric. Each change is saved file by file,
    -- and every half-changed state is itself a version that loads: an event mapped by a mix of two
    -- versions would show names that no single frozen folder holds.
    local dir, scripts = service_dir()
    h.sh_ok("mkdir " .. h.quote(scripts .. "/lib"))
    h.write(scripts .. "/lib/probe.lua", 'return { metric = "Reload Probe v0" }\n')
    h.write(scripts .. "/15-probe.lua", [[
local probe = require "lib.probe"
return {
  ["return.created"] = function(ret, out) out:track(probe.metric, { webhook = ret.id }) end,
}
]])
    local s = start(dir)
    local address = h.write(dir .. "/address", s.address)
    -- The load: batches of load_post.py (2 clients each, keep-alive, signed) until told to stop.
    local batch, stop_file = 250, dir .. "/stop"
    local load = h.spawn("sh -c " .. h.quote(string.format(
      "i=0; while [ ! -e %s ] && [ $i -lt 60 ]; do %s %s --address-file %s --fixture %s --secret %s --count %d "
      .. "--first-id $((3000000 + i * %d)) --clients 2 --deadline 60 --acked %s/acked.$i --watch-pid %s "
      .. ">>%s/summaries || exit 1; i=$((i + 1)); done",
      h.quote(stop_file), h.quote(h.python), h.quote(LOAD_POST), h.quote(address), h.quote(FIXTURE), SECRET, batch,
      batch, h.quote(dir), own_pid(), h.quote(dir))))
    procs[#procs + 1] = load
    assert.truthy(h.wait_for(function() return h.sql_count(dir, "SELECT count(*) FROM events") >= 100 end, WAIT),
                  "the load did not start: " .. h.read(load.err))

    local returns, probe = scripts .. "/10-returns.lua", scripts .. "/lib/probe.lua"
    local first = entries(s, "no Klaviyo key: this tenant runs dry")[1].scripts
    local loaded = { [first] = { h.read(returns), h.read(probe) } }   -- version -> its two files' text
    local refusals = 0
    -- Saves with `write`, waits for the version it makes to be loaded, and notes that version's text.
    local function save(write)
      local before = #entries(s, RELOADED)
      write()
      local e = await_entry(s, RELOADED, before + 1)
      loaded[e.version] = { h.read(returns), h.read(probe) }
    end
    local base = h.read(returns)
    for step = 1, 3 do
      save(function() h.write(probe, string.format('return { metric = "Reload Probe v%d" }\n', step)) end)
      local text = base:gsub('out:track%("Loop Return Created"', 'out:track("Loop Return Created v' .. step .. '"')
      save(function()
        if step ~= 2 then h.write(returns, text); return end
        -- Saved in two writes: the first half alone does not load, and is refused.
        local cut = assert(text:find('["return.updated"]', 1, true))
        local f = assert(io.open(returns, "wb"))
        f:write(text:sub(1, cut - 1))
        f:flush()
        refusals = refusals + 1
        local torn = await_entry(s, REFUSED, refusals)
        assert.truthy(torn.error:find("^" .. h.literal(returns) .. ":%d+:"), torn.error)
        f:write(text:sub(cut))
        f:close()
      end)
    end
    assert.truthy(load.alive(), "the load ended before the last change: " .. h.read(dir .. "/summaries"))
    -- At least 2000 events in all, then the load stops after its current batch.
    assert.truthy(h.wait_for(function() return h.sql_count(dir, "SELECT count(*) FROM events") >= 2000 end, 60))
    h.write(stop_file, "")
    assert.truthy(h.wait_for(function() return not load.alive() end, 90), "the load did not stop")

    local acked, n, batches = {}, 0, 0
    for line in h.read(dir .. "/summaries"):gmatch("[^\n]+") do
      local summary = h.decode(line)
      assert.equal(batch, summary.acked, line)
      assert.same({}, summary.refused, line)  -- no 503, no 4xx: ingest kept answering
      assert.same({}, summary.errors, line)   -- no reset, no timeout during the swaps
      for id in h.read(string.format("%s/acked.%d", dir, batches)):gmatch("[^\n]+") do
        assert.is_nil(acked[id], "acked twice: " .. id)
        acked[id] = true
        n = n + 1
      end
      batches = batches + 1
    end
    assert.truthy(n >= 2000, n)
    await_mapped(dir, 4 * n)
    local text = metrics(s)
    s:stop()
    assert.equal(refusals, reloads(text, "refused"))
    assert.equal(6, reloads(text, "loaded"))

    -- Every acked event mapped exactly once (one attempt), and nothing else journaled.
    assert.equal(n, h.sql_count(dir, "SELECT count(*) FROM events"))
    assert.equal(n, h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 1 AND attempts = 1"))
    assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM (SELECT event_id FROM outbox GROUP BY event_id "
                                     .. "HAVING count(*) <> 4) per_event"))
    local version = {}
    for _, row in ipairs(sql_rows(dir, "SELECT json_extract(body, '$.id'), script_version FROM events")) do
      assert.truthy(acked[row[1]], "journaled but never acked: " .. row[1])
      version[row[1]] = row[2]
    end
    -- Each event's version is one that was loaded; its four requests carry exactly the names of that
    -- version's frozen files.
    local names = {}                               -- version -> the sorted names its files send
    local used = {}
    for v, files in pairs(loaded) do
      local r, p = h.read(frozen(dir, v) .. "/10-returns.lua"), h.read(frozen(dir, v) .. "/lib/probe.lua")
      assert.equal(files[1], r, "frozen copy of " .. v)     -- whole: the text as it was saved
      assert.equal(files[2], p, "frozen copy of " .. v)
      local list = { assert(r:match('out:track%("(Loop Return Created[^"]*)"')), assert(p:match('metric = "([^"]+)"')),
                     "Loop Return Expired", "Loop Return Expiring" }
      table.sort(list)
      names[v] = table.concat(list, "|")
    end
    local got, created = {}, 0
    for _, r in ipairs(dry(dir)) do
      assert.truthy(acked[r.id], "a request for no acked event: " .. tostring(r.unique_id))
      got[r.id] = got[r.id] or {}
      table.insert(got[r.id], r.metric)
      if r.metric:find("^Loop Return Created") then created = created + 1 end
    end
    assert.equal(n, created)
    local seen = {}
    for _, r in ipairs(dry(dir)) do
      assert.is_nil(seen[r.unique_id], "written twice: " .. r.unique_id)
      seen[r.unique_id] = true
    end
    for id in pairs(acked) do
      local v = version[id]
      assert.truthy(names[v], "event " .. id .. " mapped by " .. tostring(v) .. ", not a loaded version")
      table.sort(got[id])
      assert.equal(names[v], table.concat(got[id], "|"), "event " .. id .. " (version " .. v .. ")")
      used[v] = true
    end
    local distinct = 0
    for _ in pairs(used) do distinct = distinct + 1 end
    assert.truthy(distinct >= 4, "the traffic saw only " .. distinct .. " versions")
  end)

  it("with reload_requires_specs refuses a change that fails the project's specs, and takes it once they pass", function()
    local dir, scripts = service_dir({ starter = true, specs = true })   -- config at the project root
    local s = start(dir)
    assert.equal(202, (h.post_signed(s:url(), webhook(4001, "250.00"))))
    await_mapped(dir, 4)
    local running = version_of(dir, 4001)
    assert.same({ "High Value Return Started", "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" },
                sent_for(dir, 4001))

    -- The metric renamed in the scripts only: loads fine, but the spec that names it fails.
    local high = scripts .. "/50-high-value-returns.lua"
    edit(high, "High Value Return Started", "High Value Return Opened")
    local refused = await_entry(s, REFUSED, 1)
    assert.truthy(refused.error:find("its specs failed", 1, true), refused.error)
    local log = h.read(frozen(dir, refused.version) .. ".spec.log")
    assert.truthy(log:find('"High Value Return Started" was not tracked', 1, true), log)
    local text = metrics(s)
    assert.equal(1, reloads(text, "refused"))
    assert.equal(0, reloads(text, "loaded"))
    local out = h.run({ "status", table.unpack(h.store_args(dir)) })
    assert.truthy(out:find("refused " .. refused.version .. " at [^\n]*the running version stays: its specs failed"), out)
    assert.equal(202, (h.post_signed(s:url(), webhook(4002, "250.00"))))
    await_mapped(dir, 8)
    assert.equal(running, version_of(dir, 4002))
    assert.same({ "High Value Return Started", "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" },
                sent_for(dir, 4002))

    -- The spec updated too. The spec/ folder is not part of the watched scripts folder, so the
    -- scripts are saved once more (as a merchant's commit of both would) for the change to be seen.
    edit(dir .. "/spec/high_value_returns_spec.lua", "High Value Return Started", "High Value Return Opened")
    h.write(high, h.read(high) .. "-- renamed to match the flow in Klaviyo\n")
    local loaded = await_entry(s, RELOADED, 1)
    log = h.read(frozen(dir, loaded.version) .. ".spec.log")
    assert.truthy(log:find(" 0 failures / 0 errors ", 1, true), log)
    text = metrics(s)
    assert.equal(1, reloads(text, "loaded"))
    assert.falsy(text:find('state="refused"', 1, true), text)
    assert.equal(202, (h.post_signed(s:url(), webhook(4003, "250.00"))))
    await_mapped(dir, 12)
    s:stop()
    assert.equal(loaded.version, version_of(dir, 4003))
    assert.same({ "High Value Return Opened", "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" },
                sent_for(dir, 4003))
    assert.truthy(h.read(frozen(dir, loaded.version) .. "/50-high-value-returns.lua"):find("High Value Return Opened",
                                                                                          1, true))
  end)

  it("with reload_requires_specs checks a change saved during a spec run after it, never loading it unchecked", function()
    local dir, scripts = service_dir({ starter = true, specs = true })
    h.write(dir .. "/spec/slow_spec.lua", [[
describe("a slow spec", function()
  it("holds the run open for a second", function() os.execute("sleep 1") end)
end)
]])
    local s = start(dir)
    local high = scripts .. "/50-high-value-returns.lua"
    h.write(high, h.read(high) .. "-- reviewed\n")                       -- X: passes the specs
    local checking = await_entry(s, "scripts changed: running their specs before loading them", 1)
    edit(high, "High Value Return Started", "High Value Return Begun")  -- Y, while X's specs run: fails them
    local loaded = await_entry(s, RELOADED, 1)
    local refused = await_entry(s, REFUSED, 1)
    assert.equal(checking.version, loaded.version)
    assert.are_not.equal(loaded.version, refused.version)
    assert.truthy(refused.error:find("its specs failed", 1, true), refused.error)
    -- What maps is X exactly, as frozen and checked, not the folder as it is now.
    assert.equal(202, (h.post_signed(s:url(), webhook(4501, "250.00"))))
    await_mapped(dir, 4)
    s:stop()
    assert.equal(loaded.version, version_of(dir, 4501))
    assert.same({ "High Value Return Started", "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" },
                sent_for(dir, 4501))
    local x = h.read(frozen(dir, loaded.version) .. "/50-high-value-returns.lua")
    assert.truthy(x:find("High Value Return Started", 1, true) and x:find("-- reviewed", 1, true), x)
  end)

  it("keeps a tenant's running version while another tenant's reload restarts the mapping threads", function()
    local dir, shop = service_dir()
    local outlet = dir .. "/outlet-scripts"
    h.sh_ok("cp -r " .. h.quote(h.scripts) .. " " .. h.quote(outlet))
    local conf = dir .. "/returnflow.conf.lua"
    h.write(conf, (h.read(conf):gsub("tenants = {", string.format("tenants = { outlet = { scripts = %q, "
                                                                  .. "webhook_secret = %q },", outlet, SECRET), 1)))
    local s = start(dir)
    assert.equal(202, (h.post_signed(s:url("shop"), webhook(6001))))
    assert.equal(202, (h.post_signed(s:url("outlet"), webhook(6101))))
    await_mapped(dir, 3, "shop")
    await_mapped(dir, 3, "outlet")
    local running = version_of(dir, 6001)

    -- shop's folder now holds a change that does not load; then outlet's change is taken, which
    -- restarts every tenant's mapping threads. shop's come back on its frozen running version.
    h.write(shop .. "/40-extra.lua", "return { this is not Lua\n")
    local refused = await_entry(s, REFUSED, 1)
    assert.equal("shop", refused.tenant)
    edit(outlet .. "/10-returns.lua", "Loop Return Created", "Loop Return Started")
    local loaded = await_entry(s, RELOADED, 1)
    assert.equal("outlet", loaded.tenant)
    assert.equal(202, (h.post_signed(s:url("shop"), webhook(6002))))
    assert.equal(202, (h.post_signed(s:url("outlet"), webhook(6102))))
    await_mapped(dir, 6, "shop")
    await_mapped(dir, 6, "outlet")
    local text = metrics(s)
    s:stop()
    assert.equal(running, version_of(dir, 6002))
    assert.same({ "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" }, sent_for(dir, 6002, "shop"))
    assert.equal(loaded.version, version_of(dir, 6102))
    assert.same({ "Loop Return Expired", "Loop Return Expiring", "Loop Return Started" },
                sent_for(dir, 6102, "outlet"))
    assert.truthy(h.read(frozen(dir, loaded.version, "outlet") .. "/10-returns.lua"):find("Loop Return Started", 1, true))
    assert.truthy(text:find('returnflow_scripts_info{tenant="shop",version="' .. refused.version .. '",state="refused"} 1',
                            1, true), text)
    assert.truthy(text:find('returnflow_script_reloads_total{tenant="outlet",outcome="loaded"} 1', 1, true), text)
  end)

  it("with watch_scripts = false ignores a saved change until SIGHUP", function()
    local dir, scripts = service_dir({ watch = false })
    local s = start(dir)
    assert.equal(202, (h.post_signed(s:url(), webhook(5001))))
    await_mapped(dir, 3)
    local running = version_of(dir, 5001)

    edit(scripts .. "/10-returns.lua", "Loop Return Created", "Loop Return Started")
    h.sleep(1.5)                               -- five times the watcher's settle time
    assert.equal(202, (h.post_signed(s:url(), webhook(5002))))
    await_mapped(dir, 6)
    assert.equal(running, version_of(dir, 5002))
    assert.same({ "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" }, sent_for(dir, 5002))
    assert.equal(0, reloads(metrics(s), "loaded"))
    assert.same({ running, "status.json" }, h.lines(h.sh_ok("ls " .. h.quote(dir .. "/data/scripts/shop"))))

    os.execute("kill -HUP " .. s.pid)
    await_entry(s, "SIGHUP: config and scripts reloaded", 1)
    assert.equal(202, (h.post_signed(s:url(), webhook(5003))))
    await_mapped(dir, 9)
    s:stop()
    local now = version_of(dir, 5003)
    assert.are_not.equal(running, now)
    assert.same({ "Loop Return Expired", "Loop Return Expiring", "Loop Return Started" }, sent_for(dir, 5003))
    assert.truthy(h.read(frozen(dir, now) .. "/10-returns.lua"):find('out:track("Loop Return Started"', 1, true))
  end)

  it("takes over between two events of the batch in hand, answers meanwhile, and maps each acked event once", function()
    -- One mapping thread, busy for seconds with the batch in hand (200 events of 20 ms): a saved change
    -- takes over at the next event, not after the batch (issue 11: a fixed script waited for the broken
    -- one's batch), and ingest never waits for a swap. The backlog is journaled, then the service is
    -- killed and started again, so that the thread takes all of it as its first batch.
    local dir, scripts = service_dir({ workers = 1 })
    h.write(scripts .. "/05-slow.lua", SLOW)
    local s = start(dir)
    local summary, backlog = post_many(dir, s, 200, 7000000)
    assert.equal(200, summary.acked)
    s:stop("KILL")
    assert(os.rename(dir .. "/serve.err", dir .. "/serve.1.err"))   -- start() must not read the old address
    s = start(dir)
    local first = await_entry(s, "no Klaviyo key: this tenant runs dry", 1).scripts

    edit(scripts .. "/10-returns.lua", "Loop Return Created", "Loop Return Started")
    assert.truthy(h.wait_for(function() return #versions(dir) == 2 end, WAIT), "the change was not frozen")
    -- Frozen and checked, the change waits for its swap: /healthz, a webhook, then 100 more.
    local health, post = healthz(s), post_timed(s, 7100000)
    local more, late = post_many(dir, s, 100, 7200000, 1)
    assert.equal(200, health.status)
    assert.truthy(health.seconds < 1, "/healthz took " .. health.seconds .. " s")
    assert.equal(202, post.status)
    assert.truthy(post.seconds < 1, "a webhook took " .. post.seconds .. " s")
    assert.equal(100, more.acked)
    assert.same({}, more.errors)             -- none waited a second for its answer
    assert.equal(0, more.retried)
    local loaded = await_entry(s, RELOADED, 1)

    -- SIGHUP while the new thread maps the 101 webhooks acked meanwhile: /healthz answers throughout.
    os.execute("kill -HUP " .. s.pid)
    local polls, slowest = 0, 0
    repeat
      local r = healthz(s)
      assert.equal(200, r.status)
      polls, slowest = polls + 1, math.max(slowest, r.seconds)
    until #entries(s, "SIGHUP: config and scripts reloaded") > 0 or polls == 1000
    assert.truthy(slowest < 1, "/healthz took " .. slowest .. " s during SIGHUP's swap")
    assert.truthy(polls >= 5, "SIGHUP's swap was over after " .. polls .. " polls, which then prove little")
    await_mapped(dir, 3 * 301)
    s:stop()

    -- Each acked webhook journaled once and mapped once: the backlog in journal order by the version
    -- in hand up to the swap, the rest of it (the swap did not wait for the batch) and the webhooks
    -- acked during the swap by the new one.
    local want, got = { ["7100000"] = loaded.version }, {}
    for _, id in ipairs(late) do want[id] = loaded.version end
    local order = {}
    for _, row in ipairs(sql_rows(dir, "SELECT json_extract(body, '$.id'), state, attempts, script_version"
                                       .. " FROM events ORDER BY id")) do
      assert.is_nil(got[row[1]], "journaled twice: " .. row[1])
      assert.equal("1 1", row[2] .. " " .. row[3], "state and attempts of " .. row[1])
      got[row[1]] = row[4]
      order[#order + 1] = row[1]
    end
    local in_backlog, swapped_at = {}, nil
    for _, id in ipairs(backlog) do in_backlog[id] = true end
    for _, id in ipairs(order) do
      if in_backlog[id] then
        if got[id] == loaded.version then swapped_at = swapped_at or id
        else assert.is_nil(swapped_at, id .. " mapped by the old version after " .. tostring(swapped_at)) end
        want[id] = got[id] == loaded.version and loaded.version or first
      end
    end
    assert.truthy(swapped_at, "the whole backlog was mapped by the old version: the swap waited for the batch")
    assert.same(want, got)
    assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM (SELECT event_id FROM outbox GROUP BY event_id "
                                     .. "HAVING count(*) <> 3) per_event"))
  end)

  it("with reload_requires_specs loads a refused version once its spec alone is fixed, data and scripts apart", function()
    -- The merchant's project (scripts/, spec/) is outside the config's folder, and data = "data" is
    -- relative to the config: the specs, run from the project, must still find the frozen copy.
    local project, dir = h.tempdir(), h.tempdir()
    local out, err, code = h.run({ "init", project })
    assert(code == 0, out .. err)
    h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data", reload_requires_specs = true,
  tenants = { shop = { scripts = %q, webhook_secret = %q } },
}
]], project .. "/scripts", SECRET))
    local s = start(dir)
    edit(project .. "/scripts/50-high-value-returns.lua", "High Value Return Started", "High Value Return Opened")
    local refused = await_entry(s, REFUSED, 1)
    assert.truthy(refused.error:find("its specs failed", 1, true), refused.error)
    -- They ran, on the frozen copy: what failed is the spec's expectation, not a missing folder.
    local log = h.read(frozen(dir, refused.version) .. ".spec.log")
    assert.truthy(log:find('"High Value Return Started" was not tracked; tracked: "Loop Return Created", '
                           .. '"High Value Return Opened"', 1, true), log)

    -- The spec updated, not a byte of the scripts: the same version is checked again, and loads.
    edit(project .. "/spec/high_value_returns_spec.lua", "High Value Return Started", "High Value Return Opened")
    local loaded = await_entry(s, RELOADED, 1)
    assert.equal(refused.version, loaded.version)
    log = h.read(frozen(dir, loaded.version) .. ".spec.log")
    assert.truthy(log:find(" 0 failures / 0 errors ", 1, true), log)
    assert.equal(202, (h.post_signed(s:url(), webhook(4101, "250.00"))))
    await_mapped(dir, 4)
    s:stop()
    assert.equal(loaded.version, version_of(dir, 4101))
    assert.same({ "High Value Return Opened", "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" },
                sent_for(dir, 4101))
  end)

  it("reloads a change to a file two subfolders down that a script requires", function()
    local dir, scripts = service_dir()
    h.sh_ok("mkdir -p " .. h.quote(scripts .. "/lib/deep"))
    h.write(scripts .. "/lib/deep/names.lua", 'return { metric = "Deep Probe v1" }\n')
    h.write(scripts .. "/15-deep.lua", [[
local names = require "lib.deep.names"
return {
  ["return.created"] = function(ret, out) out:track(names.metric, { webhook = ret.id }) end,
}
]])
    local s = start(dir)
    h.write(scripts .. "/lib/deep/names.lua", 'return { metric = "Deep Probe v2" }\n')
    local loaded = await_entry(s, RELOADED, 1)
    assert.equal(202, (h.post_signed(s:url(), webhook(8001))))
    await_mapped(dir, 4)
    s:stop()
    assert.equal(loaded.version, version_of(dir, 8001))
    assert.same({ "Deep Probe v2", "Loop Return Created", "Loop Return Expired", "Loop Return Expiring" },
                sent_for(dir, 8001))
  end)

  it("refuses a scripts folder that is gone, and loads it once it is back with a change, without SIGHUP", function()
    local dir, scripts = service_dir()
    local s = start(dir)
    local saved = dir .. "/scripts.saved"
    h.sh_ok("cp -r " .. h.quote(scripts) .. " " .. h.quote(saved))
    local gone = h.now()
    h.sh_ok("rm -r " .. h.quote(scripts))
    local refused = await_entry(s, REFUSED, 1)
    assert.equal("missing", refused.version)
    assert.truthy(refused.error:find("^" .. h.literal(scripts) .. ": No such file or directory"), refused.error)
    local out = h.run({ "status", table.unpack(h.store_args(dir)) })
    assert.truthy(out:find("refused missing at [^\n]*the running version stays: " .. h.literal(scripts)), out)

    -- Put back (a new folder: nothing watches it) after more than a second, with a change.
    edit(saved .. "/10-returns.lua", "Loop Return Created", "Loop Return Started")
    h.sleep(math.max(0, 1.2 - (h.now() - gone)))
    h.sh_ok("mv " .. h.quote(saved) .. " " .. h.quote(scripts))
    local loaded = await_entry(s, RELOADED, 1)
    assert.falsy(metrics(s):find('state="refused"', 1, true))
    assert.equal(202, (h.post_signed(s:url(), webhook(8101))))
    await_mapped(dir, 3)
    s:stop()
    assert.equal(loaded.version, version_of(dir, 8101))
    assert.same({ "Loop Return Expired", "Loop Return Expiring", "Loop Return Started" }, sent_for(dir, 8101))
  end)

  it("returnflow status shows a tenant's scripts and refusal before any event, each line of it in its column", function()
    local dir, scripts = service_dir()
    local s = start(dir)
    local running = await_entry(s, "no Klaviyo key: this tenant runs dry", 1).scripts
    -- Two broken files saved together: one refusal, one line for each.
    h.write(scripts .. "/40-broken.lua", "return { this is not Lua\n")
    h.write(scripts .. "/41-typo.lua", 'return { ["return.craeted"] = function() end }\n')
    local refused = h.wait_for(function()
      local list = entries(s, REFUSED)
      return list[#list] and list[#list].error:find("41-typo.lua", 1, true) and list[#list]
    end, WAIT)
    assert.truthy(refused, s:log())
    local problems = h.lines(refused.error)
    assert.equal(2, #problems, refused.error)
    assert.truthy(problems[1]:find("^" .. h.literal(scripts .. "/40-broken.lua:1:")), problems[1])
    assert.truthy(problems[2]:find("^" .. h.literal(scripts .. "/41-typo.lua:1: unknown trigger 'return.craeted'")),
                  problems[2])

    local out, err, code = h.run({ "status", table.unpack(h.store_args(dir)) })
    assert.equal(0, code, err)
    assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM events"))
    local lines = h.lines(out)
    local at
    for i, line in ipairs(lines) do
      if line:find("^shop%s+" .. running .. " ") then at = i end
    end
    assert.truthy(at, "no scripts line for shop:\n" .. out)
    assert.truthy(lines[at]:find(" " .. h.literal(scripts) .. "$"), lines[at])
    local head = "^%s+refused " .. refused.version .. " at [%dT:Z-]+, the running version stays: "
    assert.truthy(lines[at + 1]:find(head .. h.literal(problems[1]) .. "$"), out)
    local column = lines[at + 1]:find("refused", 1, true)
    assert.truthy(lines[at + 2]:find("^" .. string.rep(" ", column - 1) .. "%s*" .. h.literal(problems[2]) .. "$"), out)
    s:stop()
  end)

  it("names the merchant's file and line, not the frozen copy, in a dead letter of a script error", function()
    local dir, scripts = service_dir()
    h.write(scripts .. "/45-boom.lua", [[
return {
  ["return.created"] = function() error("boom") end,
}
]])
    local s = start(dir)
    assert.equal(202, (h.post_signed(s:url(), webhook(8201))))
    assert.truthy(h.wait_for(function() return h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 2") == 1 end,
                             WAIT), s:log())
    local reason = sql_rows(dir, "SELECT reason FROM events WHERE state = 2")[1][1]
    assert.truthy(reason:find("^" .. h.literal(scripts .. "/45-boom.lua:2: boom")), reason)
    assert.falsy(reason:find("data/scripts", 1, true), reason)
    local out = h.run({ "dlq", "list", table.unpack(h.store_args(dir)) })
    assert.truthy(out:find("event:%d+%s+shop%s+" .. h.literal(scripts .. "/45-boom.lua:2: boom")), out)
    local log = s:stop()
    assert.truthy(log:find('"reason":' .. h.encode(scripts .. "/45-boom.lua:2: boom"):sub(1, -2), 1, true), log)
  end)

  it("keeps the frozen folders of loaded versions only; a refused version leaves just its specs' log", function()
    local dir, scripts = service_dir({ starter = true, specs = true })
    local s = start(dir)
    local running = await_entry(s, "no Klaviyo key: this tenant runs dry", 1).scripts
    -- Does not load: refused before any spec runs, and nothing of it stays.
    h.write(scripts .. "/40-extra.lua", "return { this is not Lua\n")
    await_entry(s, REFUSED, 1)
    assert.same({ running, "status.json" }, listing(dir))
    assert(os.remove(scripts .. "/40-extra.lua"))
    await_entry(s, "scripts are back to the running version", 1)

    -- Loads, but fails its specs: its copy goes; the log of its specs, which the refusal names, stays.
    local high = scripts .. "/50-high-value-returns.lua"
    local text = h.read(high)
    edit(high, "High Value Return Started", "High Value Return Opened")
    local failed = await_entry(s, REFUSED, 2)
    local log = frozen(dir, failed.version) .. ".spec.log"
    assert.truthy(failed.error:find("its specs failed", 1, true) and failed.error:find(log, 1, true), failed.error)
    local expected = { running, failed.version .. ".spec.log", "status.json" }
    table.sort(expected)
    assert.same(expected, listing(dir))
    assert.truthy(h.read(log):find('"High Value Return Started" was not tracked', 1, true))

    -- Passes: loaded, and kept beside the first version (the refused one's log goes with it).
    h.write(high, text .. "-- reviewed\n")
    local loaded = await_entry(s, RELOADED, 1)
    s:stop()
    expected = { running, loaded.version, loaded.version .. ".spec.log", "status.json" }
    table.sort(expected)
    assert.same(expected, listing(dir))
  end)
end)
