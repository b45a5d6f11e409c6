-- serve's start is all or nothing: a step that fails undoes the ones before it (threads joined,
-- handles closed through libuv's close callbacks, databases closed), says why on one line and
-- exits 1 (the machine refused: port, data folder) or 2 (the operator's files: scripts). Run
-- against the ASan build too, where a leak or a bad free in any of those unwinds is a report that
-- fails the spec (h.run checks standard error).
local h = require "helpers"

-- A port another socket holds for as long as the holder runs; returns the holder and "HOST:PORT".
local function hold_a_port()
  local holder = h.spawn([[/usr/bin/python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)']])
  local port = h.wait_for(function() return holder.output():match("^(%d+)\n") end, 10)
  assert(port, "the port holder did not start")
  return holder, "127.0.0.1:" .. port
end

local function first_line(text) return (text:match("^[^\n]*")) end

describe("serve that cannot start", function()
  local holder
  after_each(function()
    if holder then holder.stop(); holder = nil end
    h.cleanup()
  end)

  it("exits 1 with the address and the reason when the port is taken", function()
    local dir = h.serve_dir()
    local address
    holder, address = hold_a_port()
    local _, err, code = h.run({ "serve", "-c", dir .. "/returnflow.conf.lua", "--listen", address })
    assert.equal(1, code, err)
    assert.equal("returnflow serve: cannot listen on " .. address .. ": address already in use", first_line(err))
    assert.truthy(err:find("returnflow serve: not started\n", 1, true), err)
  end)

  it("unwinds delivery and the mapping threads too, when a tenant has a Klaviyo key", function()
    local dir = h.serve_dir({ klaviyo = '{ key = "pk_spec_secret_key", base_url = "http://127.0.0.1:9" }' })
    local address
    holder, address = hold_a_port()
    local _, err, code = h.run({ "serve", "-c", dir .. "/returnflow.conf.lua", "--listen", address })
    assert.equal(1, code, err)
    assert.truthy(first_line(err):find("address already in use", 1, true), err)
    assert.falsy(err:find("pk_spec_secret_key", 1, true), "the key must not reach the output")
  end)

  it("exits 1 naming the data folder when it cannot be created (even as root)", function()
    local dir = h.serve_dir()
    h.write(dir .. "/plain-file", "not a folder\n")
    local data = dir .. "/plain-file/data"
    local _, err, code = h.run({ "serve", "-c", dir .. "/returnflow.conf.lua", "--data", data })
    assert.equal(1, code, err)
    local line = first_line(err)
    assert.truthy(line:find(data, 1, true), err)
    assert.truthy(line:find("Not a directory", 1, true), err)
    assert.truthy(err:find("returnflow serve: not started\n", 1, true), err)
  end)

  it("exits 2 with the file and line of a script that does not load, and keeps no frozen copy of it", function()
    local dir = h.serve_dir()
    h.write(dir .. "/scripts/zz_broken.lua", "return {\n  [\"return.created\"] = function(ret, out\nend }\n")
    local _, err, code = h.run({ "serve", "-c", dir .. "/returnflow.conf.lua" })
    assert.equal(2, code, err)
    assert.equal("returnflow serve: tenant shop: the scripts do not load:", first_line(err))
    assert.truthy(err:find("zz_broken.lua:3:", 1, true), err)
    assert.truthy(err:find("returnflow serve: not started\n", 1, true), err)
    local listing = h.sh_ok("find " .. h.quote(dir .. "/data/scripts") .. " -name zz_broken.lua")
    assert.equal("", listing)
  end)

  it("exits 1 naming libcurl when it cannot be loaded (it is opened on first use, not linked)", function()
    local dir = h.serve_dir()
    local libs = h.tempdir()
    h.write(libs .. "/libcurl.so.4", "not a library\n")         -- found first on LD_LIBRARY_PATH
    local cmdline = string.format("LD_LIBRARY_PATH=%s %s serve -c %s", h.quote(libs), h.quote(h.bin),
                                  h.quote(dir .. "/returnflow.conf.lua"))
    local _, err, code = h.sh(cmdline)
    h.assert_no_sanitizer_report(err, cmdline)
    assert.equal(1, code, err)
    assert.truthy(first_line(err):find("^returnflow serve: cannot load libcurl%.so%.4: .*libcurl%.so%.4"), err)
    assert.truthy(err:find("returnflow serve: not started\n", 1, true), err)
  end)

  it("starts on the same folder once the port is free again", function()
    local dir = h.serve_dir()
    local address
    holder, address = hold_a_port()
    local _, _, code = h.run({ "serve", "-c", dir .. "/returnflow.conf.lua", "--listen", address })
    assert.equal(1, code)
    holder.stop()
    holder = nil
    local s = h.start_serve(dir)
    finally(function() s:stop() end)
    assert.truthy(s.address:match("^127%.0%.0%.1:%d+$"), s.address)
  end)
end)
