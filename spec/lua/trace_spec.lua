-- `returnflow trace` end to end: serve and the Klaviyo stand-in as real processes; a return whose
-- first Klaviyo request is refused for good (a dead letter), whose expiry schedules a later webhook
-- cancels, traced by email, by event id and by return id, as text and as JSON.
local h = require "helpers"

local function queue_faults(standin, faults)
  local r = h.curl(standin.url .. "/_standin/faults", { body = faults })
  assert.truthy(r.status >= 200 and r.status < 300, r.body)
end

local function outbox(dir, where) return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE " .. where) end

-- return.created as if made now, so its day-21 and day-28 schedules are still ahead.
local function created_now()
  local now = os.date("!%Y-%m-%dT%H:%M:%S+00:00")
  return (h.read(h.fixture_path("return.created.json")):gsub('"created_at": "[^"]*"', '"created_at": "' .. now .. '"', 1))
end

describe("returnflow trace", function()
  local server, standin, dir, data
  local ids = {}

  setup(function()
    standin = h.start_standin()
    dir = h.serve_dir({ klaviyo = string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url),
                        node = "spec-node-7" })
    server = h.start_serve(dir)
    data = h.store_args(dir)          -- the folder's store, SQLite's or PostgreSQL's (trace_pg_spec.lua)
    -- the first event request is refused for good; the next one is answered 503 once, then taken
    queue_faults(standin, { { kind = "400", path = "/api/events", pointer = "/data/attributes/properties/spec_field" },
                            { kind = "503", path = "/api/events" } })
    local status, answer = h.post_signed(server:url(), created_now())
    assert.equal(202, status, answer)
    ids.created = tonumber(answer:match('"id":(%d+)'))
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 2") == 1 end, 20), server:log())
    status, answer = h.post_signed(server:url(), h.read(h.fixture_path("return.updated.cancelled.json")))
    assert.equal(202, status, answer)
    ids.cancelled = tonumber(answer:match('"id":(%d+)'))
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 0") == 0
        and outbox(dir, "state IN (0, 3)") == 0
    end, 20), server:log())
  end)

  teardown(function()
    if server then server:stop() end
    if standin then standin.stop() end
    h.cleanup()
  end)

  it("follows a customer's return by email, as JSON: webhooks, mappings, requests, schedules, memory", function()
    local out, err, code = h.run({ "trace", "--json", "MARIA.gonzalez@example.com", table.unpack(data) })
    assert.equal(0, code, err)
    local t = h.decode(out)
    assert.same({ "8812745" }, t.returns)
    assert.equal("email", t.query.kind)
    assert.equal(2, #t.events)
    local created, cancelled = t.events[1], t.events[2]
    assert.equal(ids.created, created.id)
    assert.equal("return.created", created.trigger)
    assert.equal("mapped", created.state)
    assert.equal("shop", created.tenant)
    assert.truthy(created.script_version and #created.script_version > 0, out)
    assert.truthy(created.received_at:find("^%d%d%d%d%-%d%d%-%d%dT"), created.received_at)
    -- which node acknowledged each webhook: the config's node
    assert.equal("spec-node-7", created.node, out)
    assert.equal("spec-node-7", cancelled.node, out)
    assert.equal("return.updated", cancelled.trigger)
    -- the retried request: its 503 try, with its time, then delivered
    local retried = cancelled.requests[1]
    assert.equal("delivered", retried.state, out)
    assert.equal(2, retried.attempts)
    assert.equal(202, retried.last_status)
    assert.equal(1, #retried.failed_attempts, out)
    assert.equal(503, retried.failed_attempts[1].status)
    assert.truthy(retried.failed_attempts[1].at >= cancelled.received_at, out)
    -- the dead letter: Klaviyo's 400 and its pointer
    local dead
    for _, r in ipairs(created.requests) do if r.state == "dead" then dead = r end end
    assert.truthy(dead, out)
    assert.equal(400, dead.last_status)
    assert.equal("POST", dead.method)
    assert.equal("/api/events", dead.path:match("^[^?]*"))
    assert.truthy(dead.last_error:find("/data/attributes/properties/spec_field", 1, true), dead.last_error)
    assert.equal(1, dead.attempts)
    assert.equal(400, dead.failed_attempts[1].status)
    -- sent alone, not in a Klaviyo bulk job (a backlog's bulk jobs: durability_spec.lua)
    assert.equal(h.decode("null"), dead.bulk_job, out)
    assert.truthy(out:find('"bulk_job":null', 1, true), out)
    -- the expiry schedules the cancelling webhook removed, and by which event
    assert.equal(2, #created.schedules, out)
    for _, s in ipairs(created.schedules) do
      assert.equal("cancelled", s.state)
      assert.equal(ids.cancelled, s.cancelled_by)
      assert.truthy(s.key:find("8812745", 1, true), s.key)
    end
    local keys = {}
    for _, m in ipairs(t.memory) do keys[m.key] = m end
    assert.truthy(keys["return:8812745"], out)
    assert.truthy(keys["customer:maria.gonzalez@example.com"], out)
    assert.falsy(out:find("pk_spec_secret_key", 1, true))
  end)

  it("prints a timeline that says why the email did not go out, and how to send it again", function()
    local out, err, code = h.run({ "trace", "8812745", "--tenant", "shop", table.unpack(data) })
    assert.equal(0, code, err)
    assert.truthy(out:find("webhook event:" .. ids.created .. " return.created", 1, true), out)
    assert.truthy(out:find("(tenant shop, return 8812745, acked by spec-node-7)", 1, true), out)
    assert.falsy(out:find("Klaviyo bulk job", 1, true), out)
    assert.truthy(out:find("mapping: mapped by scripts ", 1, true), out)
    assert.truthy(out:find("dead after 1 attempt; Klaviyo answered 400", 1, true), out)
    assert.truthy(out:find("why: [^\n]*/data/attributes/properties/spec_field"), out)
    assert.truthy(out:find("returnflow dlq replay request:%d+"), out)
    assert.truthy(out:find("try at %d[^\n]*: Klaviyo answered 503\n"), out)
    assert.truthy(out:find("delivered after 2 attempts; Klaviyo answered 202", 1, true), out)
    assert.truthy(out:find("cancelled by event:" .. ids.cancelled, 1, true), out)
    -- the created webhook comes before the cancelling one
    assert.truthy(out:find("return.created", 1, true) < out:find("return.updated", 1, true), out)
  end)

  it("finds the return from one of its webhooks' event id", function()
    local out, err, code = h.run({ "trace", "--event", tostring(ids.cancelled), "--json", table.unpack(data) })
    assert.equal(0, code, err)
    local t = h.decode(out)
    assert.equal(2, #t.events)
    assert.equal("event", t.query.kind)
    local again = h.decode((h.run({ "trace", "event:" .. ids.created, "--json", table.unpack(data) })))
    assert.equal(2, #again.events)
  end)

  it("says when nothing matches: another tenant, an unknown email, a near id", function()
    for _, args in ipairs({ { "8812745", "--tenant", "other" }, { "nobody@example.com" }, { "881274" } }) do
      local argv = { "trace", table.unpack(args) }
      for _, a in ipairs(data) do argv[#argv + 1] = a end
      local out, _, code = h.run(argv)
      assert.equal(1, code, out)
      assert.truthy(out:find("^no webhook found"), out)
    end
    local _, err, code = h.run({ "trace", table.unpack(data) })
    assert.equal(2, code)
    assert.truthy(err:find("give one return id", 1, true), err)
  end)

  it("reads a store older than the node and bulk job columns (SQLite as NULL; PostgreSQL once migrated)", function()
    server:stop()                  -- the store goes back a version under nobody
    server = nil
    h.sql_rows(dir, "ALTER TABLE events DROP COLUMN node")
    if h.backend == "pg" then      -- read-only, trace does not migrate: it says how
      h.sql_rows(dir, "DELETE FROM schema_version")
      h.sql_rows(dir, "INSERT INTO schema_version(version) VALUES (2)")
      local _, err, code = h.run({ "trace", "8812745", table.unpack(data) })
      assert.equal(2, code, err)
      assert.truthy(err:find("schema is version 2", 1, true) and err:find("returnflow store migrate", 1, true), err)
      local out, merr, mcode = h.run({ "store", "migrate", "--data", data[4] })
      assert.equal(0, mcode, out .. merr)
    end
    local out, err, code = h.run({ "trace", "--json", "8812745", table.unpack(data) })
    assert.equal(0, code, err)
    local t = h.decode(out)
    assert.equal(2, #t.events)
    assert.equal(h.decode("null"), t.events[1].node, out)
    out = h.run({ "trace", "8812745", table.unpack(data) })
    assert.truthy(out:find("acked by ?)", 1, true), out)
  end)

  it("has its help", function()
    local out, _, code = h.run({ "help", "trace" })
    assert.equal(0, code)
    assert.truthy(out:find("usage: returnflow trace", 1, true))
    assert.equal(out, (h.run({ "trace", "--help" })))
  end)
end)
