-- `returnflow serve` end to end, as real processes on loopback: signed webhooks in, a 202 only once
-- journaled, refusals that journal nothing, mapping into the dry file, recovery after kill -9, drain
-- on SIGTERM.
local h = require "helpers"

local SECRET = "spec-secret"

local start, post, count = h.start_serve, h.post_signed, h.sql_count

-- A data folder and a config for one dry tenant "shop" on a free port.
local function setup_dir(extra)
  return h.serve_dir({ max_body = extra and extra.max_body, secret = SECRET })
end

-- Waits until the dry file has at least n lines; returns them.
local function dry_lines(dir, n)
  local lines = {}
  h.wait_for(function()
    local ok, text = pcall(h.read, dir .. "/data/dry/shop.ndjson")
    lines = h.lines(ok and text or "")
    return #lines >= n
  end, 10)
  return lines
end

describe("returnflow serve", function()
  teardown(h.cleanup)

  it("answers 202 only for journaled webhooks and maps them into the dry file, valid for Klaviyo", function()
    local s = start(setup_dir())
    local created = h.read(h.fixture_path("return.created.json"))
    local status, answer = post(s:url(), created)
    assert.equal(202, status, answer)
    assert.truthy(answer:find('"status":"accepted"', 1, true))
    assert.equal(202, (post(s:url(), h.read(h.fixture_path("label.created.json")))))
    assert.equal(202, (post(s:url(), h.read(h.fixture_path("restock.requested.json")))))
    -- return.created: one event and its two schedules, due already (the fixture is from October);
    -- label.created: one event; restock: dropped on purpose.
    local lines = dry_lines(s.dir, 4)
    s:stop()
    assert.equal(4, #lines)
    assert.equal(3, count(s.dir, "SELECT count(*) FROM events"))
    assert.equal(1, count(s.dir, "SELECT count(*) FROM events WHERE state = 3"))
    local docs = {}
    for i, line in ipairs(lines) do
      docs[i] = string.format('{"input":"dry#%d","requests":[%s],"scheduled":[],"cancelled":[]}', i, line)
    end
    local report, code = h.validate(table.concat(docs, "\n") .. "\n")
    assert.equal(0, code, report)
    assert.truthy(lines[1]:find('"name":"Loop Return Created"', 1, true))
    assert.truthy(table.concat(lines, "\n"):find('"name":"Loop Label Created"', 1, true))
    assert.falsy(table.concat(lines, "\n"):find(SECRET, 1, true))
  end)

  it("refuses bad requests with their status and reason, and journals none of them", function()
    local s = start(setup_dir({ max_body = 3000 }))
    local small = '{"topic":"return","trigger":"return.created","id":"1"}'
    assert.equal(401, (post(s:url(), small, { secret = "wrong" })))
    assert.equal(401, (post(s:url(), small, { secret = false })))
    assert.equal(404, (post(s:url("nobody"), small)))
    assert.equal(415, (post(s:url(), small, { content_type = "text/plain" })))
    assert.equal(405, (post(s:url(), small, { method = "PUT" })))
    local status, answer = post(s:url(), '{"topic":"return",,}')
    assert.equal(400, status)
    assert.truthy(answer:find("byte 18", 1, true), answer)
    assert.equal(400, (post(s:url(), "[1,2]")))
    assert.equal(413, (post(s:url(), h.read(h.fixture_path("return.created.json")))))
    assert.equal(202, (post(s:url(), small)))
    s:stop()
    assert.equal(1, count(s.dir, "SELECT count(*) FROM events"))
  end)

  it("says when it is ready, and counts webhooks by outcome", function()
    local s = start(setup_dir())
    post(s:url(), '{"trigger":"return.created"}', { secret = "wrong" })
    local health = h.curl("http://" .. s.address .. "/healthz")
    local metrics = h.curl("http://" .. s.address .. "/metrics").body
    s:stop()
    if h.backend == "pg" then                 -- a shared store: the node, and the tenants it owns
      assert.truthy(health.body:match('^{"status":"ready","node":"[^"]+","owns":%[[^%]]*%]}$'), health.body)
      assert.truthy(metrics:find('returnflow_node_info{node="', 1, true), metrics)
    else
      assert.equal('{"status":"ready"} 200', health.body .. " " .. health.status)
    end
    assert.equal(200, health.status)
    assert.truthy(metrics:find('returnflow_webhooks_total{outcome="unauthorized"} 1', 1, true), metrics)
  end)

  it("maps after a restart what was acknowledged before a kill -9", function()
    local dir = setup_dir()
    local s = start(dir)
    local acked = 0
    for _, name in ipairs({ "return.created.json", "return.created.gift_return.json",
                            "return.created.store_credit.json", "giftcard.requested.json" }) do
      if post(s:url(), h.read(h.fixture_path(name))) == 202 then acked = acked + 1 end
    end
    s:stop("KILL")
    assert.equal(4, acked)
    assert.equal(4, count(dir, "SELECT count(*) FROM events"))
    local again = start(dir)
    h.wait_for(function() return count(dir, "SELECT count(*) FROM events WHERE state = 0") == 0 end, 10)
    -- Wait for every metric (not a count of lines: the schedules stay in the store until due).
    local metrics = { "Loop Return Created", "Loop Gift Return Request", "Loop Store Credit Issued" }
    local lines = {}
    h.wait_for(function()
      local ok, text = pcall(h.read, dir .. "/data/dry/shop.ndjson")
      lines = h.lines(ok and text or "")
      local all = table.concat(lines, "\n")
      for _, metric in ipairs(metrics) do
        if not all:find('"name":"' .. metric .. '"', 1, true) then return false end
      end
      return true
    end, 60)
    again:stop()
    assert.equal(0, count(dir, "SELECT count(*) FROM events WHERE state = 0"))
    -- every acknowledged webhook reached the dry file: 3 returns (an event and 2 schedules each),
    -- the gift request, and the store credit; at least once (a kill between write and mark may repeat).
    local text = table.concat(lines, "\n")
    for _, metric in ipairs(metrics) do
      assert.truthy(text:find('"name":"' .. metric .. '"', 1, true), metric)
    end
  end)

  it("drains on SIGTERM: stops cleanly and says so", function()
    local s = start(setup_dir())
    assert.equal(202, (post(s:url(), '{"topic":"return","trigger":"return.created","id":"9","customer":"a@b.c"}')))
    local log = s:stop("TERM")
    assert.truthy(log:find('"msg":"stopped"', 1, true), log)
  end)

  it("reloads scripts on SIGHUP, and keeps the working ones when new ones do not load", function()
    local dir = setup_dir()
    local s = start(dir)
    local credit = dir .. "/scripts/30-credit.lua"
    h.write(credit, (h.read(credit):gsub("Loop Store Credit Issued", "Store Credit Given")))
    os.execute("kill -HUP " .. s.pid)
    assert.truthy(h.wait_for(function() return s:log():find("config and scripts reloaded", 1, true) end))
    assert.equal(202, (post(s:url(), h.read(h.fixture_path("giftcard.requested.json")))))
    assert.truthy(h.wait_for(function() return table.concat(dry_lines(dir, 1), "\n"):find("Store Credit Given", 1, true) end))
    h.write(credit, "return { this is not Lua")
    os.execute("kill -HUP " .. s.pid)
    assert.truthy(h.wait_for(function() return s:log():find("the running ones stay", 1, true) end))
    local gift = h.fixture("giftcard.requested.json")
    gift.id = 552302
    assert.equal(202, (post(s:url(), h.encode(gift))))
    local lines = dry_lines(dir, 2)
    s:stop()
    assert.equal(2, #lines)
    assert.truthy(lines[2]:find("Store Credit Given", 1, true), lines[2])
  end)

  it("takes a new tenant on SIGHUP, and refuses a config that does not load", function()
    local dir = setup_dir()
    local s = start(dir)
    local small = '{"topic":"return","trigger":"return.created","id":"7","customer":"a@b.c"}'
    assert.equal(404, (post(s:url("outlet"), small)))
    local conf = dir .. "/returnflow.conf.lua"
    local text = h.read(conf)
    h.write(conf, (text:gsub("tenants = {", 'tenants = { outlet = { scripts = "scripts", webhook_secret = "spec-secret" },', 1)))
    os.execute("kill -HUP " .. s.pid)
    assert.truthy(h.wait_for(function() return s:log():find("config and scripts reloaded", 1, true) end))
    assert.equal(202, (post(s:url("outlet"), small)))
    assert.equal(202, (post(s:url("shop"), small)))
    h.write(conf, "return { tenants = ")
    os.execute("kill -HUP " .. s.pid)
    assert.truthy(h.wait_for(function() return s:log():find("the config does not load", 1, true) end))
    assert.equal(202, (post(s:url("outlet"), small)))
    s:stop()
    assert.equal(3, count(dir, "SELECT count(*) FROM events"))
  end)

  it("does not start half-configured: every config problem is reported", function()
    local dir = setup_dir()
    h.write(dir .. "/returnflow.conf.lua", 'return { tenants = { shop = { scripts = "nowhere" } }, listn = 1 }')
    local _, err, code = h.run({ "serve", "-c", dir .. "/returnflow.conf.lua" })
    assert.equal(2, code)
    assert.truthy(err:find("webhook_secret", 1, true), err)
    assert.truthy(err:find("listn", 1, true), err)
    assert.truthy(err:find("not started", 1, true), err)
  end)
end)
