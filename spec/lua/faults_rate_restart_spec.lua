-- Rate windows across a restart (issue 11): Klaviyo counts a window of requests whoever sends them,
-- so a deliverer that starts after a kill -9 (a new process) or a SIGHUP (a new deliverer in the
-- process) must count what the old one sent (core/service/deliver/rate_keep.c), or it sends another
-- window's worth on top and Klaviyo answers 429.
--
-- Klaviyo's limits scaled by 0.1 on both sides (the stand-in's --limit-scale, the tenant's
-- rate_scale): /api/events 35 a second, 350 a minute. 90 webhooks queued behind the delivery lock
-- are 90 single requests (under the bulk threshold): the first second's 35 leave at once; the
-- service is killed (or reloaded) right then, and the next deliverer must wait out that second.
local h = require "helpers"

local PROBE = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Rate Probe", { return_id = ret.id }, { unique_id = "rate:" .. ret.id })
  end,
}
]]

-- Holds DATA/delivery.lock, as a `returnflow send` delivering the folder does, until stopped.
local LOCK_PY = [[
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(300)
]]

local template
local function webhook(i)
  if not template then
    local ev = h.fixture("return.created.json")
    ev.id, ev.customer = "@ID@", "@EMAIL@"
    ev.customer_detail.email = "@EMAIL@"
    template = h.encode(ev)
  end
  return (template:gsub("@ID@", tostring(7300000 + i)):gsub("@EMAIL@", "rate+" .. i .. "@example.com"))
end

local function events_sent(standin)
  local st = h.curl(standin.url .. "/_standin/stats").json
  local n = 0
  for _, c in pairs(st.by_endpoint["POST /api/events"] or {}) do n = n + c end
  return n, st
end

local function throttled(st)
  local n = 0
  for _, counts in pairs(st.by_endpoint) do n = n + (counts["429"] or 0) end
  return n
end

describe("rate windows across a restart", function()
  local servers, standin, holder = {}, nil, nil
  after_each(function()
    if holder then holder.stop() end
    for _, s in ipairs(servers) do if s:alive() then s:stop("KILL") end end
    if standin then standin.stop() end
    servers, standin, holder = {}, nil, nil
  end)
  teardown(h.cleanup)

  -- serve with 90 webhooks queued, delivery just released: returns the server and its folder.
  local function burst_out()
    standin = h.start_standin({ "--limit-scale", "0.1", "--quiet" })
    local dir = h.tempdir()
    h.sh_ok("mkdir -p " .. h.quote(dir .. "/scripts") .. " " .. h.quote(dir .. "/data"))
    h.write(dir .. "/scripts/10-probe.lua", PROBE)
    h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data",
  tenants = { shop = { scripts = "scripts", webhook_secret = "spec-secret",
                       klaviyo = { key = "pk_spec_rate_key", base_url = %q, rate_scale = 0.1 } } },
}]], standin.url))
    holder = h.spawn(h.quote(h.python) .. " -c " .. h.quote(LOCK_PY) .. " " .. h.quote(dir .. "/data/delivery.lock"))
    assert.truthy(h.wait_for(function() return holder.output():find("locked", 1, true) end))
    local server = h.start_serve(dir)
    servers[#servers + 1] = server
    for i = 1, 90 do assert.equal(202, (h.post_signed(server:url(), webhook(i)))) end
    assert.truthy(h.wait_for(function() return h.sql_count(dir, "SELECT count(*) FROM outbox") == 90 end),
                  server:log())
    holder.stop()
    holder = nil
    assert.truthy(h.wait_for(function() return events_sent(standin) >= 30 end, 10), server:log())
    return server, dir
  end

  local function all_delivered(dir, server)
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1") == 90
    end, 30), server:log())
  end

  it("a new process after kill -9 counts the old one's requests: no 429", function()
    local server, dir = burst_out()
    local t0 = h.now()
    server:stop("KILL")
    local before = events_sent(standin)
    local again = h.start_serve(dir)
    servers[#servers + 1] = again
    local restarted = h.now() - t0
    all_delivered(dir, again)
    local sent, st = events_sent(standin)
    assert.equal(0, throttled(st), h.encode(st.by_endpoint))
    assert.truthy(h.read(dir .. "/data/delivery.rate"):find("^returnflow delivery rate windows 1\n"))
    io.stderr:write(string.format("[faults] rate windows after kill -9: %d requests before the kill, %d in all, "
                                  .. "restarted in %.2f s, 429: %d\n", before, sent, restarted, throttled(st)))
  end)

  it("SIGHUP's new deliverer counts the old one's requests: no 429", function()
    local server, dir = burst_out()
    local before = events_sent(standin)
    os.execute("kill -HUP " .. server.pid)
    all_delivered(dir, server)
    assert.truthy(server:log():find("SIGHUP: config and scripts reloaded", 1, true), server:log())
    local sent, st = events_sent(standin)
    assert.equal(0, throttled(st), h.encode(st.by_endpoint))
    io.stderr:write(string.format("[faults] rate windows after SIGHUP: %d requests before, %d in all, 429: %d\n",
                                  before, sent, throttled(st)))
  end)
end)
