-- Faults (issue 11): serve stopped (SIGSTOP) with work in every stage, then continued (SIGCONT).
-- Its own file: the stop is a wait, and the suite's pool runs other files beside it.
--
-- How long: longer than every timeout that can fire on the way back, with this config: a request to
-- Klaviyo (delivery.timeout_seconds = 2), the HTTP server's (header 2 s, body 2 s, idle 5 s), and a
-- mapping worker's hard deadline (4 x (2 x caps.time_ms 500 + 1 s) = 8 s, core/service/mapworker.c);
-- the store's busy timeouts count SQLite's own sleeps, which a stopped process does not take. So
-- STOP_SECONDS = 10 exceeds them all: 30 s (the issue's figure) would wait 20 s more for nothing.
local h = require "helpers"

local STOP_SECONDS = 10

local PROBE = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Fault Probe", { return_id = ret.id }, { unique_id = "probe:" .. ret.id })
  end,
}
]]

local function webhook(i)
  local ev = h.fixture("return.created.json")
  ev.id, ev.customer = tostring(7500000 + i), "stop+" .. i .. "@example.com"
  ev.customer_detail.email = ev.customer
  return h.encode(ev)
end

describe("serve stopped with SIGSTOP, then continued", function()
  local server, standin
  after_each(function()
    if server then
      os.execute("kill -CONT " .. server.pid .. " 2>/dev/null")
      server:stop()
    end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("loses nothing, sends nothing more often than its attempts, and is ready again", function()
    standin = h.start_standin()
    -- Klaviyo answers the first requests after 1.5 s: they are out when serve stops, and their
    -- answers wait in its sockets past its request timeout.
    local r = h.curl(standin.url .. "/_standin/faults", { body = { kind = "slow", delay_ms = 1500, count = 5,
                                                                    path = "/api/events" } })
    assert.equal(201, r.status, r.body)
    local dir = h.tempdir()
    h.sh_ok("mkdir " .. h.quote(dir .. "/scripts"))
    h.write(dir .. "/scripts/10-probe.lua", PROBE)
    h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data",
  timeouts = { header = 2, body = 2, idle = 5 },
  caps = { time_ms = 500 },
  delivery = { backoff_max_seconds = 1, timeout_seconds = 2 },
  tenants = { shop = { scripts = "scripts", webhook_secret = "spec-secret",
                       klaviyo = { key = "pk_spec_stop_key", base_url = %q } } },
}]], standin.url))
    server = h.start_serve(dir)
    local n = 20
    for i = 1, n do assert.equal(202, (h.post_signed(server:url(), webhook(i)))) end
    -- Stopped with requests in flight (the slow ones) and events perhaps still being mapped.
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 3") > 0
    end), server:log())
    os.execute("kill -STOP " .. server.pid)
    local stopped_at = h.now()
    local stat = h.wait_for(function()
      local f = io.open("/proc/" .. server.pid .. "/stat", "r")
      local s = f and f:read("a") or ""
      if f then f:close() end
      return s:match("^%d+ %b() T") and s
    end, 5)
    assert.truthy(stat, "serve did not stop")
    -- Nothing answers meanwhile: a health check times out (what a load balancer would see).
    assert.equal(0, h.curl("http://" .. server.address .. "/healthz", { timeout = 1 }).status)
    h.wait_for(function() return h.now() - stopped_at >= STOP_SECONDS end, STOP_SECONDS + 5)
    os.execute("kill -CONT " .. server.pid)

    assert.truthy(h.wait_for(function()
      return h.curl("http://" .. server.address .. "/healthz").status == 200
    end, 20), server:log())
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1") == n
    end), server:log())

    -- Nothing lost: every event mapped (none a dead letter: the worker's results were waiting, not
    -- overdue), every request delivered, each unique_id kept once by Klaviyo.
    assert.equal(n, h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 1"))
    assert.equal(n, h.sql_count(dir, "SELECT count(*) FROM outbox"))
    local accepted = h.curl(standin.url .. "/_standin/events").json
    assert.equal(n, #(accepted.events or accepted))
    -- Nothing sent more often than its attempts.
    local j = h.curl(standin.url .. "/_standin/requests?path=/api/events").json
    local by, total = {}, 0
    for _, req in ipairs(j.requests or j) do
      local uid = tostring(req.body and req.body.data and req.body.data.attributes.unique_id)
      by[uid], total = (by[uid] or 0) + 1, total + 1
    end
    local most = 0
    for _, row in ipairs(h.sql_rows(dir, "SELECT json_extract(body, '$.data.attributes.unique_id'), attempts FROM outbox")) do
      local uid, attempts = row:match("^([^|]*)|(%d+)$")
      assert.truthy((by[uid] or 0) <= tonumber(attempts), row .. " sent " .. tostring(by[uid]))
      most = math.max(most, by[uid] or 0)
    end
    assert.truthy(server:alive())
    io.stderr:write("[faults] SIGSTOP ", STOP_SECONDS, " s then SIGCONT: ", h.encode({ acked = n, delivered = n,
      requests = total, most_sends_per_row = most, duplicates_accepted = 0, healthz_after = "ready" }), "\n")
  end)
end)
