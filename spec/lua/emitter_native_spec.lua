-- out:track and out:schedule build their action in C for the common call (core/script/emitter_native.c)
-- and leave every other call to emitter.lua's own code. An options table with a metatable always takes
-- emitter.lua's code (its pairs and fields are the script's), so the same call made with such a copy of
-- the options is the reference: every document, body and error message must be the same byte for byte.
local h = require "helpers"

-- Options tables (as Lua source) through both paths: accepted ones, and each thing track refuses.
local OPTIONS = {
  "nil", "{}", "{ value = 118.8 }", "{ value = 14080 }", "{ value = 10, currency = 'EUR' }",
  "{ value = 10, currency = false, value_currency = 'GBP' }", "{ value = 10, currency = false }",
  "{ value = 10, value_currency = false }", "{ value = '10' }", "{ currency = 'EUR' }",
  "{ time = '2026-10-02T14:21:07Z' }", "{ time = '2026-10-02T14:21:07.123-05:30' }",
  "{ time = '2026-10-02 14:21:07+0530' }", "{ time = '2026-10-02' }", "{ time = '2026-10-02T14:21:07.5' }",
  "{ time = '2026-10-02T14:21:075' }", "{ time = '2026-10-02T14:21:07+05:3' }", "{ time = '2026-10-02T14:21' }",
  "{ time = '2026-10-02T14:21:07z' }", "{ time = '2026-13-02T00:00:00Z' }", "{ time = '2026-02-31T24:00:00Z' }",
  "{ time = '1989-12-31T23:59:59+00:00' }", "{ time = '1990-01-01T00:00:00+00:00' }",
  "{ time = '2099-01-01T00:00:00Z' }", "{ time = 12 }", "{ time = false }", "{ unique_id = '' }",
  "{ unique_id = 7 }", "{ unique_id = 'u1', backfill = false }", "{ backfill = true, value = 1.5 }",
  "{ bogus = 1 }", "{ [1] = 'value' }", "'options'",
}

local SCRIPT = [[
local OPTIONS = { %s }
local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, {})
end
return {
  ["*"] = function(ev, out)
    local opts = OPTIONS[ev.variant]
    if ev.reference then opts = copy(opts) end
    local props = { n = ev.variant }
    if ev.topic == "label" then out:identify({ email = "label@example.com" }) end   -- labels carry none
    if ev.mode == "schedule" then
      out:schedule("k" .. ev.variant, 86400, "Scheduled", props, opts)
    elseif ev.mode == "no properties" then
      out:track("Tracked", nil, opts)
    else
      out:track("Tracked", props, opts)
    end
  end,
}
]]

local function options_source()
  local parts = {}
  for i, o in ipairs(OPTIONS) do parts[i] = string.format("[%d] = %s", i, o) end
  return table.concat(parts, ", ")
end

describe("the emitter's native track action", function()
  teardown(h.cleanup)

  it("gives what emitter.lua gives, for every option, mode and event kind", function()
    local scripts = h.scripts_dir({ ["10-variants.lua"] = string.format(SCRIPT, options_source()) })
    local events = {}
    for _, fixture in ipairs({ "return.created.json", "return.updated.closed.json", "label.created.json" }) do
      for _, mode in ipairs({ "track", "schedule", "no properties" }) do
        for i = 1, #OPTIONS do
          for _, reference in ipairs({ false, true }) do
            local ev = h.fixture(fixture)
            ev.variant, ev.mode, ev.reference = i, mode, reference
            events[#events + 1] = ev
          end
        end
      end
    end
    local docs, run = h.map(h.ndjson_file(events), { scripts = scripts })
    assert.equal(#events, #docs, run.stderr)
    local mapped, failed = 0, 0
    for i = 1, #docs, 2 do
      local fast, reference = docs[i], docs[i + 1]
      local what = string.format("%s, %s, options %s", events[i].trigger, events[i].mode, OPTIONS[events[i].variant])
      assert.equal(reference.status, fast.status, what)
      assert.equal(reference.reason, fast.reason, what)
      assert.same(reference.requests, fast.requests, what)
      assert.same(reference.scheduled, fast.scheduled, what)
      if fast.status == "mapped" then mapped = mapped + 1 else failed = failed + 1 end
    end
    -- both kinds of outcome were compared, not only one
    assert.is_true(mapped >= 3 * 3 * 15, "mapped: " .. mapped)
    assert.is_true(failed >= 3 * 3 * 10, "failed: " .. failed)
  end)
end)

-- The default unique_id's event part is read in C as well: the same string as loop.lua's readers and
-- tostring give, for ids and states of every type Loop's payloads may carry.
describe("the native default unique_id", function()
  teardown(h.cleanup)

  it("is tenant:return_id:trigger:state:metric, as klaviyo.lua writes it", function()
    local scripts = h.scripts_dir({ ["10-ids.lua"] = [[
local loop = require "returnflow.loop"
return {
  ["*"] = function(ev, out)
    local state = ev.state
    if loop.missing(state) then state = ev.label_status end
    if loop.missing(state) then state = "" end
    local want = string.format("%s:%s:%s:%s:%s", "acme", loop.return_id(ev) or "", ev.trigger or "",
                               tostring(state), "Tracked")
    out:identify({ email = "ids@example.com" })
    out:track("Tracked", { want = want })
  end,
}
]] })
    local variants = {
      { id = 8812745 }, { id = "8812745" }, { id = 1.5e15 }, { id = 12.5 }, { id = false }, { id = h.decode("null") },
      { topic = "label", id = 77 }, { topic = "giftcard", return_id = 99, id = 1 },
      { topic = "giftcard", return_id = h.decode("null"), id = "x" }, { topic = "giftcard" },
      { state = 3 }, { state = 2.5 }, { state = true }, { state = h.decode("null"), label_status = "in_transit" },
      { state = h.decode("null"), label_status = h.decode("null") }, { state = "" },
    }
    local events = {}
    for i, v in ipairs(variants) do
      local ev = h.fixture("return.created.json")
      for k, x in pairs(v) do ev[k] = x end
      if v.topic == nil and i > 6 then ev.topic = nil end
      events[i] = ev
    end
    local docs, run = h.map(h.ndjson_file(events), { scripts = scripts, args = { "--tenant", "acme" } })
    assert.equal(#events, #docs, run.stderr)
    for i, doc in ipairs(docs) do
      assert.equal("mapped", doc.status, doc.reason)
      local attributes = doc.requests[1].body.data.attributes
      assert.equal(attributes.properties.want, attributes.unique_id, "variant " .. i)
    end
  end)
end)
