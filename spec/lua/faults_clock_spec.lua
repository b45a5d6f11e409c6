-- Faults (issue 11): the wall clock stepped forward and back by an hour. serve's clock is stepped
-- through RETURNFLOW_CLOCK_OFFSET (core/base/clock.c: seconds added to the wall clock of that one
-- process; the machine's clock is not touched). A schedule's due time is a wall-clock instant, so it
-- fires once, when serve's clock first reads it or later: a step forward over it fires it at once, a
-- step back fires nothing again and nothing early; and delivery, whose windows and timers run on the
-- monotonic clock, goes on across both steps.
local h = require "helpers"

-- Each return: one event now, and two scheduled at the instants its webhook names.
local SCRIPT = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Clock Now", { return_id = ret.id }, { unique_id = "now:" .. ret.id })
    out:schedule("soon:" .. ret.id, ret.spec_soon, "Clock Soon", { return_id = ret.id }, { unique_id = "soon:" .. ret.id })
    out:schedule("late:" .. ret.id, ret.spec_late, "Clock Late", { return_id = ret.id }, { unique_id = "late:" .. ret.id })
  end,
}
]]

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

describe("the clock stepped by an hour", function()
  local server, standin
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("fires each schedule once, when serve's clock reaches it, across a step forward and back", function()
    local t0 = os.time()
    local function webhook(id)
      local ev = h.fixture("return.created.json")
      ev.id, ev.customer = id, "clock+" .. id .. "@example.com"
      ev.customer_detail.email = ev.customer
      ev.spec_soon, ev.spec_late = iso(t0 + 1800), iso(t0 + 5400)       -- in 30 and 90 minutes
      return h.encode(ev)
    end
    standin = h.start_standin({ "--no-limits" })
    local dir = h.tempdir()
    h.sh_ok("mkdir " .. h.quote(dir .. "/scripts"))
    h.write(dir .. "/scripts/10-clock.lua", SCRIPT)
    h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data",
  tenants = { shop = { scripts = "scripts", webhook_secret = "spec-secret",
                       klaviyo = { key = "pk_spec_clock_key", base_url = %q } } },
}]], standin.url))
    local offset = h.write(dir .. "/clock-offset", "0")
    server = h.start_serve(dir, { RETURNFLOW_CLOCK_OFFSET = offset })

    -- The stand-in's events, by unique_id.
    local function accepted()
      local j = h.curl(standin.url .. "/_standin/events").json
      local by = {}
      for _, e in ipairs(j.events or j) do
        local uid = e.unique_id or (e.attributes and e.attributes.unique_id)
        if uid then by[uid] = (by[uid] or 0) + 1 end
      end
      return by
    end
    local function reaches(uid) return h.wait_for(function() return accepted()[uid] end) end
    local function waiting() return h.sql_count(dir, "SELECT count(*) FROM schedules") end

    assert.equal(202, (h.post_signed(server:url(), webhook("8100001"))))
    assert.truthy(reaches("now:8100001"), server:log())
    assert.equal(2, waiting())

    h.write(offset, "3600")                            -- forward an hour: "soon" is due, "late" is not
    assert.truthy(reaches("soon:8100001"), server:log())
    assert.equal(1, waiting())

    h.write(offset, "0")                               -- back an hour
    assert.equal(202, (h.post_signed(server:url(), webhook("8100002"))))
    assert.truthy(reaches("now:8100002"), server:log())   -- delivery goes on after the step back
    -- Mapped and delivered since the step, with its schedules stored: nothing fired early or again.
    assert.equal(3, waiting())

    h.write(offset, "3600")                            -- forward again: the second "soon" only
    assert.truthy(reaches("soon:8100002"), server:log())
    assert.equal(2, waiting())

    h.write(offset, "7200")                            -- both "late" ones are due now
    assert.truthy(h.wait_for(function() return waiting() == 0 end), server:log())
    assert.truthy(reaches("late:8100001") and reaches("late:8100002"), server:log())

    local by = accepted()
    for _, uid in ipairs({ "now:8100001", "soon:8100001", "late:8100001", "now:8100002", "soon:8100002",
                           "late:8100002" }) do
      assert.equal(1, by[uid], uid)
    end
    -- Six rows, each sent once (one attempt a row; the stand-in took six requests and kept six events).
    -- The stand-in's answer to the last one may reach the store a moment after the stand-in counted it.
    assert.equal(6, h.sql_count(dir, "SELECT count(*) FROM outbox"))
    local function sent_once() return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1 AND attempts = 1") end
    h.wait_for(function() return sent_once() == 6 end, 10)
    assert.equal(6, sent_once())
    local stats = h.curl(standin.url .. "/_standin/stats").json
    assert.equal(6, stats.by_endpoint["POST /api/events"]["202"], h.encode(stats))
    assert.equal(0, stats.events_deduplicated)
    local r = h.curl("http://" .. server.address .. "/healthz")
    assert.equal(200, r.status)
    io.stderr:write("[faults] clock stepped +1 h, back, +1 h, +2 h: ", h.encode({ acked = 2, delivered = 6,
      duplicates = 0, sends_per_row = 1, healthz = r.json.status }), "\n")
  end)
end)
