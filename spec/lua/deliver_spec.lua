-- Delivery to Klaviyo, end to end: `returnflow serve` and the Klaviyo stand-in as real processes.
-- Every request the stand-in accepts was validated against Klaviyo's OpenAPI spec; faults are queued
-- on the stand-in and must end in the right state: delivered after retry, dead letter, tenant paused.
local h = require "helpers"

local function outbox(dir, where) return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE " .. where) end

-- serve with a keyed tenant pointed at a fresh stand-in.
local function start_pair()
  local standin = h.start_standin()
  local dir = h.serve_dir({ klaviyo = string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url) })
  local server = h.start_serve(dir)
  return server, standin, dir
end

local function queue_faults(standin, faults)
  local r = h.curl(standin.url .. "/_standin/faults", { body = faults })
  assert.truthy(r.status >= 200 and r.status < 300, r.body)
end

local function accepted(standin)
  local j = h.curl(standin.url .. "/_standin/events").json
  return j.events or j
end

local function post_fixture(server, name)
  local status, answer = h.post_signed(server:url(), h.read(h.fixture_path(name)))
  assert.equal(202, status, answer)
end

describe("delivery to Klaviyo", function()
  local server, standin, dir
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("delivers every customer event, valid for Klaviyo, and never logs the key", function()
    server, standin, dir = start_pair()
    -- return.created's two reminders are long due and fire at once, unless label.created's cancel is
    -- mapped first (in one batch with it, as on a loaded machine): its requests are in before the rest.
    post_fixture(server, "return.created.json")
    assert.truthy(h.wait_for(function() return outbox(dir, "1 = 1") == 3 end), server:log())
    for _, name in ipairs({ "label.created.json", "return.updated.closed.json", "giftcard.requested.json",
                            "restock.requested.json" }) do
      post_fixture(server, name)
    end
    -- return.created: 1 + 2 schedules (due: October), label: 1, closed: status + refund + exchange order,
    -- store credit: 1; restock: nothing.
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 1") == 8 end), server:log())
    assert.equal(0, outbox(dir, "state <> 1"))
    local events = accepted(standin)
    assert.equal(8, #events)
    local log = server:stop()
    server = nil
    assert.falsy(log:find("pk_spec_secret_key", 1, true))
  end)

  it("delivers with Loop's public key kind to the /client/ endpoints, with no Authorization header", function()
    standin = h.start_standin()
    dir = h.serve_dir({ klaviyo = string.format('{ key_kind = "public", site_id = "AbC123", base_url = %q }', standin.url) })
    server = h.start_serve(dir)
    post_fixture(server, "giftcard.requested.json")
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 1") == 1 end), server:log())
    local seen = h.curl(standin.url .. "/_standin/requests").json
    seen = seen.requests or seen
    assert.equal(1, #seen)
    assert.truthy(seen[1].path:find("^/client/events%?company_id=AbC123"), seen[1].path)
    assert.falsy(h.encode(seen[1].headers or {}):lower():find("authorization", 1, true))
    assert.falsy(io.open(dir .. "/data/dry/shop.ndjson"), "a keyed public tenant is not dry")
  end)

  it("retries 429 (honouring Retry-After), 500, 503 and a text/html 403, then delivers", function()
    server, standin, dir = start_pair()
    queue_faults(standin, { { kind = "429", retry_after = 1, path = "/api/events" },
                            { kind = "500", path = "/api/events" }, { kind = "503", path = "/api/events" },
                            { kind = "403-html", path = "/api/events" } })
    post_fixture(server, "giftcard.requested.json")
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 1") == 1 end, 20), server:log())
    -- the depth is read again after the delivered row's commit, a moment after SQL shows it (ASan)
    local metrics
    h.wait_for(function()
      metrics = h.curl("http://" .. server.address .. "/metrics").body
      return metrics:find('returnflow_queue_depth{tenant="shop"} 0', 1, true) ~= nil
    end, 10)
    assert.truthy(metrics:find('returnflow_requests_total{tenant="shop",outcome="retried"} 4', 1, true), metrics)
    for _, status in ipairs({ "429", "500", "503", "403", "202" }) do
      assert.truthy(metrics:find('returnflow_klaviyo_answers_total{tenant="shop",endpoint="events",status="'
                                 .. status .. '"} 1', 1, true), metrics)
    end
    assert.truthy(metrics:find('returnflow_delivery_seconds_count{tenant="shop"} 1', 1, true), metrics)
    assert.truthy(metrics:find('returnflow_queue_depth{tenant="shop"} 0', 1, true), metrics)
    assert.equal(1, #accepted(standin))
  end)

  it("dead-letters a 400 with Klaviyo's error, and goes on with the next request", function()
    server, standin, dir = start_pair()
    queue_faults(standin, { { kind = "400", path = "/api/events", pointer = "/data/attributes/properties" } })
    post_fixture(server, "giftcard.requested.json")
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 2") == 1 end), server:log())
    local err = table.concat(h.sql_rows(dir, "SELECT last_status, last_error FROM outbox WHERE state = 2"), "\n")
    assert.truthy(err:find("^400|"), err)
    assert.truthy(err:find("/data/attributes/properties", 1, true), err)
    post_fixture(server, "return.created.json")
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 1") == 3 end), server:log())
  end)

  it("lists, shows and replays dead letters, and status counts them", function()
    server, standin, dir = start_pair()
    queue_faults(standin, { { kind = "400", path = "/api/events", pointer = "/data/attributes/value" } })
    post_fixture(server, "giftcard.requested.json")
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 2") == 1 end), server:log())
    local data = h.store_args(dir)
    local status = h.run({ "status", table.unpack(data) })
    assert.truthy(status:find("shop%s+0%s+0%s+0%s+0%s+0%s+0%s+1%s+no"), status)
    local list = h.run({ "dlq", "list", table.unpack(data) })
    local id = list:match("(request:%d+)")
    assert.truthy(id, list)
    local shown = h.run({ "dlq", "show", id, table.unpack(data) })
    assert.truthy(shown:find("/data/attributes/value", 1, true), shown)
    local _, _, code = h.run({ "dlq", "replay", id, table.unpack(data) })
    assert.equal(0, code)
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 1") == 1 end), server:log())
    assert.equal(1, #accepted(standin))
  end)

  it("pauses the tenant on 401, keeps its queue and says so", function()
    server, standin, dir = start_pair()
    queue_faults(standin, { { kind = "401", path = "/api/events" } })
    post_fixture(server, "giftcard.requested.json")
    local health = h.wait_for(function()
      local r = h.curl("http://" .. server.address .. "/healthz")
      return r.body:find('"paused":"shop"', 1, true) and r.body
    end)
    assert.truthy(health)
    assert.equal(1, outbox(dir, "state = 0"))
    post_fixture(server, "return.created.json")
    h.sleep(0.5)
    assert.equal(0, outbox(dir, "state = 1"))             -- nothing more is sent while paused
    local status = h.run({ "status", table.unpack(h.store_args(dir)) })
    assert.truthy(status:find("shop.-yes"), status)
    local log = server:stop()
    server = nil
    assert.truthy(log:find("delivery is paused", 1, true), log)
  end)

  it("keeps one profile's requests in order while one of them is retried", function()
    server, standin, dir = start_pair()
    queue_faults(standin, { { kind = "500", path = "/api/events" } })    -- the first request fails once
    post_fixture(server, "return.created.json")
    -- Its reminders fire before the close is mapped (which would cancel them): 1 + 2 + 3 requests.
    assert.truthy(h.wait_for(function() return outbox(dir, "1 = 1") == 3 end), server:log())
    post_fixture(server, "return.updated.closed.json")
    assert.truthy(h.wait_for(function() return outbox(dir, "state = 1") == 6 end, 20), server:log())
    local order = {}
    for _, e in ipairs(accepted(standin)) do order[#order + 1] = e.metric end
    local ids = h.sql_rows(dir, "SELECT json_extract(body, '$.data.attributes.metric.data.attributes.name') "
                                .. "FROM outbox ORDER BY id")
    assert.same(ids, order)
  end)
end)
