-- Faults of the store (issue 11): a disk that refuses writes while webhooks come in, while they are
-- mapped, and while Klaviyo's answers come back. The store refuses on purpose through the test VFS of
-- core/store/store_faults.c (RETURNFLOW_STORE_FAULTS names a file: "full", or "full map", "full
-- deliver" for one part's threads): no privileged mount needed.
--
-- Each case checks the three things an operator's worst week needs: nothing acknowledged is lost
-- (every 202 ends delivered), nothing is sent more often than its attempts (each unique_id reaches
-- the stand-in once, each row once per attempt), and the operator is told (/healthz 503 degraded
-- naming the part, /metrics, `returnflow status`, one log line per change of state), then ready again
-- by itself.
local h = require "helpers"

local PROBE = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Fault Probe", { return_id = ret.id }, { unique_id = "probe:" .. ret.id })
  end,
}
]]

local template
local function webhook(i)
  if not template then
    local ev = h.fixture("return.created.json")
    ev.id, ev.customer = "@ID@", "@EMAIL@"
    ev.customer_detail.email = "@EMAIL@"
    template = h.encode(ev)
  end
  return (template:gsub("@ID@", tostring(7100000 + i)):gsub("@EMAIL@", "fault+" .. i .. "@example.com"))
end

-- serve with the probe script, keyed to the stand-in, small backoffs, the fault file `faults`.
local function start(standin, before)
  local dir = h.tempdir()
  h.sh_ok("mkdir " .. h.quote(dir .. "/scripts"))
  h.write(dir .. "/scripts/10-probe.lua", PROBE)
  h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data",
  delivery = { backoff_max_seconds = 1 },
  tenants = { shop = { scripts = "scripts", webhook_secret = "spec-secret",
                       klaviyo = { key = "pk_spec_fault_key", base_url = %q } } },
}]], standin.url))
  local faults = h.write(dir .. "/faults", "")
  if before then before(dir) end
  return h.start_serve(dir, { RETURNFLOW_STORE_FAULTS = faults }), dir, faults
end

-- Holds DATA/delivery.lock, as a `returnflow send` delivering the folder does, until stopped.
local LOCK_PY = [[
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(300)
]]

local function post(server, i) return (h.post_signed(server:url(), webhook(i))) end

local function healthz(server)
  local r = h.curl("http://" .. server.address .. "/healthz")
  return r.status, r.json or {}
end

-- Waits for /healthz to say degraded; returns its body.
local function degraded(server)
  assert.truthy(h.wait_for(function()
    local s, b = healthz(server)
    return s == 503 and b.status == "degraded"
  end, 20), server:log())
  return select(2, healthz(server))
end

local function count(dir, where) return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE " .. where) end

-- Requests the stand-in got for /api/events, by unique_id (whatever it answered).
local function sends(standin)
  local j = h.curl(standin.url .. "/_standin/requests?path=/api/events").json
  local by, total = {}, 0
  for _, r in ipairs(j.requests or j) do
    local body = type(r.body) == "string" and h.decode(r.body) or r.body
    local uid = body and body.data and body.data.attributes and body.data.attributes.unique_id
    if uid then by[uid] = (by[uid] or 0) + 1; total = total + 1 end
  end
  return by, total
end

-- Every unique_id inside a bulk job's body, wherever it sits.
local function unique_ids(value, into)
  if type(value) ~= "table" then return into end
  for k, v in pairs(value) do
    if k == "unique_id" and type(v) == "string" then into[#into + 1] = v else unique_ids(v, into) end
  end
  return into
end

-- Requests the stand-in got for /api/events and in bulk jobs, by unique_id; and the bulk jobs.
local function all_sends(standin)
  local by, total = sends(standin)
  local j = h.curl(standin.url .. "/_standin/requests?path=/api/event-bulk-create-jobs").json
  local jobs = 0
  for _, r in ipairs(j.requests or j) do
    jobs = jobs + 1
    local body = type(r.body) == "string" and h.decode(r.body) or r.body
    for _, uid in ipairs(unique_ids(body, {})) do by[uid] = (by[uid] or 0) + 1; total = total + 1 end
  end
  return by, total, jobs
end

-- Every acknowledged webhook delivered, its unique_id sent at most once per attempt of its row.
local function assert_each_once(dir, standin, acked, bulk)
  local by, total = (bulk and all_sends or sends)(standin)
  local rows = h.sql_rows(dir, "SELECT json_extract(body, '$.data.attributes.unique_id'), attempts, state FROM outbox")
  assert.equal(#acked, #rows)
  for _, row in ipairs(rows) do
    local uid, attempts, state = row:match("^([^|]*)|(%d+)|(%d+)$")
    assert.equal("1", state, row)
    assert.truthy((by[uid] or 0) <= tonumber(attempts), row .. " sent " .. tostring(by[uid]))
  end
  for _, i in ipairs(acked) do assert.equal(1, by["probe:" .. (7100000 + i)], "probe " .. i) end
  return total
end

local function report(case, fields) io.stderr:write("[faults] ", case, ": ", h.encode(fields), "\n") end

describe("a store that refuses writes", function()
  local server, standin
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("during ingest: answers 503, says degraded, and is ready by itself once the disk has room", function()
    standin = h.start_standin()
    local dir, faults
    server, dir, faults = start(standin)
    h.write(faults, "full")
    for i = 1, 3 do assert.equal(503, post(server, i)) end
    local status, body = healthz(server)
    assert.equal(503, status)
    assert.equal("degraded", body.status)
    assert.truthy(tostring(body.store):find("journal: the disk is full", 1, true), h.encode(body))
    local metrics = h.curl("http://" .. server.address .. "/metrics").body
    assert.truthy(metrics:find("returnflow_store_degraded 1", 1, true), metrics)
    local said = h.run({ "status", "--data", dir .. "/data" })
    assert.truthy(said:find("store: degraded", 1, true), said)

    h.write(faults, "")
    assert.truthy(h.wait_for(function() return healthz(server) == 200 end, 20), server:log())
    local acked = {}
    for i = 1, 3 do assert.equal(202, post(server, i)); acked[#acked + 1] = i end
    assert.truthy(h.wait_for(function() return count(dir, "state = 1") == 3 end), server:log())
    local total = assert_each_once(dir, standin, acked)
    local log = server:log()
    local _, changes = log:gsub('"part":"journal"', "")
    assert.equal(2, changes, log)                        -- failing, then back: one line each
    report("ENOSPC during ingest", { refused = 3, acked = #acked, delivered = count(dir, "state = 1"), sends = total,
                                     healthz = body.status, status = said:match("store: [^\n]*") })
  end)

  it("during mapping: keeps the events journaled, maps them once the disk has room", function()
    standin = h.start_standin()
    local dir, faults
    server, dir, faults = start(standin)
    h.write(faults, "full map")
    local acked = {}
    for i = 1, 10 do assert.equal(202, post(server, i)); acked[#acked + 1] = i end
    local body = degraded(server)
    assert.truthy(tostring(body.store):find("mapping: the disk is full", 1, true), h.encode(body))
    assert.equal(0, count(dir, "1 = 1"))
    assert.equal(10, h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 0"))

    h.write(faults, "")
    assert.truthy(h.wait_for(function() return count(dir, "state = 1") == 10 end), server:log())
    assert.truthy(h.wait_for(function() return healthz(server) == 200 end, 20), server:log())
    local total = assert_each_once(dir, standin, acked)
    report("ENOSPC during mapping", { acked = #acked, delivered = count(dir, "state = 1"), sends = total,
                                      healthz = body.status })
  end)

  it("during delivery: sends nothing it cannot record, keeps Klaviyo's answers, records them later", function()
    standin = h.start_standin()
    local dir, faults
    server, dir, faults = start(standin)
    -- 20 requests held at the stand-in for a second and a half: the disk fills while they are out.
    local r = h.curl(standin.url .. "/_standin/faults", { body = { kind = "slow", delay_ms = 1500, count = 20,
                                                                    path = "/api/events" } })
    assert.equal(201, r.status, r.body)
    local acked = {}
    for i = 1, 20 do assert.equal(202, post(server, i)); acked[#acked + 1] = i end
    assert.truthy(h.wait_for(function() return count(dir, "state = 3") == 20 end), server:log())
    h.write(faults, "full deliver")
    local body = degraded(server)
    assert.truthy(tostring(body.store):find("delivery: the disk is full", 1, true), h.encode(body))
    -- More webhooks while delivery cannot record: journaled and mapped, not sent.
    for i = 21, 30 do assert.equal(202, post(server, i)); acked[#acked + 1] = i end
    assert.truthy(h.wait_for(function() return count(dir, "1 = 1") == 30 end), server:log())
    local _, during = sends(standin)

    h.write(faults, "")
    assert.truthy(h.wait_for(function() return count(dir, "state = 1") == 30 end), server:log())
    assert.truthy(h.wait_for(function() return healthz(server) == 200 end, 20), server:log())
    local total = assert_each_once(dir, standin, acked)
    assert.equal(30, total)
    local log = server:log()
    local _, changes = log:gsub('"part":"delivery"', "")
    assert.equal(2, changes, log)
    report("ENOSPC during delivery", { acked = #acked, delivered = count(dir, "state = 1"), sends = total,
                                       sent_while_full = during, healthz = body.status })
  end)

  it("during a bulk job: the job's rows are sent once, its answer kept and recorded once the disk has room", function()
    standin = h.start_standin()
    local dir, faults, holder
    -- Delivery waits behind a holder of DATA/delivery.lock (as beside `returnflow send`) until 200 rows
    -- are queued: a backlog, so they go as bulk jobs.
    server, dir, faults = start(standin, function(d)
      h.sh_ok("mkdir -p " .. h.quote(d .. "/data"))
      holder = h.spawn(h.quote(h.python) .. " -c " .. h.quote(LOCK_PY) .. " " .. h.quote(d .. "/data/delivery.lock"))
      assert.truthy(h.wait_for(function() return holder.output():find("locked", 1, true) end))
    end)
    local ok, err = pcall(function()
      local acked = {}
      for i = 1, 200 do assert.equal(202, post(server, i)); acked[#acked + 1] = i end
      assert.truthy(h.wait_for(function() return count(dir, "state = 0") == 200 end), server:log())
      -- Every bulk job is held at the stand-in for a second and a half: the disk fills while it is out.
      local r = h.curl(standin.url .. "/_standin/faults", { body = { kind = "slow", delay_ms = 1500, count = 10,
                                                                      path = "/api/event-bulk-create-jobs" } })
      assert.equal(201, r.status, r.body)
      holder.stop()
      assert.truthy(h.wait_for(function() return count(dir, "state = 3") >= 150 end), server:log())
      h.write(faults, "full deliver")
      local body = degraded(server)
      assert.truthy(tostring(body.store):find("delivery: the disk is full", 1, true), h.encode(body))
      -- The job's answer comes back while the disk is full (counted, not recorded: the rows stay in flight).
      assert.truthy(h.wait_for(function()
        local metrics = h.curl("http://" .. server.address .. "/metrics").body
        return metrics:find('returnflow_klaviyo_answers_total{tenant="shop",endpoint="bulk",status="202"}', 1, true)
      end), server:log())
      assert.equal(200, count(dir, "state = 3"))
      local _, during, jobs_during = all_sends(standin)

      h.write(faults, "")
      assert.truthy(h.wait_for(function() return count(dir, "state = 1") == 200 end, 30), server:log())
      assert.truthy(h.wait_for(function() return healthz(server) == 200 end, 20), server:log())
      local total = assert_each_once(dir, standin, acked, true)
      assert.equal(200, total)
      local _, _, jobs = all_sends(standin)
      assert.truthy(jobs >= 1, "no bulk job")
      assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE attempts > 1"))
      local log = server:log()
      local _, changes = log:gsub('"part":"delivery"', "")
      assert.equal(2, changes, log)
      report("ENOSPC during a bulk job", { acked = #acked, delivered = count(dir, "state = 1"), sends = total,
                                           bulk_jobs = jobs, sent_while_full = during, jobs_while_full = jobs_during,
                                           healthz = body.status })
    end)
    holder.stop()
    assert(ok, err)
  end)
end)
