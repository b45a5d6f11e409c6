-- Bad input, bad scripts and events over Klaviyo's limits: each fails (or is dropped) with a message a
-- merchant can act on, and the other events of the same run still map: nothing is lost.
local h = require "helpers"

local RETURN = h.fixture_path("return.created.json")

-- A script whose return.created handler runs `body` (on line 5) when the event has `bad`, then tracks.
local BODY_LINE = 5
local function script_with(body)
  return table.concat({
    'local rf = require "returnflow"',
    "return {",
    '  ["return.created"] = function(ret, out)',
    "    if ret.bad then",
    "      " .. body,
    "    end",
    '    out:track("Loop Return Created", { ok = true })',
    "  end,",
    "}",
    "",
  }, "\n")
end

-- Maps, in one run, a return.created marked bad and then the same return unmarked.
-- Returns the bad event's document, the good one's, the run, and the script's path.
local function map_bad(body, args)
  local scripts = h.scripts_dir({ ["10-bad.lua"] = script_with(body) })
  local bad = h.fixture("return.created.json")
  bad.bad = true
  local input = h.ndjson_file({ bad, h.fixture("return.created.json") })
  local docs, run = h.map(input, { scripts = scripts, args = args })
  assert.equal(2, #docs, run.stderr)
  return docs[1], docs[2], run, scripts .. "/10-bad.lua"
end

local function assert_mapped(doc)
  assert.equal("mapped", doc.status, doc.reason)
  assert.is_true(#doc.requests > 0)
end

local function assert_fails_with(doc, fragment)
  assert.equal("failed", doc.status)
  assert.truthy(doc.reason:find(fragment, 1, true), doc.reason)
  assert.same({}, doc.requests)
end

local function assert_fails_at_script_line(doc, script, fragment)
  assert.equal("failed", doc.status)
  assert.equal(script .. ":" .. BODY_LINE .. ":", doc.reason:sub(1, #script + #tostring(BODY_LINE) + 2), doc.reason)
  assert.truthy(doc.reason:find(fragment, 1, true), doc.reason)
  assert.same({}, doc.requests)
end

describe("bad input", function()
  teardown(h.cleanup)

  describe("events", function()
    it("fails malformed JSON with the byte offset, and maps the next file", function()
      local text = '{"topic":"return","trigger":"return.created","id":"1",,"state":"open"}'
      local offset = text:find(",,", 1, true)          -- 0-based offset of the second comma
      local broken = h.event_file(text)

      local docs, run = h.map({ broken, RETURN })

      assert.equal(1, run.code)
      assert.equal("failed", docs[1].status)
      assert.truthy(docs[1].reason:find("invalid JSON: byte " .. offset .. ":", 1, true), docs[1].reason)
      assert.truthy(run.stderr:find("invalid JSON: byte " .. offset, 1, true), run.stderr)
      assert_mapped(docs[2])
    end)

    it("fails one bad NDJSON line with its byte offset in the file, and maps the lines around it", function()
      local first = h.encode(h.fixture("return.created.json"))
      local bad = '{"trigger": "return.created", oops}'
      local last = h.encode(h.fixture("giftcard.requested.json"))
      local offset = #first + 1 + bad:find("oops", 1, true) - 1
      local input = h.tempfile(first .. "\n" .. bad .. "\n" .. last .. "\n", ".ndjson")

      local docs, run = h.map(input)

      assert.equal(1, run.code)
      assert.equal(3, #docs)
      assert_mapped(docs[1])
      assert.equal("failed", docs[2].status)
      assert.truthy(docs[2].input:find("#2$"), docs[2].input)
      assert.truthy(docs[2].reason:find("byte " .. offset .. ":", 1, true), docs[2].reason)
      assert_mapped(docs[3])
    end)

    it("fails each number of a top-level array as not an object", function()
      local numbers = h.event_file("[1, 2]")

      local docs, run = h.map({ numbers, RETURN })

      assert.equal(1, run.code)
      assert.equal(3, #docs)
      for i = 1, 2 do
        assert.equal("failed", docs[i].status)
        assert.equal("the event must be a JSON object, got a number", docs[i].reason)
      end
      assert_mapped(docs[3])
    end)

    it("fails a top-level string as not an object", function()
      local text = h.event_file('"return.created"')

      local docs, run = h.map({ text, RETURN })

      assert.equal(1, run.code)
      assert.equal("failed", docs[1].status)
      assert.equal("the event must be a JSON object, got a string", docs[1].reason)
      assert_mapped(docs[2])
    end)

    it("fails an event without a trigger", function()
      local ev = h.fixture("return.created.json")
      ev.trigger = nil
      local input = h.ndjson_file({ ev, h.fixture("return.created.json") })

      local docs, run = h.map(input)

      assert.equal(1, run.code)
      assert.equal("failed", docs[1].status)
      assert.truthy(docs[1].reason:find('no "trigger" field', 1, true), docs[1].reason)
      assert_mapped(docs[2])
    end)

    it("drops an event with a trigger no script handles", function()
      local ev = h.fixture("return.created.json")
      ev.trigger = "return.exploded"
      local input = h.ndjson_file({ ev, h.fixture("return.created.json") })

      local docs, run = h.map(input)

      assert.equal(0, run.code)
      assert.equal("dropped", docs[1].status)
      assert.equal("no handler for trigger 'return.exploded'", docs[1].reason)
      assert_mapped(docs[2])
    end)

    it("fails a profile with no identifier, saying so", function()
      local ev = h.fixture("return.created.json")
      ev.customer, ev.customer_detail = nil, nil
      local input = h.ndjson_file({ ev, h.fixture("return.created.json") })

      local docs, run = h.map(input)

      assert.equal(1, run.code)
      assert.equal("failed", docs[1].status)
      assert.truthy(docs[1].reason:find("the profile has no identifier", 1, true), docs[1].reason)
      assert_mapped(docs[2])
    end)
  end)

  describe("scripts", function()
    it("refuses to map with a script that does not compile, and check names file:line", function()
      local scripts = h.scripts_dir({
        ["10-good.lua"] = 'return { ["return.created"] = function(ret, out) out:track("A", {}) end }\n',
        ["20-broken.lua"] = 'return {\n  ["return.created"] = function(ret, out)\n    out:track("A", {}\n  end,\n}\n',
      })

      local docs, run = h.map(RETURN, { scripts = scripts })
      local out, err, code = h.run({ "check", scripts })

      assert.equal(2, run.code)
      assert.same({}, docs)                         -- nothing half-mapped
      assert.truthy(run.stderr:find(scripts .. "/20-broken.lua:4:", 1, true), run.stderr)
      assert.truthy(run.stderr:find("nothing was mapped", 1, true), run.stderr)
      assert.equal(1, code)
      assert.truthy((out .. err):find(scripts .. "/20-broken.lua:4: ')' expected", 1, true), out .. err)
    end)

    it("fails an event whose handler throws, naming the script and line", function()
      local bad, good, run, script = map_bad('error("no refund policy for " .. ret.order_name)')

      assert.equal(1, run.code)
      assert_fails_at_script_line(bad, script, "no refund policy for #10482")
      assert_mapped(good)
    end)

    it("fails a handler that loops forever at the run-time cap, and maps the next event", function()
      local bad, good, run, script = map_bad("while true do end", { "--time-cap", "100" })

      assert.equal(1, run.code)
      assert_fails_at_script_line(bad, script, "cap: 100 ms of run time exceeded")
      assert_mapped(good)
    end)

    it("fails a handler that allocates without end at the memory cap", function()
      -- A time cap far above it: under ASan on a loaded machine, the page faults of 16 MiB of fresh
      -- allocations (ASan's quarantine never reuses them) came near the default 500 ms of CPU.
      local bad, good, run = map_bad('local t = {} for i = 1, math.huge do t[i] = string.rep("x", 1024) .. i end',
                                     { "--memory-cap", "16", "--time-cap", "5000" })

      assert.equal(1, run.code)
      assert.equal("failed", bad.status)
      assert.truthy(bad.reason:find("cap: memory 16 MiB exceeded", 1, true), bad.reason)
      assert_mapped(good)
    end)

    it("fails a handler that recurses without end with a stack overflow", function()
      -- 64 MiB and 5 s, so Lua's own stack limit is reached before either cap, even on a loaded
      -- machine or a sanitized build (the limit is ~200,000 frames: tens of ms unloaded)
      local bad, good, run, script = map_bad("local function down(n) return 1 + down(n + 1) end down(1)",
                                             { "--memory-cap", "64", "--time-cap", "5000" })

      assert.equal(1, run.code)
      assert_fails_at_script_line(bad, script, "stack overflow")
      assert_mapped(good)
    end)
  end)

  describe("the sandbox", function()
    it("has no io: io.open fails naming io", function()
      local bad, good, _, script = map_bad('io.open("/etc/passwd")')

      assert_fails_at_script_line(bad, script, "global 'io'")
      assert_mapped(good)
    end)

    it("has no os.execute", function()
      local bad, good, _, script = map_bad('os.execute("touch /tmp/returnflow-escaped")')

      assert_fails_at_script_line(bad, script, "field 'execute'")
      assert_mapped(good)
    end)

    it("refuses require of a module outside returnflow and the scripts folder", function()
      local bad, good, _, script = map_bad('require "socket"')

      assert_fails_at_script_line(bad, script, "require: 'socket' is not allowed in the sandbox")
      assert_mapped(good)
    end)

    it("has no string.dump", function()
      local bad, good, _, script = map_bad("string.dump(function() end)")

      assert_fails_at_script_line(bad, script, "field 'dump'")
      assert_mapped(good)
    end)

    it("has no string.dump through a string's methods either", function()
      local bad, good = map_bad('out:track("Dumped", { bytes = #(("").dump(function() return 1 end)) })')

      assert.equal("failed", bad.status, "(\"\").dump(f) worked: " .. table.concat(h.metrics(bad), ", "))
      assert.truthy(bad.reason:find("dump", 1, true), bad.reason)
      assert_mapped(good)
    end)

    it("refuses to load a binary chunk", function()
      local bad, good = map_bad('assert(load("\\27Lua\\84\\0" .. string.rep("\\0", 32)))')

      assert.equal("failed", bad.status)
      assert.truthy(bad.reason:find("attempt to load a binary chunk", 1, true), bad.reason)
      assert_mapped(good)
    end)

    it("refuses load in binary mode", function()
      local bad, good, _, script = map_bad('load("\\27Lua", "chunk", "b")')

      assert_fails_at_script_line(bad, script, "load: only text chunks are allowed")
      assert_mapped(good)
    end)

    it("keeps the event read-only, naming the field a script writes", function()
      local bad, good, _, script = map_bad('ret.customer_detail.email = "someone@example.net"')

      assert_fails_at_script_line(bad, script, "event is read-only: cannot set field 'customer_detail.email'")
      assert_mapped(good)
    end)
  end)

  describe("Klaviyo's limits", function()
    it("fails 401 event properties", function()
      local bad, good = map_bad('local p = {} for i = 1, 401 do p["p" .. i] = i end out:track("Wide", p)')

      assert_fails_with(bad, "properties: 401 properties, over Klaviyo's limit of 400")
      assert_mapped(good)
    end)

    it("fails an array of 4001 items, naming its path", function()
      local bad, good = map_bad(
        'local a = rf.array() for i = 1, 4001 do a[i] = i end out:track("Long", { items = a })')

      assert_fails_with(bad, "properties.items: 4001 items, over Klaviyo's limit of 4000")
      assert_mapped(good)
    end)

    it("fails 11 levels of nesting, naming the path", function()
      local bad, good = map_bad(
        'local v = "leaf" for i = 11, 1, -1 do v = { ["l" .. i] = v } end out:track("Deep", { root = v })')

      assert_fails_with(bad, "properties.root.l1.l2")
      assert.truthy(bad.reason:find("levels deep, over Klaviyo's limit of 10", 1, true), bad.reason)
      assert_mapped(good)
    end)

    it("fails a string over 100 KB, naming the property", function()
      local bad, good = map_bad('out:track("Big", { note = string.rep("x", 100 * 1024 + 1) })')

      assert_fails_with(bad, "properties.note: string of 102401 bytes, over Klaviyo's limit of 102400")
      assert_mapped(good)
    end)

    it("fails a metric name of 128 characters", function()
      local bad, good, _, script = map_bad('out:track(string.rep("m", 128), {})')

      assert_fails_at_script_line(bad, script, "metric name is 128 bytes; Klaviyo's limit is < 128 characters")
      assert_mapped(good)
    end)

    it("fails a time before 1990", function()
      local bad, good, _, script = map_bad('out:track("Old", {}, { time = "1989-12-31T23:59:59+00:00" })')

      assert_fails_at_script_line(bad, script, "time 1989-12-31T23:59:59+00:00 is before 1990")
      assert_mapped(good)
    end)

    it("fails a time more than a year ahead", function()
      local ahead = os.date("!%Y-%m-%dT%H:%M:%S+00:00", os.time() + 400 * 86400)

      local bad, good, _, script = map_bad('out:track("Future", {}, { time = "' .. ahead .. '" })')

      assert_fails_at_script_line(bad, script, "time " .. ahead .. " is more than a year ahead")
      assert_mapped(good)
    end)
  end)
end)
