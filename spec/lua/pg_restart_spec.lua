--- `returnflow serve` on PostgreSQL while PostgreSQL itself goes down under load (issue 15): a crash
-- (pg_ctl stop -m immediate) and a clean restart (-m fast), each with the server down for a while.
-- What Loop relies on: while the store is gone, webhooks are answered 503 (Loop retries them), never
-- 202; once it is back the service answers 202 again by itself (the journal writer's probe, every
-- connection reconnected); and nothing acknowledged is lost: every 202'd webhook is journaled and
-- reaches Klaviyo once. The cluster runs with fsync on: a crash keeps what it acknowledged.
local h = require "helpers"
local pg = require "pg"

local SECRET = "spec-secret"
local LOAD_POST = h.root .. "/spec/tools/load_post.py"
local FIXTURE = h.fixture_path("return.created.json")

-- One event per webhook, its unique_id carrying the webhook's id: the stand-in keeps one a unique_id.
local PROBE_SCRIPT = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Restart Probe", { webhook = ret.id }, { unique_id = "webhook:" .. ret.id })
  end,
}
]]

local function progress(file)
  local f = io.open(file, "r")
  local acked = f and f:read("n") or 0
  if f then f:close() end
  return acked
end

describe("returnflow serve when PostgreSQL restarts under load", function()
  local cluster, server, standin, load

  after_each(function()
    if load then load.stop() end
    if server and server:alive() then server:stop("KILL") end
    if standin then standin.stop() end
    if cluster then cluster:stop() end
    cluster, server, standin, load = nil, nil, nil, nil
    h.cleanup()
  end)

  it("answers 503 while it is down, 202 again once it is back, and loses nothing it acknowledged", function()
    local count = h.size("RETURNFLOW_PG_RESTART_N", 4000, 2000)   -- `make stress`, `make test`
    cluster = pg.start({ fsync = true })
    standin = h.start_standin({ "--no-limits", "--quiet" })
    local dir = h.tempdir()
    h.sh_ok("mkdir -p " .. h.quote(dir .. "/probe"))
    h.write(dir .. "/probe/10-probe.lua", PROBE_SCRIPT)
    h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data", store = { url = %q },
  tenants = { shop = { scripts = "probe", webhook_secret = %q,
                       klaviyo = { key = "pk_spec_restart_key", base_url = %q, rate_scale = 100 } } },
}
]], cluster.url, SECRET, standin.url))
    h.pg_register(dir, cluster)
    server = h.start_serve(dir)
    local address_file, acked_file, progress_file = dir .. "/address", dir .. "/acked", dir .. "/progress"
    h.write(address_file, server.address)
    load = h.spawn(string.format("%s %s --address-file %s --fixture %s --secret %s --count %d --clients 4 "
                                 .. "--deadline 120 --acked %s --progress %s --watch-pid %s",
                                 h.quote(h.python), h.quote(LOAD_POST), h.quote(address_file), h.quote(FIXTURE),
                                 h.quote(SECRET), count, h.quote(acked_file), h.quote(progress_file), h.own_pid()))

    -- Two outages, at a quarter and at 60 % of the load: a crash, then a clean restart; down 2 s each.
    local outages = { { at = count // 4, mode = "immediate" }, { at = count * 6 // 10, mode = "fast" } }
    local stalled = {}
    for i, o in ipairs(outages) do
      assert.truthy(h.wait_for(function() return progress(progress_file) >= o.at or not load.alive() end, 90))
      assert.truthy(load.alive(), "the load ended before outage " .. i .. ": " .. load.output())
      cluster:stop_server(o.mode)
      -- Nothing is acknowledged while the store is gone. The load writes its progress every 50 ms, so
      -- what was answered just before the stop shows up late: counted from 0.25 s after the stop, an
      -- ack can only be one of the 4 clients' requests whose commit came before the stop (at a high ack
      -- rate, 50 ms of lag alone held 11 acks: the count started at the stop said 11 > 8).
      h.sleep(0.25)
      local before = progress(progress_file)
      h.sleep(1.75)
      stalled[i] = progress(progress_file) - before
      local health = h.curl("http://" .. server.address .. "/healthz")
      assert.equal(503, health.status, health.body)
      cluster:start_server()
      assert.truthy(server:alive(), "serve died while PostgreSQL was down:\n" .. server:log())
    end
    assert.truthy(h.wait_for(function() return not load.alive() end, 120), "the load did not finish")
    local summary = h.decode(load.output():match("[^\n]+") or "null")

    assert.equal(count, summary.acked, h.encode(summary))
    assert.truthy((summary.refused["503"] or 0) > 0, "no webhook was answered 503 while down: " .. h.encode(summary))
    for status in pairs(summary.refused) do assert.equal("503", status, h.encode(summary)) end
    for i, n in ipairs(stalled) do
      assert.truthy(n <= 4, "outage " .. i .. ": " .. n .. " webhooks acknowledged while PostgreSQL was down")
    end

    -- Everything is mapped and delivered once PostgreSQL is back, by the same process.
    local done = h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 0") == 0
             and h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state <> 1") == 0
    end, 90)
    assert.truthy(done, "not everything was mapped and sent within 90 s: events by state "
                  .. table.concat(h.sql_rows(dir, "SELECT state || ':' || count(*) FROM events GROUP BY state"), " ")
                  .. ", requests by state "
                  .. table.concat(h.sql_rows(dir, "SELECT state || ':' || count(*) FROM outbox GROUP BY state"), " ")
                  .. "\n" .. server:log():sub(-3000))
    local health = h.curl("http://" .. server.address .. "/healthz")
    assert.equal(200, health.status, health.body)
    local log = server:stop("TERM")
    assert.truthy(log:find('"msg":"stopped"', 1, true), log)

    -- Every acked webhook is journaled, and its event reached Klaviyo, once.
    local journaled = {}
    local rows = h.sql_rows(dir, "SELECT json_extract(body, '$.id') FROM events WHERE tenant = 'shop'")
    for _, id in ipairs(rows) do journaled[id] = true end
    local r = h.curl(standin.url .. "/_standin/events", { timeout = 60 })
    local at_klaviyo = {}
    for id in r.body:gmatch('"unique_id":%s*"webhook:([^"]+)"') do at_klaviyo[id] = (at_klaviyo[id] or 0) + 1 end
    local lost, undelivered, twice = {}, {}, {}
    for _, id in ipairs(h.lines(h.read(acked_file))) do
      if not journaled[id] then lost[#lost + 1] = id end
      if not at_klaviyo[id] then undelivered[#undelivered + 1] = id end
    end
    for id, n in pairs(at_klaviyo) do if n > 1 then twice[#twice + 1] = id end end
    assert.same({}, lost, "acknowledged but not journaled")
    assert.same({}, undelivered, "acknowledged but not at Klaviyo")
    assert.same({}, twice, "one webhook, two events at Klaviyo")
  end)
end)
