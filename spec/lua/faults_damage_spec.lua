-- A damaged store (issue 11): a page overwritten with garbage, garbage in the log (WAL), and pages
-- that read back as garbage while serving. serve must never map on top of damage: it refuses to
-- start naming the file and what to do, or turns degraded at run time (503 to webhooks, so Loop keeps
-- them; /healthz, /metrics, the log and `returnflow status` say why); `returnflow store check` names
-- the damage and `returnflow store recover --into NEW_DATA` copies what can be read, naming each
-- acknowledged webhook it could not.
local h = require "helpers"

-- Small webhooks (a row of the journal fits in its page: a damaged page loses whole rows, never
-- part of one), each with a marker no request copies.
local template
local function webhook(i)
  if not template then
    local ev = h.fixture("label.created.json")
    ev.id, ev.damage_marker = "@ID@", "@MARK@"
    template = h.encode(ev)
  end
  return (template:gsub("@ID@", tostring(7200000 + i)):gsub("@MARK@", string.format("journal-row-%04d", i)))
end

local function run(args) return h.run(args) end

-- A dry serve folder with n webhooks journaled and mapped; stop: "TERM" (clean) or "KILL".
local function filled(n, stop, env)
  local dir = h.serve_dir()
  local server = h.start_serve(dir, env)
  for i = 1, n do assert.equal(202, (h.post_signed(server:url(), webhook(i)))) end
  assert.truthy(h.wait_for(function()
    return h.sql_count(dir, "SELECT count(*) FROM events WHERE state <> 0") == n
  end), server:log())
  server:stop(stop)
  return dir
end

-- Overwrites, in place, the page of `file` that holds `marker` (the store's pages are 4096 bytes).
local function garble_page_with(file, marker)
  local text = h.read(file)
  local at = assert(text:find(marker, 1, true), marker .. " not in " .. file)
  local page = (at - 1) // 4096
  local f = assert(io.open(file, "r+b"))
  f:seek("set", page * 4096)
  f:write(string.rep("\x5a", 4096))
  f:close()
end

local function serve_refuses(dir)
  -- A serve that does start is stopped after 30 s, and fails the spec.
  local out, err, code = h.sh(string.format("cd %s && exec timeout 30 %s serve -c returnflow.conf.lua", h.quote(dir),
                                            h.quote(h.bin)))
  h.assert_no_sanitizer_report(err, "serve")
  return code, out .. err
end

describe("a damaged store", function()
  teardown(h.cleanup)

  it("a damaged page: serve refuses to start naming the file; recover copies the rest and names the lost", function()
    local dir = filled(60, "TERM")
    garble_page_with(dir .. "/data/returnflow.db", "journal-row-0030")
    local code, said = serve_refuses(dir)
    assert.equal(1, code, said)
    assert.truthy(said:find("the store is damaged: data/returnflow.db", 1, true), said)
    assert.truthy(said:find("returnflow store recover --into NEW_DATA", 1, true), said)

    local checked, _, check_code = run({ "store", "check", "--data", dir .. "/data" })
    assert.equal(1, check_code, checked)
    assert.truthy(checked:find("damaged: ", 1, true), checked)

    local into = h.tempdir() .. "/new"
    local out, err, rc = run({ "store", "recover", "--data", dir .. "/data", "--into", into })
    assert.equal(1, rc, out .. err)
    local lost = {}
    for id in out:gmatch("lost: event (%d+)") do lost[#lost + 1] = tonumber(id) end
    assert.truthy(#lost >= 1, out)
    local events = tonumber(out:match("(%d+) events"))
    assert.equal(60, events + #lost, out)
    local clean, _, clean_code = run({ "store", "check", "--data", into })
    assert.equal(0, clean_code, clean)
    io.stderr:write("[faults] damaged page: ", h.encode({ acked = 60, recovered = events, lost_named = #lost,
                                                          serve = "refused to start", check = "damaged" }), "\n")
  end)

  it("garbage in the log: serve refuses to start instead of dropping the commits after it", function()
    local dir = filled(40, "KILL")
    local wal = dir .. "/data/returnflow.db-wal"
    local size = #h.read(wal)
    assert.truthy(size > 4 * 4120, "the log holds " .. size .. " bytes")
    local f = assert(io.open(wal, "r+b"))
    f:seek("set", 32 + 4120 + 24 + 100)                  -- inside the second frame's page
    f:write(string.rep("\x5a", 64))
    f:close()
    local code, said = serve_refuses(dir)
    assert.equal(1, code, said)
    assert.truthy(said:find("returnflow.db-wal: frame 2 of", 1, true), said)
    local checked, _, check_code = run({ "store", "check", "--data", dir .. "/data" })
    assert.equal(1, check_code, checked)
    io.stderr:write("[faults] garbage in the WAL: ", h.encode({ acked = 40, serve = "refused to start",
                                                                check = checked:match("damaged: [^\n]*") }), "\n")
  end)

  it("pages that read back as garbage while serving: degraded, webhooks answered 503, the reason told", function()
    local dir = h.serve_dir()
    local faults = h.write(dir .. "/faults", "")
    local server = h.start_serve(dir, { RETURNFLOW_STORE_FAULTS = faults })
    local ok, why = pcall(function()
      assert.equal(202, (h.post_signed(server:url(), webhook(1))))
      assert.truthy(h.wait_for(function()
        return h.sql_count(dir, "SELECT count(*) FROM events WHERE state <> 0") == 1
      end), server:log())
      h.write(faults, "garbage")
      -- The next read of a page finds garbage: the part that read it says the store is damaged.
      local n = 1
      assert.truthy(h.wait_for(function()
        n = n + 1
        h.post_signed(server:url(), webhook(n))
        local r = h.curl("http://" .. server.address .. "/healthz")
        return r.status == 503 and r.json and r.json.status == "degraded"
      end, 60), server:log())                    -- a deadline for a loaded machine, not a wait
      h.write(faults, "")
      assert.equal(503, (h.post_signed(server:url(), webhook(3))))       -- damage stays until a restart
      local r = h.curl("http://" .. server.address .. "/healthz")
      assert.truthy(tostring(r.json.store):find("damaged", 1, true), r.body)
      local metrics = h.curl("http://" .. server.address .. "/metrics").body
      assert.truthy(metrics:find("returnflow_store_damaged 1", 1, true), metrics)
      local said = h.run({ "status", "--data", dir .. "/data" })
      assert.truthy(said:find("store: damaged", 1, true), said)
      assert.truthy(server:log():find("the store is damaged", 1, true), server:log())
      io.stderr:write("[faults] garbage pages while serving: ", h.encode({ healthz = r.json.status, store = r.json.store,
                                                                          status = said:match("store: [^\n]*") }), "\n")
    end)
    server:stop()
    assert(ok, why)
  end)
end)
