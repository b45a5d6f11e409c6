-- loop.properties, loop.profile and loop.email read in place from the event's tape
-- (core/script/loop_properties.c) against loop.lua's own code for them: for every fixture and
-- thousands of variants of its shape (fields absent, null, false, numbers, tables, escaped text,
-- odd titles, labels, items, customer details and addresses of every kind), the same result
-- (status, reason, every request body byte for byte). The read-only event takes the C reading;
-- the same event as plain tables (json.decode of its encoding) takes loop.lua's.
local h = require "helpers"

-- A scripts file tracking what `call` (loop.properties, loop.profile, loop.email) makes of the event
-- as handlers get it (read-only: the C reading), or of the same event as plain tables (loop.lua's).
local function source(call, plain)
  return ([[
local loop = require "returnflow.loop"
local json = require "returnflow.json"
return { ["*"] = function(ret, out)
  out:identify { email = "maria@example.com" }
  local ev = %s
  out:track("Answer", { answer = loop.%s(ev) }, { unique_id = "u", time = "2026-10-02T14:21:07+00:00" })
end }
]]):format(plain and "json.decode(json.encode(ret))" or "ret", call)
end

-- Values a field may hold in a variant: every JSON kind, and text the C side must read as Lua does.
local VALUES = {
  h.null, false, true, 0, 7, 12.5, -3.0, 1e3, "", "N/A", "return", "label", "x\u{e9}\t\"q\"",
  "Tee - Black / M", "a - b - c", " - ", "a - - b", h.object(), h.array(), h.object { url = "u" },
  h.array { 1, "x" }, h.array { h.object { url = "https://l/1", carrier = "UPS", tracking_url = "https://t/1" } },
}

local TOP_FIELDS = {
  "customer_detail", "address", "first_name", "last_name", "email", "customer",
  "labels", "line_items", "exchanges", "trigger", "topic", "id", "return_id", "state", "order_name",
  "provider_order_id", "status_page_url", "destination", "return_destination", "labels_enabled",
  "label_status", "keep_item", "carrier", "tracking_number", "tracking_url", "created_at",
}

local ITEM_FIELDS = {
  "title", "image", "product_image", "sku", "variant_title", "product_type", "return_reason",
  "parent_return_reason", "outcome",
}

-- Fields of the event's objects: the customer's detail and the address.
local NESTED = {
  customer_detail = { "email", "first_name", "last_name" },
  address = { "address1", "address2", "city", "state", "zip", "country" },
}

local function copy(v)
  if type(v) ~= "table" then return v end
  local c = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do c[k] = copy(x) end
  return c
end

-- Variants of a fixture: each top-level field removed or set to each value; each field of the
-- first line item (and of the first exchange) likewise; and the last label of several kinds.
local function variants(ev, keep)
  local out = {}
  local function add(v) if keep() then out[#out + 1] = h.encode(v) end end
  add(ev)
  for _, field in ipairs(TOP_FIELDS) do
    local gone = copy(ev)
    gone[field] = nil
    add(gone)
    for _, value in ipairs(VALUES) do
      local v = copy(ev)
      v[field] = copy(value)
      add(v)
    end
  end
  for _, list in ipairs({ "line_items", "exchanges" }) do
    if type(ev[list]) == "table" and type(ev[list][1]) == "table" then
      for _, field in ipairs(ITEM_FIELDS) do
        local gone = copy(ev)
        gone[list][1][field] = nil
        add(gone)
        for _, value in ipairs(VALUES) do
          local v = copy(ev)
          v[list][1][field] = copy(value)
          add(v)
        end
      end
      local mixed = copy(ev)                  -- a list with something other than an object in it
      mixed[list][#mixed[list] + 1] = "not an item"
      add(mixed)
    end
  end
  for object, fields in pairs(NESTED) do
    if type(ev[object]) == "table" then
      for _, field in ipairs(fields) do
        local gone = copy(ev)
        gone[object][field] = nil
        add(gone)
        for _, value in ipairs(VALUES) do
          local v = copy(ev)
          v[object][field] = copy(value)
          add(v)
        end
      end
    end
  end
  for _, last in ipairs({ h.object(), h.object { url = h.null, carrier = false, tracking_url = 5 }, h.null, "x" }) do
    local v = copy(ev)
    v.labels = h.array { h.object { url = "first" }, last }
    add(v)
  end
  return out
end

-- What a result document says, comparable across the two folders: its status, its reason (the
-- scripts file named without its folder, a table without its address) and the bytes of its
-- requests, scheduled requests and cancels as `returnflow map` printed them.
-- Only the head before the requests is decoded: the requests are compared as bytes, and decoding
-- them (thousands of documents, six runs) was most of this spec's CPU.
local function outcome(raw)
  local at = raw:find(',"requests":', 1, true)
  local doc = h.decode(at and raw:sub(1, at - 1) .. "}" or raw)
  local reason = (doc.reason or ""):gsub("^[^ ]*/10%-p%.lua:", "10-p.lua:"):gsub("0x%x+", "0x?")
  return { status = doc.status, reason = reason, requests = at and raw:sub(at) or raw }
end

-- `returnflow map` over the events with a scripts folder: its output lines and the run.
local function map_lines(events, scripts)
  local stdout, stderr, code = h.run({ "map", "--scripts", scripts, events })
  return h.lines(stdout), { stdout = stdout, stderr = stderr, code = code }
end

describe("loop's readers in place", function()
  teardown(h.cleanup)

  -- Every fixture and its variants, one NDJSON file (`returnflow map` maps each line alone).
  -- Every variant (11,784); in the ASan build under `make test`, every third: what that build adds is
  -- the sanitizers on the same C, and the normal build compares them all (18 CPU-s there with all).
  local stride = (h.asan and not h.stress) and 3 or 1
  local made = 0
  local function keep()
    made = made + 1
    return made % stride == 1 % stride
  end
  local texts = {}
  for _, name in ipairs(h.fixture_names()) do
    for _, text in ipairs(variants(h.fixture(name), keep)) do texts[#texts + 1] = text end
  end
  local events = h.ndjson_file(texts)

  for _, call in ipairs({ "properties", "profile", "email" }) do
    it("gives for loop." .. call .. " what loop.lua gives, for every fixture and variants of its fields", function()
      local fast, fast_run = map_lines(events, h.scripts_dir({ ["10-p.lua"] = source(call, false) }))
      local lua, lua_run = map_lines(events, h.scripts_dir({ ["10-p.lua"] = source(call, true) }))
      h.assert_no_sanitizer_report(fast_run.stderr, "map, read in place")
      h.assert_no_sanitizer_report(lua_run.stderr, "map, loop.lua")
      assert.equal(#texts, #fast, fast_run.stderr)
      assert.equal(#texts, #lua, lua_run.stderr)
      local mapped, failed = 0, 0
      for i = 1, #texts do
        local want, got = outcome(lua[i]), outcome(fast[i])
        assert.same(want, got, "variant " .. i .. ": " .. texts[i]:sub(1, 300))
        if got.status == "mapped" then mapped = mapped + 1 else failed = failed + 1 end
      end
      -- the variants reach both sides: most map, and for properties some make loop.lua raise
      assert.is_true(#texts > 3000 // stride, "variants compared: " .. #texts)
      assert.is_true(mapped > #texts / 2, "mapped: " .. mapped)
      if call == "properties" then assert.is_true(failed > 0, "failed: " .. failed) end
    end)
  end

  it("is taken for a read-only event, and not for plain tables, with the same answer", function()
    local probe = [[
local loop = require "returnflow.loop"
local json = require "returnflow.json"
return { ["*"] = function(ret, out)
  local plain = json.decode(json.encode(ret))
  local a, b = loop.properties(ret), loop.properties(plain)
  out:identify { email = "maria@example.com" }
  out:track("Same", { same = json.encode(a) == json.encode(b), lists = json.is_array(a.product_names) })
end }
]]
    local docs, run = h.map(h.fixture_path("return.created.json"), { scripts = h.scripts_dir({ ["10-p.lua"] = probe }) })
    assert.equal(0, run.code, run.stderr)
    assert.equal("mapped", docs[1].status, docs[1].reason)
    local props = docs[1].requests[1].body.data.attributes.properties
    assert.is_true(props.same)
    assert.is_true(props.lists)
  end)
end)
