-- returnflow-scm-1.rockspec: (a) every Lua file of core/lua/returnflow (recursively) is installed by
-- the rockspec's build.install.lua under its module name, and every path listed there exists, so a
-- module added to the project cannot be left out of the rock; (b) `luarocks make` into a temporary
-- tree gives a working installation: `returnflow init` from that tree writes a starter whose specs
-- pass with plain `lua5.4 /usr/bin/busted` (the tree's `luarocks path` environment) and with the
-- tree's `returnflow test`, which finds its modules by itself.
--
-- (b) runs luarocks from the repo root, which builds in build-rock/ (about 7 s from scratch). Without
-- luarocks it fails; it is not skipped. It does not depend on the build under test, and two runs at
-- once would share build-rock/: tools/test.sh runs it once per `make test` (ONCE_SPECS).
local h = require "helpers"

local ROCKSPEC = "returnflow-scm-1.rockspec"

-- The rockspec, evaluated in an empty environment.
local function rockspec()
  local env = {}
  local chunk = assert(loadfile(h.root .. "/" .. ROCKSPEC, "t", env))
  chunk()
  return env
end

-- Every .lua file under core/lua/returnflow, as paths relative to the repo root, sorted.
local function lua_files()
  local files = {}
  local p = assert(io.popen("cd " .. h.quote(h.root) .. " && find core/lua/returnflow -name '*.lua' -type f | sort"))
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

-- The module name luarocks must install core/lua/<a/b>.lua as: "a.b"; a folder's init.lua is the folder.
local function module_name(path)
  return (path:gsub("^core/lua/", ""):gsub("%.lua$", ""):gsub("/", "."):gsub("%.init$", ""))
end

describe(ROCKSPEC, function()
  teardown(h.cleanup)

  describe("build.install.lua", function()
    it("installs every Lua file of core/lua/returnflow under its module name", function()
      local installed = rockspec().build.install.lua
      local files = lua_files()
      local missing = {}

      for _, path in ipairs(files) do
        local name = module_name(path)
        if installed[name] ~= path then
          missing[#missing + 1] = string.format('%s is not in %s build.install.lua as ["%s"] = "%s"%s', path,
                                                ROCKSPEC, name, path,
                                                installed[name] and (" (it lists " .. installed[name] .. ")") or "")
        end
      end

      assert.is_true(#files >= 9, "found only " .. #files .. " Lua files under core/lua/returnflow")
      assert.equal(0, #missing, "\n" .. table.concat(missing, "\n"))
    end)

    it("lists only files that exist, each under the module name of its path", function()
      local problems = {}

      for name, path in pairs(rockspec().build.install.lua) do
        local f = io.open(h.root .. "/" .. path, "rb")
        if f then f:close() else problems[#problems + 1] = path .. " (" .. name .. ") does not exist" end
        if module_name(path) ~= name then
          problems[#problems + 1] = string.format("%s is listed as %s, but its path makes it %s", path, name, module_name(path))
        end
      end

      table.sort(problems)
      assert.equal(0, #problems, "\n" .. table.concat(problems, "\n"))
    end)
  end)

  describe("luarocks make into a temporary tree", function()
    local tree, starter
    local installed = false

    -- A shell command line run with the tree's `luarocks path` environment (or with no Lua path at all).
    local function in_tree_env(cmd)
      return string.format('eval "$(luarocks --lua-version 5.4 --tree %s path)" && %s', h.quote(tree), cmd)
    end
    local function without_lua_path(cmd)
      return "unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 && " .. cmd
    end

    -- Runs a command that needs the installation made by the first test.
    local function run_installed(cmd)
      assert(installed, "luarocks make did not install the rock (see the first test of this block)")
      local out, err, code = h.sh(cmd)
      h.assert_no_sanitizer_report(err, cmd)
      return out .. err, code
    end

    it("installs the binary, returnflow.native and the modules", function()
      local _, _, no_luarocks = h.sh("command -v luarocks")
      assert.equal(0, no_luarocks, "luarocks is not installed (apt-get install -y luarocks): the rock is not proven")
      tree = h.tempdir()

      local out, err, code = h.sh(string.format("cd %s && luarocks --lua-version 5.4 --tree %s make %s",
                                                h.quote(h.root), h.quote(tree), ROCKSPEC))

      assert.equal(0, code, (out .. err):sub(-3000))
      assert.matches("returnflow scm-1 is now installed in " .. tree, out, 1, true)
      for _, file in ipairs({ "bin/returnflow", "lib/lua/5.4/returnflow/native.so",
                              "share/lua/5.4/returnflow/testing.lua", "share/lua/5.4/returnflow/cli/starter.lua" }) do
        local f = io.open(tree .. "/" .. file, "rb")
        assert.is_not_nil(f, file .. " is not in the tree")
        f:close()
      end
      installed = true
    end)

    it("refers to its own tree only: the share folder compiled into the binary and native.so is inside it", function()
      local probe = 'local n = require "returnflow.native"; print(n.share); '
                    .. 'print(package.searchpath("returnflow.native", package.cpath))'
      local out, code = run_installed(in_tree_env("lua5.4 -e " .. h.quote(probe)))

      assert.equal(0, code, out)
      local share, so = out:match("^([^\n]*)\n([^\n]*)\n$")
      assert.equal(tree .. "/lib/lua/5.4/returnflow/native.so", so)
      assert.equal(tree .. "/", share:sub(1, #tree + 1),
                   "native.so's share folder is " .. share .. ", outside the tree " .. tree
                   .. " (a build-rock/ left from an install into another tree?)")
      local strings = h.sh("strings " .. h.quote(tree .. "/bin/returnflow") .. " | grep -c " .. h.quote(share) .. " || true")
      assert.is_true(tonumber(strings) > 0, "the binary does not carry the share folder " .. share)
    end)

    it("its returnflow init writes a starter whose specs pass with lua5.4 /usr/bin/busted", function()
      starter = h.tempdir() .. "/shop"
      local out, code = run_installed(string.format("%s init %s", h.quote(tree .. "/bin/returnflow"), h.quote(starter)))
      assert.equal(0, code, out)

      out, code = run_installed(in_tree_env("cd " .. h.quote(starter) .. " && lua5.4 /usr/bin/busted"))

      assert.equal(0, code, out)
      assert.matches("4 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
    end)

    it("its returnflow test passes in the starter, with the tree's luarocks path", function()
      assert(starter, "no starter folder (see the previous test)")

      local out, code = run_installed(in_tree_env("cd " .. h.quote(starter) .. " && "
                                                  .. h.quote(tree .. "/bin/returnflow") .. " test"))

      assert.equal(0, code, out)
      assert.matches("4 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
    end)

    it("its returnflow test passes in the starter with no Lua path set: it finds the tree's modules itself", function()
      assert(starter, "no starter folder (see the previous tests)")

      local out, code = run_installed(without_lua_path("cd " .. h.quote(starter) .. " && "
                                                       .. h.quote(tree .. "/bin/returnflow") .. " test"))

      assert.equal(0, code, "the tree's returnflow test did not find the tree's modules:\n" .. out:sub(1, 1500))
      assert.matches("4 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
    end)
  end)
end)
