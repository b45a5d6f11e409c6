-- returnflow.testing, the module merchants' busted specs call (core/lua/returnflow/testing.lua and
-- testing_assertions.lua), seen from a spec as a merchant would use it: loading a scripts folder (and
-- the file:line problems of one that does not load), mapping an event given as a table, JSON text or a
-- file path, fixture variants, every assertion positive and negated on real results, the diff a
-- failing assertion prints, preloading memory, and the sandbox caps.
--
-- The module maps through returnflow.native (build/lib/returnflow/native.so). That library is always
-- taken from the normal build/ folder, also when RETURNFLOW_BIN is the ASan build's binary: one rule
-- that holds whether or not a build's native.so is sanitizer-instrumented (the plain lua5.4 busted runs
-- in cannot load an instrumented one), and tools/test.sh builds build/ before build-asan/.
local h = require "helpers"

package.path = h.root .. "/core/lua/?.lua;" .. package.path
-- returnflow.native: the build under test's (helpers.lua puts its lib/ first on package.cpath)
local testing = require "returnflow.testing"
local json = testing.native.json

local RETURN_ID = "8812745"              -- the id of fixtures/loop/return.created.json

-- The message of a failing call (luassert raises a table with `message`), or nil when it passed.
local function failure(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return nil end
  if type(err) == "table" then return tostring(err.message) end
  return tostring(err)
end

-- Asserts that `fn(...)` fails and that its message holds every string of `parts`, literally.
local function fails_with(parts, fn, ...)
  local message = failure(fn, ...)
  assert(message, "expected a failure, but it passed")
  for _, part in ipairs(parts) do
    if not message:find(part, 1, true) then
      error(string.format("the failure message lacks %q:\n%s", part, message), 2)
    end
  end
  return message
end

-- A scripts folder holding one file, 10-test.lua, with `source`, loaded with `options`.
local function load_source(source, options)
  return testing.load(h.scripts_dir({ ["10-test.lua"] = source }), options)
end

describe("returnflow.testing", function()
  local defaults = testing.load(h.scripts, { tenant = "my-shop" })
  teardown(h.cleanup)

  describe("load", function()
    it("loads a scripts folder with as many files and handlers as `returnflow check` counts", function()
      local scripts = testing.load(h.scripts)

      local files, handlers = scripts:counts()
      local out, err, code = h.run({ "check", h.scripts })
      assert.equal(0, code, err)
      assert.equal(string.format("check: %s: %d files, %d handlers, no problems\n", h.scripts, files, handlers), out)
      assert.is_true(files > 0 and handlers > 0)
    end)

    it("raises with every file:line problem of a folder that does not load", function()
      local dir = h.scripts_dir({
        ["10-syntax.lua"] = 'return {\n  ["return.created"] = function(ret, out)\n    out:track("x"\n  end,\n}\n',
        ["20-trigger.lua"] = 'return {\n  ["return.exploded"] = function() end,\n}\n',
      })

      local message = failure(testing.load, dir)

      assert.is_not_nil(message, "the folder loaded")
      assert.matches("the scripts in " .. h.literal(dir) .. " do not load", message)
      assert.matches(h.literal(dir .. "/10-syntax.lua:4:") .. " '%)' expected", message)
      assert.matches(h.literal(dir .. "/20-trigger.lua:2: unknown trigger 'return.exploded'"), message)
    end)

    it("raises for a folder that does not exist", function()
      fails_with({ "/nonexistent/scripts", "cannot read the scripts folder" }, testing.load, "/nonexistent/scripts")
    end)

    it("passes the tenant and the segments property to the mapping", function()
      local scripts = load_source([[
return { ["return.created"] = function(ret, out) out:segment("vip"); out:track("T", {}) end }
]], { tenant = "acme", segments_property = "loop_tags" })

      local result = scripts:map(testing.fixture("return.created"))

      assert.equal("acme:" .. RETURN_ID .. ":return.created:open:T", result.events[1].unique_id)
      local patch = result.events[1].profile.meta.patch_properties
      assert.equal("vip", patch.append.loop_tags)
      assert.same({ "vip" }, result.segments_added)
    end)
  end)

  describe("map", function()
    it("maps an event table: status, tracked events with their fields, requests with exact bytes", function()
      local result = defaults:map(testing.fixture("return.created"))

      assert.equal("mapped", result.status)
      assert.is_nil(result.reason)
      local e = result.events[1]
      assert.equal("Loop Return Created", e.metric)
      assert.equal("#10482", e.properties.order)
      assert.equal(118.8, e.value)
      assert.equal("USD", e.value_currency)
      assert.equal("2026-10-02T14:21:07+00:00", e.time)
      assert.equal("my-shop:" .. RETURN_ID .. ":return.created:open:Loop Return Created", e.unique_id)
      assert.equal("maria.gonzalez@example.com", e.profile.email)
      local req = result.requests[1]
      assert.equal("POST", req.method)
      assert.equal("/api/events", req.path)
      assert.same(json.decode(req.raw), req.body)
      assert.truthy(result.doc:find(',"body":' .. req.raw .. "}", 1, true), "the doc does not carry the raw bytes")
      assert.same({ "Loop Return Created" }, result:metrics())
    end)

    it("maps JSON text and a file path to the same request bytes as the table", function()
      local text = testing.fixture_text("return.created")
      local path = h.tempfile(text, ".json")

      local from_table = defaults:map(testing.fixture("return.created"))
      local from_text = defaults:map(text)
      local from_file = defaults:map(path)

      assert.equal(#from_table.requests, #from_text.requests)
      assert.equal(#from_table.requests, #from_file.requests)
      for i, req in ipairs(from_table.requests) do
        assert.equal(req.raw, from_text.requests[i].raw)
        assert.equal(req.raw, from_file.requests[i].raw)
      end
      assert.matches('^{"input":"' .. h.literal(path), from_file.doc)
    end)

    it("labels the doc with the label given", function()
      local result = defaults:map(testing.fixture_text("restock.requested"), "restock.json#7")

      assert.matches('^{"input":"restock%.json#7","trigger":"restock%.requested","status":"dropped"', result.doc)
    end)

    it("fails an event that is not JSON, with the parser's position", function()
      local result = defaults:map("{not json")

      assert.equal("failed", result.status)
      assert.equal("invalid JSON: byte 1: expected a string key, found 'n'", result.reason)
      assert.same({}, result.requests)
    end)

    it("raises for a file that cannot be read and for a value that is no event", function()
      fails_with({ "/nonexistent/event.json", "No such file" }, defaults.map, defaults, "/nonexistent/event.json")
      fails_with({ "map takes an event table, JSON text or a file path" }, defaults.map, defaults, 42)
    end)

    it("runs the scripts in the host's sandbox: no io", function()
      local scripts = load_source('return { ["return.created"] = function() io.open("/etc/passwd") end }\n')

      local result = scripts:map(testing.fixture("return.created"))

      assert.equal("failed", result.status)
      assert.matches("10%-test%.lua:1: .*global 'io'", result.reason)
    end)
  end)

  describe("fixtures", function()
    it("are the repository's Loop fixtures, byte for byte", function()
      local names = {}
      for i, file in ipairs(h.fixture_names()) do names[i] = file:gsub("%.json$", "") end
      table.sort(names)

      assert.same(names, testing.fixtures())
      for _, name in ipairs(names) do
        assert.equal(h.read(h.fixture_path(name .. ".json")), testing.fixture_text(name), name)
      end
      assert.equal(testing.fixture_text("return.created"), testing.fixture_text("return.created.json"))
    end)

    it("decode to a fresh table each time", function()
      local first = testing.fixture("return.created")
      first.order_name = "changed"

      assert.equal("#10482", testing.fixture("return.created").order_name)
    end)

    it("merge nested overrides key by key", function()
      local event = testing.fixture("return.created", { customer_detail = { first_name = "Ana" } })

      assert.equal("Ana", event.customer_detail.first_name)
      assert.equal("maria.gonzalez@example.com", event.customer_detail.email)
      local result = defaults:map(event)
      assert.profile_updated(result, { first_name = "Ana", email = "maria.gonzalez@example.com", last_name = "González" })
    end)

    it("replace lists whole", function()
      local original = testing.fixture("return.created").line_items
      local one = original[3]

      local event = testing.fixture("return.created", { line_items = { one } })

      assert.is_true(#original > 1)
      assert.equal(1, #event.line_items)
      assert.equal(one.sku, event.line_items[1].sku)
      assert.tracked(defaults:map(event), "Loop Return Created", { returned_product_skus = { one.sku } })
    end)

    it("set null with testing.null", function()
      local event = testing.fixture("return.created", { order_name = testing.null })

      assert.equal(testing.null, event.order_name)
      assert.tracked(defaults:map(event), "Loop Return Created", { order = testing.null })
    end)

    it("remove a key with testing.absent", function()
      local event = testing.fixture("return.created", { customer_detail = testing.absent, customer = testing.absent })

      assert.is_nil(event.customer_detail)
      assert.is_nil(event.customer)
      assert.failed(defaults:map(event), "the profile has no identifier")
    end)

    it("raise for a fixture that does not exist, naming it", function()
      fails_with({ "no fixture 'nope'" }, testing.fixture, "nope")
    end)
  end)

  describe("assertions on the default scripts' results", function()
    local created = defaults:map(testing.fixture("return.created"))
    local closed = defaults:map(testing.fixture("return.closed"))
    local restock = defaults:map(testing.fixture("restock.requested"))
    local label = testing.load(h.scripts):map(testing.fixture("label.created"))

    it("tracked: a metric, with a subset of its properties", function()
      assert.tracked(created, "Loop Return Created")
      assert.tracked(created, "Loop Return Created", { order = "#10482", return_status = "open" })
      assert.is_not.tracked(created, "Loop Refund Issued")
      assert.is_not.tracked(created, "Loop Return Created", { order = "#1" })
      assert.is_not.tracked(created, "Loop Return Expiring")          -- scheduled, not tracked now
    end)

    it("scheduled: by key or by metric, with a subset of its properties (as tracked takes them)", function()
      assert.scheduled(created, "expiring:" .. RETURN_ID)
      assert.scheduled(created, "Loop Return Expired")
      assert.scheduled(created, "expiring:" .. RETURN_ID, { order = "#10482" })
      assert.scheduled(created, "Loop Return Expiring", { order = "#10482" })
      assert.equal("2026-10-23T14:21:07+00:00", created.scheduled[1].due)
      assert.is_not.scheduled(created, "expiring:1")
      assert.is_not.scheduled(created, "expiring:" .. RETURN_ID, { order = "#1" })
      assert.is_not.scheduled(closed, "Loop Return Expiring")
    end)

    it("cancelled: by key", function()
      assert.cancelled(closed, "expiring:" .. RETURN_ID)
      assert.cancelled(closed, "expired:" .. RETURN_ID)
      assert.is_not.cancelled(closed, "expiring:1")
      assert.is_not.cancelled(created, "expiring:" .. RETURN_ID)
    end)

    it("profile_updated: a subset of a request's profile attributes", function()
      assert.profile_updated(created, { email = "maria.gonzalez@example.com", first_name = "María",
                                        location = { city = "Seattle" } })
      assert.is_not.profile_updated(created, { first_name = "Ana" })
      assert.is_not.profile_updated(restock, { email = "maria.gonzalez@example.com" })
    end)

    it("remembered: a key, or a key with its exact value", function()
      local key = "return:" .. RETURN_ID

      assert.remembered(created, key)
      assert.remembered(created, key, created.memory[key])
      assert.equal("#10482", created.memory[key].order)
      assert.is_not.remembered(created, "return:1")
      assert.is_not.remembered(created, key, { order = "#10482" })     -- a part is not the value
      assert.is_not.remembered(restock, key)
    end)

    it("nothing_sent: no request at all", function()
      assert.nothing_sent(restock)
      assert.nothing_sent(label)
      assert.is_not.nothing_sent(created)
      assert.is_not.nothing_sent(closed)
    end)

    it("mapped, dropped, deferred: the status, and a reason matched literally or as a pattern", function()
      assert.mapped(created)
      assert.is_not.mapped(restock)
      assert.dropped(restock)
      assert.dropped(restock, "restock events have no customer")
      assert.dropped(restock, "^restock events .* %(by design%)$")
      assert.is_not.dropped(restock, "something else")
      assert.is_not.dropped(created)
      assert.deferred(label, "no customer known for return " .. RETURN_ID)
      assert.is_not.deferred(created)
    end)

    it("refuse a first argument that is not a result, positive or negated", function()
      fails_with({ "the first argument must be a result of scripts:map(...)" }, assert.tracked, {}, "X")
      fails_with({ "the first argument must be a result of scripts:map(...)" }, assert.is_not.tracked, {}, "X")
    end)
  end)

  describe("assertions on small scripts of one action each", function()
    local function result_of(body, event)
      local scripts = load_source('return { ["return.created"] = function(ret, out)\n' .. body .. "\nend }\n")
      return scripts:map(event or testing.fixture("return.created"))
    end

    it("segmented and unsegmented: tags added and removed, in a profile import", function()
      local result = result_of('out:segment("returner"); out:segment("vip"); out:unsegment("first-timer")')

      assert.segmented(result, "returner")
      assert.segmented(result, "vip")
      assert.is_not.segmented(result, "first-timer")
      assert.unsegmented(result, "first-timer")
      assert.is_not.unsegmented(result, "vip")
      assert.equal(1, #result.profiles)
      assert.equal("/api/profile-import", result.profiles[1].request.path)
      assert.same({}, result.events)
    end)

    it("profile_updated: attributes and custom properties of a profile import", function()
      local result = result_of('out:profile { first_name = "Ana", properties = { tier = "gold" } }')

      assert.profile_updated(result, { first_name = "Ana", properties = { tier = "gold" } })
      assert.is_not.profile_updated(result, { properties = { tier = "silver" } })
      assert.is_not.tracked(result, "Loop Return Created")
    end)

    it("remembered: a value for later events", function()
      local result = result_of('out:remember("seen:" .. ret.id, { order = ret.order_name, n = 2 })')

      assert.mapped(result)
      assert.remembered(result, "seen:" .. RETURN_ID, { order = "#10482", n = 2 })
      assert.is_not.remembered(result, "seen:" .. RETURN_ID, { order = "#10482", n = 3 })
      assert.nothing_sent(result)
    end)

    it("scheduled and cancelled: a reminder and the cancellation of an old one", function()
      local result = result_of('out:schedule("remind:" .. ret.id, 3600, "Remind", { order = ret.order_name })\n'
                               .. 'out:cancel("old:" .. ret.id)')

      assert.scheduled(result, "remind:" .. RETURN_ID, { order = "#10482" })
      assert.equal("2026-10-02T15:21:07+00:00", result.scheduled[1].due)
      assert.scheduled(result, "Remind")
      assert.is_not.scheduled(result, "old:" .. RETURN_ID)
      assert.cancelled(result, "old:" .. RETURN_ID)
      assert.is_not.cancelled(result, "remind:" .. RETURN_ID)
      assert.is_not.nothing_sent(result)                               -- a schedule is sent, later
      assert.same({}, result.events)
    end)

    it("dropped: out:drop with its reason", function()
      local result = result_of('out:track("Never", {}); out:drop("not for us")')

      assert.dropped(result, "not for us")
      assert.is_not.dropped(result, "for them")
      assert.is_not.tracked(result, "Never")
      assert.nothing_sent(result)
    end)

    it("failed: out:fail, and a script error at its line", function()
      local by_fail = result_of('out:fail("no order " .. ret.order_name)')
      local by_error = result_of('local x = nil; return x.y')

      assert.failed(by_fail, "no order #10482")
      assert.is_not.failed(by_fail, "no order #1$")
      assert.failed(by_error, "10-test.lua:2: attempt to index a nil value")
      assert.is_not.mapped(by_error)
    end)

    it("deferred: out:defer with its reason", function()
      local result = result_of('out:defer("waiting for " .. ret.id)')

      assert.deferred(result, "waiting for " .. RETURN_ID)
      assert.is_not.deferred(result, "waiting for 1$")
      assert.is_not.failed(result)
    end)

    it("checks as plain functions: testing.check.<name>(result, ...) -> ok, explanation", function()
      local result = result_of('out:track("T", { n = 1 })')

      local ok, why = testing.check.tracked(result, "T", { n = 1 })
      assert.is_true(ok)
      assert.equal('"T" was tracked with those properties', why)
      ok, why = testing.check.tracked(result, "T", { n = 2 })
      assert.is_false(ok)
      assert.matches('properties%.n: expected 2, got 1', why)
    end)
  end)

  describe("a failing assertion's message", function()
    local created = defaults:map(testing.fixture("return.created"))

    it("names the metric, the field, the expected and the got value", function()
      fails_with({ 'no tracked "Loop Return Created" has the expected properties',
                   'properties.order: expected "#1", got "#10482"' },
                 assert.tracked, created, "Loop Return Created", { order = "#1" })
    end)

    it("shows every differing field, nested ones by their path", function()
      fails_with({ 'location.city: expected "Portland", got "Seattle"', 'first_name: expected "Ana", got "María"' },
                 assert.profile_updated, created, { first_name = "Ana", location = { city = "Portland" } })
    end)

    it("says a field is missing, and what was tracked when the metric was not", function()
      fails_with({ "properties.coupon: expected \"X\", got missing" },
                 assert.tracked, created, "Loop Return Created", { coupon = "X" })
      fails_with({ '"Loop Refund Issued" was not tracked; tracked: "Loop Return Created" (event mapped)' },
                 assert.tracked, created, "Loop Refund Issued")
    end)

    it("shows lists and null as JSON", function()
      fails_with({ 'properties.return_reasons: expected ["Too big"], got ["Too small","Too small","Didn\'t like the color"]' },
                 assert.tracked, created, "Loop Return Created", { return_reasons = { "Too big" } })
      fails_with({ 'properties.label: expected "L", got null' },
                 assert.tracked, created, "Loop Return Created", { label = "L" })
    end)

    it("names what is scheduled, remembered and the status when those differ", function()
      fails_with({ 'nothing scheduled under "nope"; scheduled: expiring:8812745 (Loop Return Expiring), '
                   .. "expired:8812745 (Loop Return Expired)" }, assert.scheduled, created, "nope")
      fails_with({ 'expiring:8812745 #1: properties.order: expected "#1", got "#10482"' },
                 assert.scheduled, created, "expiring:" .. RETURN_ID, { order = "#1" })
      fails_with({ '"return:1" was not remembered; remembered: ["return:8812745"]' },
                 assert.remembered, created, "return:1")
      fails_with({ 'expected the event failed with a reason matching "boom"; it was mapped' },
                 assert.failed, created, "boom")
      fails_with({ "3 request(s) would be sent: POST /api/events, POST /api/events (scheduled as expiring:8812745), "
                   .. 'POST /api/events (scheduled as expired:8812745); tracked: "Loop Return Created"' },
                 assert.nothing_sent, created)
    end)

    it("says what held when a negated assertion fails", function()
      fails_with({ '"Loop Return Created" was tracked' }, assert.is_not.tracked, created, "Loop Return Created")
      fails_with({ "the event was mapped" }, assert.is_not.mapped, created)
    end)
  end)

  describe("memory: remember and forget", function()
    local RETURN_KEY = "return:" .. RETURN_ID

    it("a label event defers while its return was not seen", function()
      local scripts = testing.load(h.scripts)

      local result = scripts:map(testing.fixture("label.created"))

      assert.deferred(result, "no customer known for return " .. RETURN_ID)
      assert.nothing_sent(result)
    end)

    it("remember() preloads what return.created remembers, so label.created maps", function()
      local remembered = testing.load(h.scripts):map(testing.fixture("return.created")).memory[RETURN_KEY]
      local scripts = testing.load(h.scripts)

      scripts:remember(RETURN_KEY, remembered)
      local result = scripts:map(testing.fixture("label.created"))

      assert.mapped(result)
      assert.tracked(result, "Loop Label Created", { return_id = RETURN_ID })
      assert.profile_updated(result, { email = "maria.gonzalez@example.com" })
    end)

    it("remember() takes any JSON value, which the script recalls as it was given", function()
      local scripts = load_source([[
return { ["return.created"] = function(ret, out) out:track("Recalled", { v = out:recall("k") }) end }
]])

      scripts:remember("k", { list = { 1, 2 }, name = "x" })
      local result = scripts:map(testing.fixture("return.created"))

      assert.tracked(result, "Recalled", { v = { list = { 1, 2 }, name = "x" } })
    end)

    it("what an event remembers stays for the next event of the same scripts", function()
      local scripts = testing.load(h.scripts)

      scripts:map(testing.fixture("return.created"))
      local result = scripts:map(testing.fixture("label.created"))

      assert.tracked(result, "Loop Label Created")
    end)

    it("forget() drops everything remembered", function()
      local scripts = testing.load(h.scripts)
      scripts:map(testing.fixture("return.created"))
      scripts:remember("return:other", { email = "x@example.com" })

      scripts:forget()
      local result = scripts:map(testing.fixture("label.created"))

      assert.deferred(result)
    end)
  end)

  describe("the sandbox caps", function()
    local SOURCE = [[
return {
  ["return.created"] = function(ret, out)
    if ret.order_name == "LOOP" then while true do end end
    if ret.order_name == "HOG" then
      local t = {}
      for i = 1, 1e6 do t[i] = string.rep(tostring(i), 1 << 18) end
    end
    out:track("Fine", { order = ret.order_name })
  end,
}
]]
    local dir = h.scripts_dir({ ["10-caps.lua"] = SOURCE })

    it("fail a script that never ends with the run-time cap, at its line, and the next event maps", function()
      local scripts = testing.load(dir, { time_cap_ms = 50 })

      local result = scripts:map(testing.fixture("return.created", { order_name = "LOOP" }))

      assert.failed(result, dir .. "/10-caps.lua:3: cap: 50 ms of run time exceeded")
      assert.nothing_sent(result)
      assert.tracked(scripts:map(testing.fixture("return.created")), "Fine", { order = "#10482" })
    end)

    it("fail a script that eats memory with the memory cap, at its line, and the next event maps", function()
      local scripts = testing.load(dir, { memory_cap_mib = 8 })

      local result = scripts:map(testing.fixture("return.created", { order_name = "HOG" }))

      assert.failed(result, dir .. "/10-caps.lua:6: cap: memory 8 MiB exceeded")
      assert.nothing_sent(result)
      assert.tracked(scripts:map(testing.fixture("return.created")), "Fine", { order = "#10482" })
    end)

    -- 250 ms of CPU against a 20 ms cap: the watchdog counts a call from the first tick that sees it, and on
    -- a loaded machine that tick came late enough for a 100 ms loop to finish unseen (once, in a full suite).
    it("are options of load: a larger time cap lets a slow but finite script through", function()
      local slow = load_source([[
return { ["return.created"] = function(ret, out)
  local t = os.clock(); while os.clock() - t < 0.25 do end
  out:track("Slow", {})
end }
]], { time_cap_ms = 2000 })
      local tight = testing.load(slow.dir, { time_cap_ms = 20 })

      assert.tracked(slow:map(testing.fixture("return.created")), "Slow")
      assert.failed(tight:map(testing.fixture("return.created")), "cap: 20 ms of run time exceeded")
    end)
  end)
end)
