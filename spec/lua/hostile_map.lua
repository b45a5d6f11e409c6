-- The standing hostile-script suite under `returnflow map` (format: spec/hostile/README.md).
-- Each case's scripts folder holds the benign neighbour and the hostile file; map runs the attack
-- event and then two next events with the case's caps set. The checks: the run ends within the
-- cap plus the margin, with no signal and no sanitizer report; the attack event's status and
-- reason are what the header says; the next events' output is byte-identical to the output with
-- the benign file alone, so nothing of the attack leaked into a later event.
local h = require "helpers"
local hostile_cases = require "hostile_cases"

local HOSTILE = h.root .. "/spec/hostile"
local FIXTURES = h.root .. "/fixtures/loop"
local EVENTS = { FIXTURES .. "/return.created.json", FIXTURES .. "/return.updated.cancelled.json",
                 FIXTURES .. "/label.created.json" }
-- What a run may take beyond its per-event cap: loading twice (a spoiled state is reloaded), the
-- two next events and process start, on a machine that may be busy (the caps count CPU time, the
-- check wall time); more under a sanitizer (HOSTILE_MARGIN=seconds).
local MARGIN = tonumber(os.getenv("HOSTILE_MARGIN") or "") or 20
-- A sanitized build runs scripts several times slower: a harmless case that burns part of its cap in a
-- normal build would break it there, so the suite multiplies harmless cases' caps (HOSTILE_CAP_SCALE).
local HARMLESS_SCALE = tonumber(os.getenv("HOSTILE_CAP_SCALE") or "") or 1

local header = hostile_cases.header

-- Runs map over the three events in a folder holding the benign file and `hostile` (or not).
local function run_map(hostile_path, cap)
  local dir = h.tempdir()
  h.write(dir .. "/00-benign.lua", h.read(HOSTILE .. "/benign/00-benign.lua"))
  if hostile_path then h.write(dir .. "/50-hostile.lua", h.read(hostile_path)) end
  local parts = { "timeout", "-s", "KILL", tostring(math.ceil(cap + MARGIN + 10)), h.quote(h.bin), "map", "-s",
                  h.quote(dir), "--time-cap", tostring(math.floor(cap * 1000 + 0.5)), "--memory-cap", "32" }
  for _, e in ipairs(EVENTS) do parts[#parts + 1] = h.quote(e) end
  local t0 = h.now()
  local stdout, stderr, code = h.sh(table.concat(parts, " "))
  local elapsed = h.now() - t0
  os.execute("rm -rf " .. h.quote(dir))
  return stdout, stderr, code, elapsed
end

-- The runner: spec/lua/hostile_map_N_spec.lua runs shard N of 2 (each file its own busted process, so
-- the shards run side by side in the suite's pool).
return function(shard, shards)
  describe("hostile scripts under map", function()
    local baseline
    setup(function()
      local stdout, stderr, code = run_map(nil, 0.5)
      assert(code == 0, "the benign file alone must map: " .. stderr)
      baseline = h.lines(stdout)
      assert(#baseline == 3, stdout)
    end)

    for _, path in ipairs(hostile_cases.list(HOSTILE, shard, shards)) do
      local name = path:match("([^/]+)%.lua$")
      local hd = header(h.read(path))
      it(name .. " (" .. tostring(hd.expect) .. "): " .. tostring(hd.hostile), function()
        assert.is_truthy(hd.hostile, "header line 'hostile:' missing")
        assert.is_truthy(hd.expect == "failed" or hd.expect == "refused" or hd.expect == "harmless",
                         "header 'expect:' must be failed, refused or harmless")
        if hd.expect == "harmless" then hd.cap = hd.cap * HARMLESS_SCALE end
        local stdout, stderr, code, elapsed = run_map(path, hd.cap)
        local shown = ("exit %d after %.2f s\nstdout:\n%s\nstderr:\n%s"):format(code, elapsed,
                                                                             stdout:sub(1, 3000), stderr:sub(1, 3000))
        h.assert_no_sanitizer_report(stderr, name)
        -- What a script says reaches the log escaped and cut: no terminal escape, no flood.
        assert.is_falsy(stderr:find("\27", 1, true), "a raw escape character reached stderr: " .. shown)
        assert.is_true(#stderr < 64 * 1024, ("%d bytes on stderr"):format(#stderr))
        assert.is_true(code < 128, "killed by a signal or the timeout: " .. shown)
        assert.is_true(elapsed <= hd.cap + MARGIN,
                       ("took %.2f s, over cap %.2f + %d s: "):format(elapsed, hd.cap, MARGIN) .. shown)
        if hd.expect == "refused" then
          assert.are.equal(2, code, shown)
          if hd.reason then assert.is_truthy(stderr:find(hd.reason), "reason /" .. hd.reason .. "/ not in: " .. shown) end
          return
        end
        local docs = h.lines(stdout)
        assert.are.equal(3, #docs, shown)
        local attack = h.decode(docs[1])
        if hd.expect == "failed" then
          assert.are.equal(1, code, shown)
          assert.are.equal("failed", attack.status, shown)
          assert.is_truthy(type(attack.reason) == "string" and #attack.reason > 0, "no reason: " .. shown)
          if hd.reason then
            assert.is_truthy(attack.reason:find(hd.reason), "reason /" .. hd.reason .. "/ not in: " .. attack.reason)
          end
          assert.is_true(#attack.reason <= 2100, "the reason is not cut: " .. #attack.reason .. " bytes")
        else
          assert.are.equal("mapped", attack.status, shown)
        end
        assert.are.equal(baseline[2], docs[2], "the next event changed: " .. shown)
        assert.are.equal(baseline[3], docs[3], "the next event changed: " .. shown)
      end)
    end
  end)

  -- Loading attacks that one hostile file cannot stage, what the scripts folder holds: the first shard's.
  if shard ~= 1 then return end
  describe("hostile scripts folders under map and check", function()
    local function folder()
      local dir = h.tempdir()
      os.execute("cp " .. h.quote(HOSTILE .. "/benign/00-benign.lua") .. " " .. h.quote(dir))
      return dir
    end

    -- Under a timeout: a folder that blocks the load (a FIFO) must fail the spec, not hang it.
    local function timed(args)
      local parts = { "timeout", "-s", "KILL", "60", h.quote(h.bin) }
      for _, a in ipairs(args) do parts[#parts + 1] = h.quote(a) end
      local t0 = h.now()
      local stdout, stderr, code = h.sh(table.concat(parts, " "))
      h.assert_no_sanitizer_report(stderr, table.concat(args, " "))
      return stdout, stderr, code, h.now() - t0
    end

    it("refuses a FIFO in the folder at once instead of blocking on it", function()
      local dir = folder()
      assert(os.execute("mkfifo " .. h.quote(dir .. "/40-pipe.lua")))
      local _, stderr, code, took = timed({ "map", "-s", dir, EVENTS[1] })
      assert.are.equal(2, code, stderr)
      assert.matches("not a regular file", stderr)
      assert.is_true(took < MARGIN, ("took %.2f s"):format(took))
      _, stderr, code = timed({ "check", dir })
      assert.are.equal(1, code, stderr)
      assert.matches("40%-pipe%.lua.*not a regular file", stderr)
    end)

    it("refuses a symbolic link out of the folder", function()
      local dir = folder()
      assert(os.execute("ln -s /etc/hostname " .. h.quote(dir .. "/40-link.lua")))
      local _, stderr, code = timed({ "map", "-s", dir, EVENTS[1] })
      assert.are.equal(2, code, stderr)
      assert.matches("symbolic link out of the scripts folder", stderr)
    end)

    it("bounds the load of 30 files each just under the cap by a total budget", function()
      local dir = folder()
      for i = 1, 30 do
        h.write(("%s/%02d-slow.lua"):format(dir, 10 + i),
                "local t0 = os.clock() while os.clock() - t0 < 0.45 do end return {}\n")
      end
      -- CPU time, not wall time: the budget is CPU time, and the machine running the specs may be busy.
      local _, stderr, code = h.sh(("timeout -s KILL 120 /usr/bin/time -f 'cpu %%U %%S' %s map -s %s --time-cap 500 %s"):format(
        h.quote(h.bin), h.quote(dir), h.quote(EVENTS[1])))
      assert.are.equal(2, code, stderr)
      assert.matches("total load cap", stderr)
      local user, sys = stderr:match("cpu ([%d.]+) ([%d.]+)")
      local cpu = tonumber(user) + tonumber(sys)
      assert.is_true(cpu < 3, ("took %.2f s of CPU (30 files x 0.45 s would be 13.5 s)"):format(cpu))
    end)
  end)
end
