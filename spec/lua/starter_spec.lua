-- The merchant starter (core/lua/returnflow/cli/starter.lua, core/cli/cmd_test.c): `returnflow init DIR`
-- writes a scripts folder building on the defaults, two specs, .busted and .luacheckrc, and never
-- overwrites a file that is there; `returnflow test` in DIR runs those specs green out of the box.
-- Then the README's walk-through: rename the metric in the script, see the spec fail naming it, update
-- the spec, see it pass. Also: a busted that is not there fails clearly, and luacheck with the
-- starter's own .luacheckrc is clean.
--
-- `returnflow test` runs busted under lua5.4 with the modules beside the binary (core/lua, and the
-- build folder's lib/ for returnflow.native), so this spec needs RETURNFLOW_BIN's build folder to
-- hold lib/returnflow/native.so (`make build` makes both).
local h = require "helpers"

local FILES = { ".busted", ".luacheckrc", "scripts/10-loop-defaults.lua", "scripts/50-high-value-returns.lua",
                "scripts/60-my-changes.lua", "spec/defaults_spec.lua", "spec/high_value_returns_spec.lua" }

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- `returnflow init DIR`: stdout, stderr, exit code.
local function init(dir) return h.run({ "init", dir }) end

-- `returnflow test ARGS...` run in `dir` with extra environment `env` ("NAME=value ..." text).
-- Returns its output (stdout then stderr) and exit code.
local function returnflow_test(dir, env, args)
  local cmd = string.format("cd %s && %s %s test", h.quote(dir), env or "", h.quote(h.bin))
  for _, a in ipairs(args or {}) do cmd = cmd .. " " .. h.quote(a) end
  local out, err, code = h.sh(cmd)
  h.assert_no_sanitizer_report(err, cmd)
  return out .. err, code
end

-- Replaces `from` by `to` (plain text) in the file at `path`; returns how many times.
local function replace_in(path, from, to)
  local text, n = h.read(path):gsub(h.literal(from), (to:gsub("%%", "%%%%")))
  h.write(path, text)
  return n
end

-- A new starter folder (DIR/shop, which init creates).
local function starter()
  local dir = h.tempdir() .. "/shop"
  local out, err, code = init(dir)
  assert(code == 0, "returnflow init failed:\n" .. out .. err)
  return dir
end

describe("returnflow init", function()
  teardown(h.cleanup)

  it("writes the seven starter files into a new folder and says what to do next", function()
    local dir = h.tempdir() .. "/shop"

    local out, err, code = init(dir)

    assert.equal(0, code, err)
    assert.equal("", err)
    for _, rel in ipairs(FILES) do
      assert.is_true(exists(dir .. "/" .. rel), rel .. " was not written")
      assert.matches("  wrote " .. h.literal(dir .. "/" .. rel) .. "\n", out)
    end
    assert.matches("init: 7 files written, 0 kept%. Next: cd " .. h.literal(dir) .. " && returnflow test\n$", out)
    assert.equal('return require "returnflow.defaults"\n',
                 h.read(dir .. "/scripts/10-loop-defaults.lua"):match("\n(return [^\n]*\n)$"))
    local busted = assert(loadfile(dir .. "/.busted", "t", {}))()
    assert.same({ "spec" }, busted.default.ROOT)
  end)

  it("never overwrites a file that is there: keeps it, says so, and writes the others", function()
    local dir = h.tempdir()
    h.sh_ok("mkdir -p " .. h.quote(dir .. "/scripts"))
    local mine = "-- my own\nreturn {}\n"
    h.write(dir .. "/scripts/50-high-value-returns.lua", mine)

    local out, err, code = init(dir)

    assert.equal(0, code, err)
    assert.equal(mine, h.read(dir .. "/scripts/50-high-value-returns.lua"))
    assert.equal("returnflow init: " .. dir .. "/scripts/50-high-value-returns.lua exists: kept as it is\n", err)
    assert.not_matches("wrote [^\n]*50%-high%-value%-returns", out)
    assert.matches("init: 6 files written, 1 kept%.", out)
    assert.is_true(exists(dir .. "/spec/high_value_returns_spec.lua"))
  end)

  it("run again on its own folder, keeps all seven files unchanged", function()
    local dir = starter()
    local before = {}
    for _, rel in ipairs(FILES) do before[rel] = h.read(dir .. "/" .. rel) end
    h.write(dir .. "/scripts/10-loop-defaults.lua", "-- edited\n" .. before["scripts/10-loop-defaults.lua"])

    local out, err, code = init(dir)

    assert.equal(0, code, err)
    assert.matches("init: 0 files written, 7 kept%.", out)
    assert.equal(7, select(2, err:gsub("exists: kept as it is\n", "")))
    assert.equal("-- edited\n" .. before["scripts/10-loop-defaults.lua"], h.read(dir .. "/scripts/10-loop-defaults.lua"))
    assert.equal(before["spec/defaults_spec.lua"], h.read(dir .. "/spec/defaults_spec.lua"))
  end)

  it("needs exactly one folder", function()
    local _, err, code = h.run({ "init" })
    assert.equal(2, code)
    assert.matches("returnflow init: no folder given\nusage: returnflow init DIR\n", err, 1, true)

    _, err, code = h.run({ "init", h.tempdir(), h.tempdir() })
    assert.equal(2, code)
    assert.matches("returnflow init: takes one folder", err, 1, true)
  end)
end)

describe("returnflow test in a starter folder", function()
  teardown(h.cleanup)

  it("passes out of the box: exit 0, 4 successes", function()
    local dir = starter()

    local out, code = returnflow_test(dir)

    assert.equal(0, code, out)
    assert.matches("4 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
  end)

  it("passes busted's arguments through (TAP output names each spec)", function()
    local dir = starter()

    local out, code = returnflow_test(dir, nil, { "-o", "TAP" })

    assert.equal(0, code, out)
    assert.matches("\nok 3 %- high value returns get their own metric and the segment\n", out)
    assert.matches("\n1%.%.4\n", out)
  end)

  it("the README walk-through: a renamed metric fails the spec naming it, the updated spec passes", function()
    local dir = starter()
    local script, spec = dir .. "/scripts/50-high-value-returns.lua", dir .. "/spec/high_value_returns_spec.lua"

    assert.equal(1, replace_in(script, "High Value Return Started", "Big Return Started"))
    local out, code = returnflow_test(dir)

    assert.is_not.equal(0, code, out)
    assert.matches("3 successes / 1 failure / 0 errors / 0 pending", out, 1, true)
    assert.matches('spec/high_value_returns_spec.lua:9: "High Value Return Started" was not tracked; '
                   .. 'tracked: "Loop Return Created", "Big Return Started" (event mapped)', out, 1, true)

    assert.equal(2, replace_in(spec, "High Value Return Started", "Big Return Started"))
    out, code = returnflow_test(dir)

    assert.equal(0, code, out)
    assert.matches("4 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
  end)

  it("docs/mapping-api.md's 'Change the defaults', followed alone: the five-line file and its spec pass",
     function()
    local dir = starter()
    local section = h.read(h.root .. "/docs/mapping-api.md"):match("\n## Change the defaults\n(.-)\n## ")
    assert.is_string(section, "no 'Change the defaults' section")
    local blocks = {}
    for block in section:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = block end
    local five_lines, assertions = blocks[1], blocks[2]
    assert.is_true(select(2, five_lines:gsub("\n", "")) <= 5, five_lines)     -- at most five lines
    -- the file the docs name is the one `returnflow init` wrote, with its commented example
    local file = section:match("`(scripts/[%w-]+%.lua)`")
    assert.is_string(file, "the section names no file")
    assert.is_true(exists(dir .. "/" .. file), file .. " is not a file returnflow init writes")
    for _, doc in ipairs({ "/docs/mapping-api.md", "/README.md" }) do
      for named in h.read(h.root .. doc):gmatch("scripts/[%w]+%-my%-changes%.lua") do
        assert.equal(file, named, doc .. " names " .. named)
      end
    end
    h.write(dir .. "/" .. file, five_lines)
    local spec_file = section:match("`(spec/[%w_]+_spec%.lua)`")
    assert.is_string(spec_file, "the section names no spec file")
    h.write(dir .. "/" .. spec_file, assertions)
    -- the defaults' own spec expects Loop Return Created: the merchant renamed it, as the docs say
    assert.truthy(section:find("`spec/defaults_spec.lua` expects \"Loop Return Created\"", 1, true))
    h.write(dir .. "/spec/defaults_spec.lua", (h.read(dir .. "/spec/defaults_spec.lua"):gsub('"Loop Return Created"',
                                                                                             '"Return Started"')))

    local out, code = returnflow_test(dir)

    assert.equal(0, code, out)
    assert.matches("5 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
  end)

  it("fails with a clear message when RETURNFLOW_BUSTED names no file", function()
    local dir = starter()

    local out, code = returnflow_test(dir, "RETURNFLOW_BUSTED=/nonexistent/busted")

    assert.equal(2, code, out)
    assert.matches("returnflow test: RETURNFLOW_BUSTED is /nonexistent/busted, which is not a file", out, 1, true)
    assert.matches("RETURNFLOW_BUSTED", out, 1, true)
    assert.not_matches("successes", out, 1, true)
  end)

  it("is clean under luacheck with the starter's own .luacheckrc", function()
    local _, _, missing = h.sh("command -v luacheck")
    assert.equal(0, missing, "luacheck is not installed (apt-get install -y lua-check)")
    local dir = starter()

    local out, err, code = h.sh("cd " .. h.quote(dir) .. " && luacheck --no-color --config .luacheckrc .")

    assert.equal(0, code, out .. err)
    assert.matches("Total: 0 warnings / 0 errors in 5 files", out, 1, true)
  end)

  it("luacheck's .luacheckrc knows the sandbox: io in a script is flagged", function()
    local dir = starter()
    h.write(dir .. "/scripts/60-io.lua", 'return { ["return.created"] = function() io.write("x") end }\n')

    local out, _, code = h.sh("cd " .. h.quote(dir) .. " && luacheck --no-color --config .luacheckrc scripts")

    assert.is_not.equal(0, code, out)
    assert.matches("scripts/60-io.lua:1:42: accessing undefined variable 'io'", out, 1, true)
  end)
end)
