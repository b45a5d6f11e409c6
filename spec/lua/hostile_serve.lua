-- The standing hostile-script suite under `returnflow serve` (format: spec/hostile/README.md and
-- the notes of the `map` runner, spec/lua/hostile_map.lua). Each case runs in a serve of its own
-- with two tenants: "victim" (the benign file and the hostile one) and "bystander" (the benign file
-- alone), both delivering to the Klaviyo stand-in; a second stand-in on loopback plays the attacker.
-- The runner posts the attack and the next events to the victim and, interleaved, the same three to
-- the bystander, then checks:
--   * serve is alive and answers throughout, and stops cleanly on SIGTERM (no signal, no sanitizer
--     report);
--   * the attack event's state and reason are what the header says (failed: a dead letter; harmless:
--     mapped; refused: the folder, dropped in by hot reload, is refused and the running one stays),
--     within the cap plus the watchdog's margin;
--   * the victim's next events left byte-identical requests in the outbox to a run with the benign
--     file alone, and the bystander's three events were all mapped within a bound;
--   * the stand-in got only requests on Klaviyo paths, and the attacker listener got none.
-- An extra header line, `-- serve: kill SIGNAL`, makes the runner send SIGNAL to the victim's worker
-- process once it is busy with the attack (simulating a memory fault in the worker's C); the event
-- must then fail with "worker crashed: signal N".
local h = require "helpers"
local hostile_cases = require "hostile_cases"
local lfs = require "lfs"

local HOSTILE = os.getenv("HOSTILE_DIR") or (h.root .. "/spec/hostile")   -- HOSTILE_DIR: another set of cases
local FIXTURES = h.root .. "/fixtures/loop"
local EVENTS = { "return.created.json", "return.updated.cancelled.json", "label.created.json" }
-- The watchdog kills a worker at twice the cap plus 1 s; a hot reload settles in 0.3 s; serve
-- restarts a worker in well under a second. More under a sanitizer or a busy machine.
local MARGIN = tonumber(os.getenv("HOSTILE_MARGIN") or "") or 15
local SIGNALS = { SEGV = 11, ABRT = 6, BUS = 7, ILL = 4, KILL = 9 }

local header = hostile_cases.header

local function body_of(name) return h.read(FIXTURES .. "/" .. name) end

-- The store is read in-process (helpers.lua: LuaSQL), not by a sqlite3 process per poll.
local sql_rows = h.sql_rows

-- The events of a tenant in journal order: { id, state, reason }.
local function events_of(dir, tenant)
  local list = {}
  for _, line in ipairs(sql_rows(dir, "SELECT id, state, coalesce(reason, '') FROM events WHERE tenant = '" .. tenant
                                     .. "' ORDER BY id")) do
    local id, state, reason = line:match("^(%d+)|(%d+)|(.*)$")
    list[#list + 1] = { id = tonumber(id), state = tonumber(state), reason = reason }
  end
  return list
end

-- What an event left in the outbox: its requests' method, path and body, in order, as one string.
local function outbox_of(dir, event_id)
  return table.concat(sql_rows(dir, "SELECT method || ' ' || path || ' ' || hex(b.body) FROM outbox o JOIN outbox_bodies b "
                                    .. "USING (id) WHERE event_id = " .. event_id .. " ORDER BY id"), "\n")
end

-- The pid of the victim's mapping worker (a child of serve: `returnflow __mapworker victim`).
local function worker_pid(serve_pid, tenant)
  local p = io.popen("ls /proc")
  for pid in p:lines() do
    if pid:match("^%d+$") then
      local stat = io.open("/proc/" .. pid .. "/stat")
      local cmd = io.open("/proc/" .. pid .. "/cmdline")
      local s, c = stat and stat:read("a") or "", cmd and cmd:read("a") or ""
      if stat then stat:close() end
      if cmd then cmd:close() end
      if s:match("^%d+ %b() %a (%d+)") == tostring(serve_pid) and c:find("__mapworker\0" .. tenant .. "\0", 1, true) then
        p:close()
        return pid
      end
    end
  end
  p:close()
end

local function cpu_ticks(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local rest = s:match("^%d+ %b() (.*)$")
  local fields = {}
  for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
  return tonumber(fields[12]) + tonumber(fields[13])     -- utime + stime
end

-- A folder with the two tenants' scripts and a config; hostile_path goes into the victim's folder.
local function case_dir(hostile_path, cap, klaviyo_url)
  local dir = h.tempdir()
  for _, t in ipairs({ "victim", "bystander" }) do
    assert(lfs.mkdir(dir .. "/" .. t))
    h.write(dir .. "/" .. t .. "/00-benign.lua", h.read(HOSTILE .. "/benign/00-benign.lua"))
  end
  if hostile_path then h.write(dir .. "/victim/50-hostile.lua", h.read(hostile_path)) end
  local klaviyo = string.format("{ key = 'pk_hostile_suite_key', base_url = %q }", klaviyo_url)
  h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data", workers = 2,
  caps = { time_ms = %d, memory_mib = 32 },
  tenants = {
    victim = { scripts = "victim", webhook_secret = "spec-secret", klaviyo = %s },
    bystander = { scripts = "bystander", webhook_secret = "spec-secret", klaviyo = %s },
  },
}]], math.floor(cap * 1000 + 0.5), klaviyo, klaviyo))
  return dir
end

local function settled(dir, tenant, n)
  local list = events_of(dir, tenant)
  if #list < n then return nil end
  for _, e in ipairs(list) do
    if e.state == 0 then return nil end
  end
  return list
end

-- The runner: spec/lua/hostile_serve_N_spec.lua runs shard N of 4 (each file its own busted process, so
-- the shards run side by side in the suite's pool).
return function(shard, shards)
  describe("hostile scripts under serve", function()
    local klaviyo, attacker, baseline
    local running = {}

    setup(function()
      klaviyo = h.start_standin({ "--no-limits", "--quiet" })
      attacker = h.start_standin({ "--quiet" })
      -- The victim with the benign file alone: what its three events leave in the outbox.
      local dir = case_dir(nil, 0.5, klaviyo.url)
      local server = h.start_serve(dir)
      running[#running + 1] = server
      for _, name in ipairs(EVENTS) do assert.are.equal(202, (h.post_signed(server:url("victim"), body_of(name)))) end
      local list = h.wait_for(function() return settled(dir, "victim", 3) end, 20)
      assert(list, "the benign run did not map its events:\n" .. server:log())
      baseline = {}
      for i, e in ipairs(list) do
        assert(e.state == 1, "benign event " .. i .. " not mapped: " .. e.reason)
        baseline[i] = outbox_of(dir, e.id)
      end
      server:stop()
    end)

    teardown(function()
      for _, s in ipairs(running) do if s:alive() then s:stop("KILL") end end
      if klaviyo then klaviyo.stop() end
      if attacker then attacker.stop() end
    end)

    -- The red team's cases run under serve in the normal build's suite only (HOSTILE_REDTEAM=0 in the
    -- sanitized one: a serve per case there would double the suite's time for cases map runs there too).
    for _, path in ipairs(hostile_cases.list(HOSTILE, shard, shards, os.getenv("HOSTILE_REDTEAM") ~= "0")) do
      local name = path:match("([^/]+)%.lua$")
      local hd = header(h.read(path))
      it(name .. " (" .. tostring(hd.expect) .. "): " .. tostring(hd.hostile), function()
        assert.is_truthy(hd.expect == "failed" or hd.expect == "refused" or hd.expect == "harmless", "bad header")
        local refused = hd.expect == "refused"
        -- A folder refused at load is dropped in by hot reload: serve starts on the benign one.
        local dir = case_dir(not refused and path or nil, hd.cap, klaviyo.url)
        local server = h.start_serve(dir)
        running[#running + 1] = server
        local shown = function() return "\nserve log:\n" .. server:log():sub(1, 4000) end

        if refused then
          local t0 = h.now()
          h.write(dir .. "/victim/50-hostile.lua", h.read(path))
          local status_file = dir .. "/data/scripts/victim/status.json"
          local status = h.wait_for(function()
            local f = io.open(status_file)
            local s = f and f:read("a") or ""
            if f then f:close() end
            return s:find('"refused"', 1, true) and h.decode(s)
          end, hd.cap * 2 + 10 + MARGIN)
          assert.is_truthy(status, "the folder was not refused" .. shown())
          assert.is_true(h.now() - t0 <= hd.cap * 2 + 10 + MARGIN, "the refusal took too long" .. shown())
          if hd.reason then
            assert.is_truthy(status.refused.error:find(hd.reason) or status.refused.error:find("worker killed"),
                             "reason /" .. hd.reason .. "/ not in: " .. status.refused.error)
          end
        end

        -- The attack and the next events, the bystander's interleaved.
        local posted = h.now()
        local pid
        for i, event in ipairs(EVENTS) do
          assert.are.equal(202, (h.post_signed(server:url("victim"), body_of(event))), shown())
          if i == 1 and hd.kill then
            pid = h.wait_for(function() return worker_pid(server.pid, "victim") end, 5)
            assert.is_truthy(pid, "no worker process for the victim" .. shown())
            local before = cpu_ticks(pid) or 0
            assert.is_truthy(h.wait_for(function() return (cpu_ticks(pid) or 0) >= before + 10 end, 5),
                             "the worker never got busy" .. shown())
            os.execute("kill -" .. hd.kill .. " " .. pid)
          end
          assert.are.equal(202, (h.post_signed(server:url("bystander"), body_of(event))), shown())
        end
        local bystander = h.wait_for(function() return settled(dir, "bystander", 3) end, 4 * (hd.cap * 2 + 1) + MARGIN + 5)
        assert.is_truthy(bystander, "the bystander's events were held up" .. shown())
        for _, e in ipairs(bystander) do assert.are.equal(1, e.state, "bystander: " .. e.reason .. shown()) end
        local victim = h.wait_for(function() return settled(dir, "victim", 3) end, 6 * (hd.cap * 2 + 1) + MARGIN + 5)
        assert.is_truthy(victim, "the victim's events did not settle" .. shown())
        -- The attack's worst case is the watchdog's hard bound (four deadlines, for a worker starved by a
        -- busy machine), then the next events; posting spawns a dozen processes.
        local bound = 4 * (hd.cap * 2 + 1) + 2 * (hd.cap * 2 + 1) + MARGIN + 5
        assert.is_true(h.now() - posted <= bound, ("took %.1f s, over %.1f s"):format(h.now() - posted, bound) .. shown())
        assert.is_true(server:alive(), "serve died" .. shown())

        local attack = victim[1]
        if hd.expect == "failed" then
          assert.are.equal(2, attack.state, "the attack was not a dead letter: " .. attack.reason .. shown())
          assert.is_truthy(#attack.reason > 0, "no reason")
          if hd.kill then
            local want = "worker crashed: signal " .. SIGNALS[hd.kill]
            assert.is_truthy(attack.reason:find(want, 1, true), "reason: " .. attack.reason)
          elseif hd.reason then
            assert.is_truthy(attack.reason:find(hd.reason), "reason /" .. hd.reason .. "/ not in: " .. attack.reason)
          end
        else
          assert.are.equal(1, attack.state, "the attack event did not map: " .. attack.reason .. shown())
          if refused then assert.are.equal(baseline[1], outbox_of(dir, attack.id), "the refused version mapped it") end
        end
        assert.are.equal(baseline[2], outbox_of(dir, victim[2].id), "the next event changed" .. shown())
        assert.are.equal(baseline[3], outbox_of(dir, victim[3].id), "the next event changed" .. shown())

        -- A worker that died is on record: /healthz names it with the reason, /metrics counts it.
        if hd.kill then
          local health = h.curl("http://" .. server.address .. "/healthz")
          assert.are.equal(200, health.status)
          assert.is_truthy(health.json.workers and health.json.workers.victim, health.body)
          assert.is_truthy(health.json.workers.victim.last:find("signal " .. SIGNALS[hd.kill], 1, true), health.body)
          local metrics = h.curl("http://" .. server.address .. "/metrics").body
          assert.is_truthy(metrics:find('returnflow_worker_restarts_total{tenant="victim",cause="crash"} 1', 1, true), metrics)
          local new_pid = worker_pid(server.pid, "victim")
          assert.is_truthy(new_pid and new_pid ~= pid, "no new worker")
        end

        -- Nothing went anywhere but Klaviyo's paths at the stand-in; the attacker heard nothing.
        assert.are.equal(0, (h.curl(attacker.url .. "/_standin/stats").json or {}).requests or 0, "the attacker was called")
        local stats = h.curl(klaviyo.url .. "/_standin/stats").json
        for endpoint in pairs(stats.by_endpoint or {}) do
          assert.is_truthy(endpoint:match("^%u+ /api/[%w%-]+") or endpoint:match("^%u+ /client/[%w%-]+"),
                           "a request to " .. endpoint)
        end
        local log = server:stop()
        assert.is_truthy(log:find('"msg":"stopped"', 1, true), "serve did not stop cleanly" .. shown())
      end)
    end
  end)
end
