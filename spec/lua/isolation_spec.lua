-- Containment, seen from outside (docs/security.md): serve's mapping workers hold no secret and are
-- locked in, a dead worker is on record in `returnflow status`, and a config error never prints a
-- secret. The hostile scripts themselves are spec/lua/hostile_serve.lua (the hostile_serve_N_spec.lua shards)'s.
local h = require "helpers"

local KEY = "pk_isolation_SECRET_0123456789"

local function read_proc(pid, file)
  local f = io.open("/proc/" .. pid .. "/" .. file, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function children(pid)
  local list = {}
  local p = io.popen("ls /proc")
  for c in p:lines() do
    local stat = c:match("^%d+$") and read_proc(c, "stat")
    if stat and stat:match("^%d+ %b() %a (%d+)") == tostring(pid) then list[#list + 1] = c end
  end
  p:close()
  return list
end

local function mapworkers(pid)
  local list = {}
  for _, c in ipairs(children(pid)) do
    local cmd = read_proc(c, "cmdline") or ""
    if cmd:find("__mapworker\0", 1, true) then list[#list + 1] = c end
  end
  return list
end

describe("serve's mapping workers", function()
  local server
  after_each(function() if server and server:alive() then server:stop("KILL") end end)
  teardown(h.cleanup)

  it("run with an empty environment, only their socket open, no new privileges and a seccomp filter", function()
    local dir = h.serve_dir({ klaviyo = "{ key = { env = 'RF_ISOLATION_KEY' }, base_url = 'http://127.0.0.1:9' }" })
    local err = dir .. "/serve.err"
    local p = io.popen(string.format("cd %s && RF_ISOLATION_KEY=%s %s serve -c returnflow.conf.lua >/dev/null 2>%s & echo $!",
                                     h.quote(dir), KEY, h.quote(h.bin), h.quote(err)))
    local pid = p:read("l")
    p:close()
    server = { pid = pid, alive = function(self) return h.alive(self.pid) end,
               stop = function(self) os.execute("kill -9 " .. self.pid .. " 2>/dev/null") end }
    local function log()
      local f = io.open(err, "rb")
      local text = f and f:read("a") or ""
      if f then f:close() end
      return text
    end
    assert.is_truthy(h.wait_for(function() return log():find('"msg":"listening"', 1, true) end, 20), log())
    local workers = h.wait_for(function() local w = mapworkers(pid); return #w > 0 and w end, 5)
    assert.is_truthy(workers, "no mapping worker under serve")
    for _, w in ipairs(workers) do
      -- Nothing at all; a sanitizer build passes on the sanitizers' own options and nothing else.
      for entry in read_proc(w, "environ"):gmatch("[^%z]+") do
        assert.is_truthy(entry:match("^ASAN_OPTIONS=") or entry:match("^UBSAN_OPTIONS="), "a worker has " .. entry)
      end
      assert.is_falsy(read_proc(w, "environ"):find(KEY, 1, true))
      local status = read_proc(w, "status")
      assert.is_truthy(status:find("NoNewPrivs:%s+1"), status)
      assert.is_truthy(status:find("Seccomp:%s+2"), status)
      local fds = h.lines(h.sh_ok("ls /proc/" .. w .. "/fd"))
      table.sort(fds, function(a, b) return tonumber(a) < tonumber(b) end)
      assert.are.same({ "0", "1", "2", "3" }, fds)
      assert.is_truthy(h.sh_ok("readlink /proc/" .. w .. "/fd/3"):find("^socket:"))
      local limits = read_proc(w, "limits")
      assert.is_truthy(limits:find("Max core file size%s+0%s+0"), limits)
      -- No HTTP, TLS or PostgreSQL client code in the process that runs the scripts: libcurl and
      -- libpq are opened only by a process that calls them (core/base/lazy_libs.c).
      local maps = read_proc(w, "maps")
      for _, lib in ipairs({ "libcurl", "libpq", "libssl", "libldap", "libgssapi" }) do
        assert.is_falsy(maps:find("/" .. lib, 1, true), "a worker has " .. lib .. " mapped")
      end
    end
    -- serve itself delivers: libcurl is there.
    assert.is_truthy(read_proc(pid, "maps"):find("/libcurl", 1, true))
    -- The parent has the key (it delivers), its workers never had it.
    assert.is_truthy(read_proc(pid, "environ"):find(KEY, 1, true))
  end)

  it("are replaced when one dies, and `returnflow status` says which and why", function()
    local dir = h.serve_dir()
    server = h.start_serve(dir)
    local first = h.wait_for(function() return mapworkers(server.pid)[1] end, 5)
    assert.is_truthy(first)
    os.execute("kill -ABRT " .. first)
    -- The next event needs a worker: a new one starts and maps it.
    assert.are.equal(202, (h.post_signed(server:url(), h.read(h.fixture_path("return.created.json")))))
    assert.is_truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 1") == 1
    end, 10), server:log())
    local second = mapworkers(server.pid)[1]
    assert.is_truthy(second and second ~= first)
    local out = h.sh_ok("cd " .. h.quote(dir) .. " && " .. h.quote(h.bin) .. " status")
    assert.is_truthy(out:find("mapping worker replaced 1 time%(s%), last at [%dT:%-]+Z: worker crashed: signal 6"), out)
    local health = h.curl("http://" .. server.address .. "/healthz")
    assert.is_truthy(health.json.workers.shop.last:find("signal 6", 1, true), health.body)
  end)
end)

describe("a config error", function()
  teardown(h.cleanup)

  local function serve_with(config_text, env)
    local dir = h.serve_dir()
    h.write(dir .. "/returnflow.conf.lua", config_text)
    local out, err, code = h.sh(string.format("cd %s && %s %s serve -c returnflow.conf.lua", h.quote(dir), env or "",
                                              h.quote(h.bin)))
    return out .. err, code
  end

  it("never prints a secret, even in Lua's own messages about the file", function()
    local cases = {
      'return { tenants = { shop = { webhook_secret = "' .. KEY .. '\n} } }',              -- unfinished string
      'return { tenants = { shop = { webhook_secret = "' .. KEY .. '" } } } }',            -- '}' expected near ...
      'local k = "' .. KEY .. '"\nreturn k()',                                              -- (local 'k') / constant
      'return ("' .. KEY .. '") + 1',
    }
    for _, text in ipairs(cases) do
      local output, code = serve_with(text)
      assert.are.equal(2, code, output)
      assert.is_falsy(output:find("SECRET", 1, true), "a secret in: " .. output)
      assert.is_truthy(output:find("returnflow.conf.lua:%d+:") or output:find("returnflow.conf.lua:"), output)
    end
  end)

  it("refuses a secret with a control character, wherever it comes from, and does not print it", function()
    local inline = serve_with('return { tenants = { shop = { scripts = "scripts", webhook_secret = "' .. KEY
                              .. '\\r\\nX-Injected: 1" } } }')
    assert.is_truthy(inline:find("tenants.shop.webhook_secret: must not contain control characters", 1, true), inline)
    local env = serve_with('return { tenants = { shop = { scripts = "scripts", webhook_secret = "s", klaviyo = '
                           .. '{ key = { env = "RF_KEY" } } } } }', "RF_KEY=\"$(printf '" .. KEY .. "\\nX: y')\"")
    assert.is_truthy(env:find("tenants.shop.klaviyo.key: environment variable RF_KEY: must not contain control", 1, true), env)
    for _, output in ipairs({ inline, env }) do assert.is_falsy(output:find("SECRET", 1, true), output) end
  end)
end)
