-- The Klaviyo stand-in (spec/standin/klaviyo_standin.py), a real process driven with curl: it must answer
-- like Klaviyo (statuses, error shape and pointer, dedup, rate limits), answer each queued fault as
-- queued, never log a key, and accept every request `returnflow map` makes of the fixtures.
local h = require "helpers"

local KEY = "pk_test_standin_SECRET_4b1d9e"
local OTHER_KEY = "pk_test_other_SECRET_77aa02"
local REVISION = "2026-07-15"

local function api_headers(key)
  return { ["revision"] = REVISION, ["Content-Type"] = "application/vnd.api+json",
           ["Accept"] = "application/vnd.api+json", ["Authorization"] = "Klaviyo-API-Key " .. (key or KEY) }
end

local function client_headers()
  return { ["revision"] = REVISION, ["Content-Type"] = "application/vnd.api+json" }
end

local function metric(name) return { data = { type = "metric", attributes = { name = name } } } end

-- An EventCreateQueryV2 body; opts: metric, email, unique_id, properties.
local function event(opts)
  opts = opts or {}
  return { data = { type = "event", attributes = {
    metric = metric(opts.metric or "Loop Return Created"),
    profile = { data = { type = "profile", attributes = { email = opts.email or "maria@example.com" } } },
    properties = h.object(opts.properties or { return_id = "8812745" }),
    unique_id = opts.unique_id or "default:8812745:return.created:open:Loop Return Created",
  } } }
end

-- An EventsBulkCreateJob body: one profile (email) with events of one metric, one per unique_id.
local function bulk_job(email, unique_ids)
  local events = {}
  for i, uid in ipairs(unique_ids) do
    events[i] = { type = "event", attributes = { metric = metric("Loop Label Updated"), unique_id = uid,
                                                 properties = h.object({ position = i }) } }
  end
  return { data = { type = "event-bulk-create-job", attributes = { ["events-bulk-create"] = { data = {
    { type = "event-bulk-create", attributes = {
      profile = { data = { type = "profile", attributes = { email = email } } },
      events = { data = events } } } } } } } }
end

local function post(server, path, body, headers)
  return h.curl(server.url .. path, { method = "POST", body = body, headers = headers or api_headers() })
end

local function control(server, what, body)
  local url = server.url .. "/_standin/" .. what
  if body == nil then return h.curl(url).json end
  return h.curl(url, { method = "POST", body = body ~= true and body or nil }).json
end

local function accepted(server) return control(server, "events").events end

local function first_error(r)
  assert.is_table(r.json, "no JSON body: " .. r.body)
  return r.json.errors[1]
end

describe("Klaviyo stand-in", function()
  describe("answering like Klaviyo", function()
    local server, record
    setup(function()
      record = h.tempdir() .. "/accepted.ndjson"
      server = h.start_standin({ "--key", KEY, "--record", record })
    end)
    teardown(function() server.stop(); h.cleanup() end)
    before_each(function() control(server, "reset", true) end)

    it("answers a valid event 202 with rate-limit headers and records it", function()
      local r = post(server, "/api/events", event())
      assert.equal(202, r.status)
      assert.equal("", r.body)
      assert.matches("^350, 350;w=1, 3500;w=60$", r.headers["ratelimit-limit"])
      assert.equal("349", r.headers["ratelimit-remaining"])
      assert.is_truthy(tonumber(r.headers["ratelimit-reset"]))
      local events = accepted(server)
      assert.equal(1, #events)
      assert.equal("Loop Return Created", events[1].metric)
      assert.equal("maria@example.com", events[1].profile.email)
      assert.equal("default:8812745:return.created:open:Loop Return Created", events[1].unique_id)
      assert.same({ return_id = "8812745" }, events[1].properties)
      assert.is_false(events[1].backfill)
      assert.matches('"metric": "Loop Return Created"', h.read(record), 1, true)
    end)

    it("answers an invalid body 400 in Klaviyo's error shape, naming the field", function()
      local body = event()
      body.data.attributes.metric.data.type = "metrik"
      local r = post(server, "/api/events", body)
      assert.equal(400, r.status)
      local e = first_error(r)
      assert.equal("invalid", e.code)
      assert.equal(400, e.status)
      assert.is_string(e.id)
      assert.is_string(e.title)
      assert.equal("/data/attributes/metric/data/type", e.source.pointer)
      assert.matches("metrik", e.detail)
      assert.same({}, accepted(server))
    end)

    it("refuses a field the spec does not declare (strict, as Klaviyo)", function()
      local body = event()
      body.data.attributes.value_curency = "USD"
      local e = first_error(post(server, "/api/events", body))
      assert.equal("/data/attributes", e.source.pointer)
      assert.matches("value_curency", e.detail)
    end)

    it("points at a missing required field itself", function()
      local body = event()
      body.data.attributes.metric = nil
      assert.equal("/data/attributes/metric", first_error(post(server, "/api/events", body)).source.pointer)
    end)

    it("refuses an event past Klaviyo's property limits, pointing at the value, and accepts one at them", function()
      local function deep(levels)           -- levels nested objects below properties.root
        local v = "leaf"
        for i = levels, 1, -1 do v = h.object({ ["l" .. i] = v }) end
        return v
      end
      local many, items, long_ascii, long_wide = {}, {}, string.rep("a", 100 * 1024), string.rep("\u{e9}", 50 * 1024)
      for i = 1, 401 do many["p" .. i] = i end
      for i = 1, 4001 do items[i] = i end
      local cases = {
        { { root = deep(9) }, nil },                               -- 10 levels with properties: at the limit
        { { root = deep(10) }, "/data/attributes/properties/root/l1/l2/l3/l4/l5/l6/l7/l8/l9", "levels deep" },
        { { text = long_ascii }, nil },                            -- 100 KiB exactly
        { { text = long_ascii .. "b" }, "/data/attributes/properties/text", "string of 102401 bytes" },
        { { list = h.array({ long_wide .. "\u{e9}" }) }, "/data/attributes/properties/list/0", "string of 102402 bytes" },
        { { list = h.array(items) }, "/data/attributes/properties/list", "array of 4001 items" },
        { many, "/data/attributes/properties", "401 properties" },
      }
      for i, case in ipairs(cases) do
        local r = post(server, "/api/events", event({ properties = case[1], unique_id = "limits-" .. i }))
        if not case[2] then
          assert.equal(202, r.status, i .. ": " .. r.body)
        else
          assert.equal(400, r.status, i .. ": " .. r.body)
          local e = first_error(r)
          assert.equal(case[2], e.source.pointer, i .. ": " .. r.body)
          assert.truthy(e.detail:find(case[3], 1, true), i .. ": " .. e.detail)
        end
      end
    end)

    it("records a repeated unique_id once, also across /api and /client", function()
      assert.equal(202, post(server, "/api/events", event()).status)
      assert.equal(202, post(server, "/api/events", event()).status)
      assert.equal(202, post(server, "/client/events?company_id=AbC123", event(), client_headers()).status)
      assert.equal(202, post(server, "/api/events", event({ metric = "Loop Refund Issued" })).status)
      local events = accepted(server)
      assert.equal(2, #events)
      assert.equal("Loop Return Created", events[1].metric)
      assert.equal("Loop Refund Issued", events[2].metric)
      assert.equal(2, control(server, "stats").events_deduplicated)
    end)

    it("fails a whole bulk request that repeats a unique_id for one profile and metric, naming the item", function()
      local r = post(server, "/api/event-bulk-create-jobs", bulk_job("kenji@example.jp", { "a", "b", "a" }))
      assert.equal(400, r.status)
      assert.equal("/data/attributes/events-bulk-create/data/0/attributes/events/data/2/attributes/unique_id",
                   first_error(r).source.pointer)
      assert.same({}, accepted(server))
      assert.equal(202, post(server, "/api/event-bulk-create-jobs", bulk_job("kenji@example.jp", { "a", "b" })).status)
      assert.equal(2, #accepted(server))
    end)

    it("names the failing item of a bulk request in the pointer", function()
      local body = bulk_job("kenji@example.jp", { "a", "b" })
      body.data.attributes["events-bulk-create"].data[1].attributes.events.data[2].attributes.metric = nil
      assert.equal("/data/attributes/events-bulk-create/data/0/attributes/events/data/1/attributes/metric",
                   first_error(post(server, "/api/event-bulk-create-jobs", body)).source.pointer)
    end)

    it("refuses /client/ without company_id, and /api/ without a key or with an unknown one", function()
      local r = post(server, "/client/events", event(), client_headers())
      assert.equal(400, r.status)
      assert.equal("company_id", first_error(r).source.parameter)
      r = post(server, "/api/events", event(), client_headers())
      assert.equal(401, r.status)
      assert.equal("not_authenticated", first_error(r).code)
      r = post(server, "/api/events", event(), api_headers(OTHER_KEY))
      assert.equal(401, r.status)
      assert.equal("authentication_failed", first_error(r).code)
      local no_revision = api_headers()
      no_revision.revision = nil
      assert.equal(400, post(server, "/api/events", event(), no_revision).status)
      assert.same({}, accepted(server))
    end)

    it("answers profile-import 201 then 200 with the profile, and lists metrics it has seen", function()
      local profile = { data = { type = "profile", attributes = { email = "ana@example.com", first_name = "Ana" } } }
      local r = post(server, "/api/profile-import", profile)
      assert.equal(201, r.status)
      assert.equal("ana@example.com", r.json.data.attributes.email)
      assert.equal(200, post(server, "/api/profile-import", profile).status)
      post(server, "/api/events", event())
      local m = h.curl(server.url .. "/api/metrics", { headers = api_headers() })
      assert.equal(200, m.status)
      assert.equal("Loop Return Created", m.json.data[1].attributes.name)
    end)

    it("keeps a connection alive across requests", function()
      local list = h.curl_burst(3, server.url .. "/api/events", { body = event(), headers = api_headers() })
      assert.same({ 202, 202, 202 }, { list[1].status, list[2].status, list[3].status })
      assert.same({ 1, 0, 0 }, { list[1].connects, list[2].connects, list[3].connects })
    end)

    it("never writes a key into its log or its records, and stops cleanly on SIGTERM", function()
      post(server, "/api/events", event())
      post(server, "/api/events", event(), api_headers(OTHER_KEY))
      local seen = control(server, "requests").requests
      assert.equal("Klaviyo-API-Key pk_***", seen[1].headers.Authorization)
      server.stop()
      local log = h.read(server.log)
      assert.is_nil(log:find("SECRET", 1, true))
      assert.matches("pk_***", log, 1, true)
      assert.matches('"event": "stopped"', log, 1, true)
    end)
  end)

  describe("rate limits", function()
    local server
    -- Scaled by 0.02: events allow 7 a second and 70 a minute per account.
    setup(function() server = h.start_standin({ "--limit-scale", "0.02", "--key", KEY, "--key", OTHER_KEY }) end)
    teardown(function() server.stop(); h.cleanup() end)

    it("answers 429 with Retry-After once an account's burst is spent, then again after it", function()
      local list = h.curl_burst(10, server.url .. "/api/events", { body = event(), headers = api_headers() })
      local statuses = {}
      for i, r in ipairs(list) do statuses[i] = r.status end
      assert.same({ 202, 202, 202, 202, 202, 202, 202, 429, 429, 429 }, statuses)
      assert.equal("7, 7;w=1, 70;w=60", list[1].headers["ratelimit-limit"])
      assert.equal("6", list[1].headers["ratelimit-remaining"])
      assert.equal("0", list[7].headers["ratelimit-remaining"])
      assert.equal("1", list[8].headers["retry-after"])
      local other = post(server, "/api/events", event(), api_headers(OTHER_KEY))
      assert.equal(202, other.status)
      h.sleep(tonumber(list[8].headers["retry-after"]))
      assert.equal(202, post(server, "/api/events", event()).status)
    end)

    it("keeps each endpoint's own budget: flows allow one a second, segments have their own", function()
      local flow = { data = { type = "flow", attributes = { name = "Return confirmation",
                                                            definition = { triggers = h.array(), actions = h.array() } } } }
      local first = post(server, "/api/flows", flow)
      assert.is_true(first.status ~= 429)
      local second = post(server, "/api/flows", flow)
      assert.equal(429, second.status)
      assert.equal("throttled", first_error(second).code)
      assert.is_truthy(tonumber(second.headers["retry-after"]))
      local segment = { data = { type = "segment", attributes = { name = "Returners", definition = h.object() } } }
      assert.is_true(post(server, "/api/segments", segment).status ~= 429)
    end)
  end)

  describe("faults", function()
    local server
    setup(function() server = h.start_standin({ "--key", KEY }) end)
    teardown(function() server.stop(); h.cleanup() end)
    before_each(function() control(server, "reset", true) end)

    local CASES = {
      { fault = { kind = "429", retry_after = 7 }, status = 429, check = function(r)
        assert.equal("7", r.headers["retry-after"])
        assert.equal("throttled", first_error(r).code)
      end },
      { fault = { kind = "429-no-retry-after", seconds = 3 }, status = 429, check = function(r)
        assert.is_nil(r.headers["retry-after"])
        assert.matches("Expected available in 3 seconds", first_error(r).detail, 1, true)
      end },
      { fault = { kind = "500" }, status = 500 },
      { fault = { kind = "502" }, status = 502 },
      { fault = { kind = "503" }, status = 503 },
      { fault = { kind = "504" }, status = 504 },
      { fault = { kind = "403-html" }, status = 403, check = function(r)
        assert.matches("^text/html", r.headers["content-type"])
        assert.matches("Just a moment", r.body, 1, true)
      end },
      { fault = { kind = "401" }, status = 401, check = function(r)
        assert.equal("not_authenticated", first_error(r).code)
      end },
      { fault = { kind = "400", pointer = "/data/attributes/properties/return_id" }, status = 400, check = function(r)
        assert.equal("/data/attributes/properties/return_id", first_error(r).source.pointer)
      end },
      { fault = { kind = "slow", delay_ms = 400 }, status = 202, check = function(r)
        assert.is_true(r.seconds >= 0.4, "answered after " .. r.seconds .. " s")
        assert.equal(1, #accepted(server))    -- processed, only answered late
      end },
      { fault = { kind = "reset" }, status = 0, check = function(r)
        assert.is_true(r.exit == 56 or r.exit == 52, "curl exit " .. r.exit .. ": " .. r.stderr)
      end },
    }

    for _, case in ipairs(CASES) do
      it("answers a queued " .. case.fault.kind .. " as queued, once", function()
        assert.equal(1, #control(server, "faults", case.fault).faults)
        local r = post(server, "/api/events", event())
        assert.equal(case.status, r.status)
        if case.check then case.check(r) end
        local seen = control(server, "requests").requests
        assert.equal(case.fault.kind, seen[1].fault)
        assert.equal(202, post(server, "/api/events", event()).status)
      end)
    end

    it("matches a fault by path prefix, for its count of requests", function()
      control(server, "faults", { kind = "503", count = 2, path = "/api/events" })
      assert.equal(202, post(server, "/api/event-bulk-create-jobs", bulk_job("kenji@example.jp", { "a" })).status)
      assert.equal(503, post(server, "/api/events", event()).status)
      assert.equal(503, post(server, "/api/events", event()).status)
      assert.equal(202, post(server, "/api/events", event()).status)
      local stats = control(server, "stats")
      assert.same({ ["202"] = 1, ["503"] = 2 }, stats.by_endpoint["POST /api/events"])
      assert.equal(0, stats.faults_pending)
    end)

    it("refuses an unknown fault kind", function()
      local r = h.curl(server.url .. "/_standin/faults", { body = { kind = "418" } })
      assert.equal(400, r.status)
      assert.matches("unknown fault", r.json.error, 1, true)
    end)
  end)

  describe("returnflow's own requests", function()
    local server
    setup(function() server = h.start_standin({ "--no-limits", "--key", KEY }) end)
    teardown(function() server.stop(); h.cleanup() end)

    local function fixture_paths()
      local paths = {}
      for i, name in ipairs(h.fixture_names()) do paths[i] = h.fixture_path(name) end
      return paths
    end

    -- Every request (then every scheduled one) `returnflow map` prints, posted as it would be sent;
    -- returns the number posted and a list of what the stand-in refused, with its error.
    local function post_all(map_args, scripts)
      local docs, run = h.map(fixture_paths(), { args = map_args, scripts = scripts })
      assert.equal(0, run.code, run.stderr)
      local requests = {}
      for _, d in ipairs(docs) do
        for _, r in ipairs(d.requests) do requests[#requests + 1] = { input = d.input, req = r } end
        for _, s in ipairs(d.scheduled) do requests[#requests + 1] = { input = d.input, req = s.request } end
      end
      local refused = {}
      for _, item in ipairs(requests) do
        local req, headers = item.req, {}
        for name, value in pairs(req.headers) do
          headers[name] = name == "Authorization" and value:gsub("%*%*%*$", KEY) or value
        end
        local r = h.curl(server.url .. req.path, { method = req.method, body = req.body, headers = headers })
        if r.status < 200 or r.status > 299 or r.headers["ratelimit-limit"] then
          refused[#refused + 1] = string.format("%s: %s %s -> %d %s", item.input, req.method, req.path,
                                                r.status, r.body)
        end
      end
      return #requests, refused
    end

    it("accepts every request of every fixture (private key, /api/)", function()
      local n, refused = post_all({})
      assert.is_true(n > 10)
      assert.same({}, refused)
      assert.is_true(#accepted(server) > 10)
    end)

    it("accepts every request of every fixture (public key, /client/)", function()
      local n, refused = post_all({ "--key-kind", "public", "--site-id", "AbC123" })
      assert.is_true(n > 10)
      assert.same({}, refused)
    end)

    it("accepts every request of every fixture marked backfill", function()
      control(server, "reset", true)
      local n, refused = post_all({ "--backfill", "--tenant", "history" })
      assert.is_true(n > 10)
      assert.same({}, refused)
      for _, e in ipairs(accepted(server)) do assert.is_true(e.backfill) end
    end)

    it("accepts profile imports and subscriptions, with either key kind", function()
      local scripts = h.scripts_dir({ ["10-profile.lua"] = [[
return {
  ["return.created"] = function(ret, out)
    out:segment("returner")
    out:subscribe("XyZ123", { channels = { "email" } })
  end,
}]] })
      for _, args in ipairs({ {}, { "--key-kind", "public", "--site-id", "AbC123" } }) do
        local n, refused = post_all(args, scripts)
        assert.is_true(n >= 6)
        assert.same({}, refused)
      end
      local profiles = control(server, "profiles").profiles
      local tagged = 0
      for _, p in ipairs(profiles) do
        if p.properties.returnflow_segments then tagged = tagged + 1 end
      end
      assert.is_true(tagged > 0)
    end)
  end)
end)
