-- Same semantics, proven: what returnflow.testing reports for an event is what `returnflow map` prints
-- for it, byte for byte. For every shipped fixture × every scripts folder (the default scripts; a
-- folder holding only `return require "returnflow.defaults"`; and, per template of templates/*/, the
-- default scripts with the template's handler file beside them), the module's `doc` must equal the
-- line of `returnflow map --scripts DIR --tenant T FILE`, the module being given map's label, FILE#1.
-- Each comparison is one event alone on both sides (a fresh load, one map run): `returnflow map`
-- retries deferred events at the end of its input, so a run of several events would print in another
-- order. A sequence and the command's options are compared too, and the sandbox caps must trip the
-- same way in both.
--
-- The module's returnflow.native is the one of the build under test (lib/ beside RETURNFLOW_BIN): never
-- sanitizer-instrumented, also in the ASan build (the plain lua5.4 busted runs in cannot load an
-- instrumented one), so each build's suite needs only its own build.
local h = require "helpers"

package.path = h.root .. "/core/lua/?.lua;" .. package.path
-- returnflow.native: the build under test's (helpers.lua puts its lib/ first on package.cpath)
local testing = require "returnflow.testing"

local TENANT = "conformance-shop"

-- The lines of a command's output.
local function list(cmd)
  local out = h.sh_ok(cmd)
  return h.lines(out)
end

-- The scripts folders to compare on: { label, dir }, built when this file loads (the `it`s are per folder).
local function folders()
  local result = {
    { label = "the default scripts", dir = h.scripts },
    { label = 'a folder of only require "returnflow.defaults"',
      dir = h.scripts_dir({ ["10-loop-defaults.lua"] = 'return require "returnflow.defaults"\n' }) },
  }
  for _, template in ipairs(list("cd " .. h.quote(h.root) .. " && ls -d templates/*/ 2>/dev/null || true")) do
    local handlers = {}
    for _, file in ipairs(list("ls " .. h.quote(h.root .. "/" .. template))) do
      if file:match("%.lua$") and file ~= "template.lua" then handlers[#handlers + 1] = file end
    end
    if #handlers > 0 then
      local dir = h.tempdir()
      h.sh_ok("cp " .. h.quote(h.scripts) .. "/*.lua " .. h.quote(dir))
      for _, file in ipairs(handlers) do
        h.sh_ok("cp " .. h.quote(h.root .. "/" .. template .. file) .. " " .. h.quote(dir))
      end
      result[#result + 1] = { label = "the defaults with " .. template .. table.concat(handlers, ", "), dir = dir }
    end
  end
  return result
end

-- Writes a fixture's exact text to a temporary file named like it; returns the path.
local function fixture_file(name)
  local dir = h.tempdir()
  return h.write(dir .. "/" .. name .. ".json", testing.fixture_text(name))
end

-- The lines `returnflow map` prints for `files` (a list) with `args` before them, and its stderr.
local function map_lines(dir, args, files)
  local argv = { "map", "--scripts", dir }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  for _, f in ipairs(files) do argv[#argv + 1] = f end
  local out, err = h.run(argv)
  return h.lines(out), err
end

describe("conformance of returnflow.testing with `returnflow map`", function()
  teardown(h.cleanup)

  local names = testing.fixtures()

  it("has fixtures to compare on", function()
    assert.is_true(#names >= 13, "only " .. #names .. " fixtures")
  end)

  for _, folder in ipairs(folders()) do
    describe("through " .. folder.label, function()
      for _, name in ipairs(names) do
        it(name .. ": the same doc as returnflow map prints, byte for byte", function()
          local file = fixture_file(name)
          local scripts = testing.load(folder.dir, { tenant = TENANT })

          local result = scripts:map(testing.fixture_text(name), file .. "#1")
          local lines, err = map_lines(folder.dir, { "--tenant", TENANT }, { file })

          assert.equal(1, #lines, err)
          assert.matches('^{"input":"' .. h.literal(file) .. '#1","trigger":', result.doc)
          assert.matches('"status":"' .. result.status .. '"', result.doc)
          assert.equal(lines[1], result.doc)
        end)
      end
    end)
  end

  it("the fixtures cover mapped, dropped and deferred events", function()
    local seen = {}
    local scripts = testing.load(h.scripts)
    for _, name in ipairs(names) do
      scripts:forget()
      seen[scripts:map(testing.fixture_text(name)).status] = true
    end

    assert.same({ mapped = true, dropped = true, deferred = true }, seen)
  end)

  it("an event that is not JSON: the same failed doc", function()
    local file = h.tempfile("{not json", ".json")
    local scripts = testing.load(h.scripts)

    local result = scripts:map("{not json", file .. "#1")
    local lines, err = map_lines(h.scripts, {}, { file })

    assert.equal(1, #lines, err)
    assert.equal("failed", result.status)
    assert.equal(lines[1], result.doc)
  end)

  it("a return then its label, in one run: the same two docs, the label mapped from memory", function()
    local ret, label = fixture_file("return.created"), fixture_file("label.created")
    local scripts = testing.load(h.scripts, { tenant = TENANT })

    local docs = { scripts:map(testing.fixture_text("return.created"), ret .. "#1").doc,
                   scripts:map(testing.fixture_text("label.created"), label .. "#1").doc }
    local lines, err = map_lines(h.scripts, { "--tenant", TENANT }, { ret, label })

    assert.equal(2, #lines, err)
    assert.matches('"trigger":"label.created","status":"mapped"', docs[2])
    assert.same(lines, docs)
  end)

  it("every mapper option: the same doc with a public key, site id, revision, segments property, backfill", function()
    local file = fixture_file("return.created.gift_return")
    local scripts = testing.load(h.scripts, { tenant = TENANT, key_kind = "public", site_id = "AbC123",
                                              revision = "2024-10-15", segments_property = "loop_tags",
                                              backfill = true })

    local result = scripts:map(testing.fixture_text("return.created.gift_return"), file .. "#1")
    local lines, err = map_lines(h.scripts, { "--tenant", TENANT, "--key-kind", "public", "--site-id", "AbC123",
                                              "--revision", "2024-10-15", "--segments-property", "loop_tags",
                                              "--backfill" }, { file })

    assert.equal(1, #lines, err)
    assert.matches('"path":"/client/events%?company_id=AbC123"', result.doc)
    assert.matches('"backfill":true', result.doc)
    assert.equal(lines[1], result.doc)
  end)

  describe("the sandbox caps trip the same way", function()
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

    -- The module's result and map's line for return.created with order_name set to `order`.
    local function both(order, options, args)
      local text = testing.native.json.encode(testing.fixture("return.created", { order_name = order }))
      local file = h.tempfile(text, ".json")
      local result = testing.load(dir, options):map(text, file .. "#1")
      local lines, err = map_lines(dir, args, { file })
      assert.equal(1, #lines, err)
      return result, h.decode(lines[1]), lines[1]
    end

    it("the run-time cap: module time_cap_ms = 50, map --time-cap 50", function()
      local result, doc, line = both("LOOP", { time_cap_ms = 50 }, { "--time-cap", "50" })

      assert.equal("failed", doc.status)
      assert.equal(dir .. "/10-caps.lua:3: cap: 50 ms of run time exceeded (a loop that never ends?)", doc.reason)
      assert.equal(doc.reason, result.reason)
      assert.equal(line, result.doc)
    end)

    it("the memory cap: module memory_cap_mib = 8, map --memory-cap 8", function()
      local result, doc, line = both("HOG", { memory_cap_mib = 8 }, { "--memory-cap", "8" })

      assert.equal("failed", doc.status)
      assert.equal(dir .. "/10-caps.lua:6: cap: memory 8 MiB exceeded", doc.reason)
      assert.equal(doc.reason, result.reason)
      assert.equal(line, result.doc)
    end)

    it("under the caps, the same script maps the same", function()
      local result, doc, line = both("#1", { time_cap_ms = 50, memory_cap_mib = 8 },
                                     { "--time-cap", "50", "--memory-cap", "8" })

      assert.equal("mapped", doc.status)
      assert.equal(line, result.doc)
    end)
  end)
end)
