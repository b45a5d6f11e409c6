-- The systemd units of dist/ (docs/operations.md, "Running under systemd"): each one passes
-- `systemd-analyze verify` without a word, keeps the hardening docs/security.md describes, and starts
-- serve with options serve has. systemd-analyze comes from Debian's systemd package (tools/deps.sh):
-- without it this spec fails, it never skips.
local h = require "helpers"

local UNITS = { "returnflow.service", "returnflow-node.service" }

-- What each unit must keep: the dedicated user, the read-only system with the data folder writable,
-- a private /tmp, no privileges to gain. Not here, on purpose: SystemCallFilter (the mapping workers
-- install their own seccomp filter and Landlock rules), PrivateUsers and ProcSubset=pid (serve execs
-- /proc/self/exe and reads its own /proc entries for /metrics).
local HARDENING = {
  User = "returnflow", Group = "returnflow",
  ProtectSystem = "strict", ReadWritePaths = "/var/lib/returnflow", StateDirectory = "returnflow",
  ProtectHome = "yes", PrivateTmp = "yes", PrivateDevices = "yes",
  NoNewPrivileges = "yes", CapabilityBoundingSet = "", RestrictSUIDSGID = "yes",
  LockPersonality = "yes", MemoryDenyWriteExecute = "yes", RestrictNamespaces = "yes", RemoveIPC = "yes",
  ProtectKernelTunables = "yes", ProtectKernelModules = "yes", ProtectControlGroups = "yes",
  RestrictAddressFamilies = "AF_INET AF_INET6 AF_UNIX", SystemCallArchitectures = "native", LimitCORE = "0",
}

-- The [Service] settings of a unit's text, by name (the last one wins, as in systemd).
local function settings(text)
  local found = {}
  for line in text:gmatch("[^\n]+") do
    local key, value = line:match("^(%w+)=(.*)$")
    if key then found[key] = value end
  end
  return found
end

-- The unit's text with ExecStart pointing at the binary under test (verify wants it executable).
local function local_copy(unit)
  local text = h.read(h.root .. "/dist/" .. unit)
  local dir = h.tempdir()
  h.write(dir .. "/" .. unit, (text:gsub("/usr/local/bin/returnflow", function() return h.bin end)))
  return dir .. "/" .. unit
end

-- systemd-analyze verify's exit status and everything it said.
local function verify(path)
  local out, err, code = h.sh("systemd-analyze verify " .. h.quote(path))
  return code, out .. err
end

describe("the systemd units", function()
  teardown(h.cleanup)

  it("have systemd-analyze to check them", function()
    local out, _, code = h.sh("command -v systemd-analyze")
    assert.equal(0, code, "systemd-analyze is missing: tools/deps.sh installs Debian's systemd package")
    assert.truthy(out:find("systemd-analyze", 1, true))
  end)

  for _, unit in ipairs(UNITS) do
    it(unit .. " passes systemd-analyze verify without a warning", function()
      local code, said = verify(local_copy(unit))
      assert.equal(0, code, said)
      assert.equal("", said)
    end)

    it(unit .. " keeps the hardening that fits serve", function()
      local found = settings(h.read(h.root .. "/dist/" .. unit))
      for key, want in pairs(HARDENING) do assert.equal(want, found[key], unit .. ": " .. key) end
      assert.equal("/bin/kill -HUP $MAINPID", found.ExecReload)
      assert.equal("SIGTERM", found.KillSignal)
    end)

    it(unit .. " starts serve with options serve has", function()
      local exec = settings(h.read(h.root .. "/dist/" .. unit)).ExecStart
      assert.truthy(exec:find("^/usr/local/bin/returnflow serve "), exec)
      local help = h.run({ "help", "serve" })
      for option in exec:gmatch("%s(%-%-[%w-]+)") do
        assert.truthy(help:find(option .. " ", 1, true), option .. " is not an option of serve: " .. exec)
      end
      assert.truthy(exec:find("--data /var/lib/returnflow", 1, true), exec)
    end)
  end

  it("are checked for real: a wrong value is reported", function()
    local path = local_copy("returnflow.service")
    h.write(path, (h.read(path):gsub("ProtectSystem=strict", "ProtectSystem=everything")))
    local _, said = verify(path)
    assert.truthy(said:find("ProtectSystem", 1, true) or said:find("protect system", 1, true), said)
    h.write(path, (h.read(path):gsub("ExecStart=%S+", "ExecStart=/nonexistent/returnflow")))
    local code = verify(path)
    assert.are_not.equal(0, code)
  end)

  it("are described in docs/operations.md", function()
    local doc = h.read(h.root .. "/docs/operations.md")
    for _, unit in ipairs(UNITS) do assert.truthy(doc:find("dist/" .. unit, 1, true), unit) end
    assert.truthy(doc:find("systemd-analyze verify", 1, true))
  end)
end)
