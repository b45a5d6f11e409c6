-- Volume, end to end (issue 6): bulk delivery under serve, `returnflow send` (a backfill from files:
-- paced, interrupted and resumed, rerun, dry, live, beside serve), `replay` through changed scripts and
-- `test-integration`, against the Klaviyo stand-in at Klaviyo's real rate limits (bulk: 10/s, 150/min).
-- The stand-in validates every body against Klaviyo's OpenAPI spec and keeps only the first event of a
-- profile, metric and unique_id, so "present once" is read from what it accepted and what it dropped.
--
-- Scale: send backfills N return.created variants: under `make stress` 10,000 (2,000 in the ASan build,
-- whose binary path holds "asan", and 3,000 on PostgreSQL, volume_pg_spec.lua); under `make test` 2,500
-- (1,200 and 1,500): the same paths, two bulk jobs of 1,000 events included, at a fraction of the CPU
-- (helpers' M.size; RETURNFLOW_VOLUME_N overrides). The interrupt moments are random:
-- RETURNFLOW_VOLUME_SEED replays one run's, and every failure names it.
local h = require "helpers"

local N = (h.asan and h.size("RETURNFLOW_VOLUME_N", 2000, 1200))
          or (h.backend == "pg" and h.size("RETURNFLOW_VOLUME_N", 3000, 1500))
          or h.size("RETURNFLOW_VOLUME_N", 10000, 2500)
local SEED = tonumber(os.getenv("RETURNFLOW_VOLUME_SEED") or "") or os.time()
math.randomseed(SEED)

local DAY = 86400
local function iso(offset) return os.date("!%Y-%m-%dT%H:%M:%S+00:00", os.time() + offset) end
-- A return made yesterday: its day-21 and day-28 reminders are still ahead, so it sends one event. A
-- return of two months ago: both reminders are due, so a backfill sends them too once all input is read.
local RECENT, OLD = iso(-DAY), iso(-60 * DAY)

------------------------------------------------------------------------------------------------------
-- inputs

-- A fixture as a template: the function it returns gives the fixture's JSON text for another return
-- (id) of another customer (email), made at created_at.
local function variants(name)
  local ev = h.fixture(name)
  ev.id, ev.customer, ev.created_at = "@ID@", "@EMAIL@", "@CREATED@"
  ev.customer_detail.email = "@EMAIL@"
  local text = h.encode(ev)
  return function(id, email, created_at)
    return (text:gsub("@ID@", id):gsub("@EMAIL@", email):gsub("@CREATED@", created_at))
  end
end

local function email(prefix, i) return prefix .. "+" .. i .. "@example.com" end

-- n return.created variants as NDJSON (ids first+1 .., emails prefix+i@example.com); the first `old`
-- were made two months ago. Returns the file and the requests it makes: one each, two more an old one.
local function returns_file(n, prefix, first, old)
  local created, lines = variants("return.created.json"), {}
  for i = 1, n do
    lines[i] = created(tostring(first + i), email(prefix, i), i <= (old or 0) and OLD or RECENT)
  end
  return h.tempfile(table.concat(lines, "\n") .. "\n", ".ndjson"), n + 2 * (old or 0)
end

------------------------------------------------------------------------------------------------------
-- processes

-- returnflow run in dir (its config returnflow.conf.lua and data folder are there).
local function rf(dir, args)
  local parts = { "cd", h.quote(dir), "&&", "exec", h.quote(h.bin) }
  for _, a in ipairs(args) do parts[#parts + 1] = h.quote(a) end
  local cmdline = table.concat(parts, " ")
  local out, err, code = h.sh(cmdline)
  h.assert_no_sanitizer_report(err, cmdline)
  return out, err, code
end

local running = {}

-- returnflow started in dir in the background: { pid, done(), code(), err(), kill(signal) }. Its exit
-- status is written by the shell that waits for it.
local function start_bg(dir, args)
  local run = h.tempdir()
  local parts = { h.quote(h.bin) }
  for _, a in ipairs(args) do parts[#parts + 1] = h.quote(a) end
  local script = string.format("cd %s || exit; %s </dev/null >%s 2>%s & echo $! >%s.tmp && mv %s.tmp %s; wait $!; "
                               .. "echo $? >%s.tmp && mv %s.tmp %s", h.quote(dir), table.concat(parts, " "),
                               h.quote(run .. "/out"), h.quote(run .. "/err"), h.quote(run .. "/pid"),
                               h.quote(run .. "/pid"), h.quote(run .. "/pid"), h.quote(run .. "/rc"),
                               h.quote(run .. "/rc"), h.quote(run .. "/rc"))
  os.execute("sh -c " .. h.quote(script) .. " >/dev/null 2>&1 &")
  local proc = {}
  proc.pid = h.wait_for(function()
    local f = io.open(run .. "/pid")
    local pid = f and f:read("l")
    if f then f:close() end
    return pid
  end)
  assert(proc.pid, "the background returnflow did not start")
  h.track(proc.pid)                   -- stopped at the end of the run, should this spec fail first
  running[#running + 1] = proc
  function proc.code()
    local f = io.open(run .. "/rc")
    local code = f and f:read("n")
    if f then f:close() end
    return code
  end
  function proc.done() return proc.code() ~= nil end
  function proc.err() return h.read(run .. "/err") end
  function proc.kill(signal) os.execute("kill -" .. signal .. " " .. proc.pid .. " 2>/dev/null") end
  return proc
end

-- A process holding DATA/delivery.lock, as a `returnflow send` delivering that folder does: serve
-- queues what it receives and delivers nothing until release().
local LOCK_PY = [[
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(300)
]]
local function hold_delivery_lock(data_dir)
  h.sh_ok("mkdir -p " .. h.quote(data_dir))
  local holder = h.spawn(h.quote(h.python) .. " -c " .. h.quote(LOCK_PY) .. " " .. h.quote(data_dir .. "/delivery.lock"))
  assert(h.wait_for(function() return holder.output():find("locked", 1, true) end), "could not take the lock")
  running[#running + 1] = { kill = function() holder.stop() end }
  return holder
end

------------------------------------------------------------------------------------------------------
-- what the stand-in accepted, what the store holds

-- Every event the stand-in accepted, in its order: { email, metric, uid, backfill, key }. Read with
-- Python: tens of thousands of events with their properties are too slow for dkjson.
local EVENTS_PY = [[
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_standin/events", timeout=120) as r:
    events = json.load(r)["events"]
for e in events:
    p = e.get("profile") or {}
    print("\t".join([(p.get("email") or "").lower(), e["metric"], e.get("unique_id") or "",
                     "1" if e.get("backfill") else "0"]))
]]

local function record(email_, metric, uid)
  return email_ .. " | " .. metric .. " | " .. uid
end

local function accepted(standin)
  local out = h.sh_ok(h.quote(h.python) .. " -c " .. h.quote(EVENTS_PY) .. " " .. h.quote(standin.url))
  local list = {}
  for _, line in ipairs(h.lines(out)) do
    local e, metric, uid, backfill = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([01])$")
    list[#list + 1] = { email = e, metric = metric, uid = uid, backfill = backfill == "1", key = record(e, metric, uid) }
  end
  return list
end

local function stats(standin) return h.curl(standin.url .. "/_standin/stats").json end

-- The 429 answers the stand-in gave, in all, and where ("POST /api/...: n").
local function throttled(st)
  local n, where = 0, {}
  for route, counts in pairs(st.by_endpoint) do
    if counts["429"] then
      n = n + counts["429"]
      where[#where + 1] = route .. ": " .. counts["429"]
    end
  end
  return n, table.concat(where, ", ")
end

-- Requests the stand-in answered on one route, by status ("202" -> n).
local function answers(st, route) return st.by_endpoint[route] or {} end

local function db(dir) return dir .. "/data/returnflow.db" end

-- The outbox's event requests where `where` holds, in journal order (the event they came from, then
-- the order the scripts made them): { email, metric, uid, state, key }.
local function outbox_events(dir, where)
  local sql = "SELECT lower(json_extract(body, '$.data.attributes.profile.data.attributes.email')) || char(9) || "
              .. "json_extract(body, '$.data.attributes.metric.data.attributes.name') || char(9) || "
              .. "json_extract(body, '$.data.attributes.unique_id') || char(9) || state FROM outbox WHERE "
              .. (where or "1 = 1") .. " ORDER BY event_id, id"
  local list = {}
  for _, line in ipairs(h.sql_rows(dir, sql)) do
    local e, metric, uid, state = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(%d+)$")
    list[#list + 1] = { email = e, metric = metric, uid = uid, state = tonumber(state), key = record(e, metric, uid) }
  end
  return list
end

-- A number from the store, or nil while the store or its tables are not there yet.
local function try_count(dir, sql)
  local ok, n = pcall(h.sql_count, dir, sql)
  return ok and n or nil
end

-- Keys of `list` seen more than once, and the set of keys.
local function repeats(list)
  local seen, twice = {}, {}
  for _, e in ipairs(list) do
    if seen[e.key] then twice[#twice + 1] = e.key end
    seen[e.key] = true
  end
  return twice, seen
end

-- Keys of `a` missing from the set `b` (at most 5, for a message).
local function missing(a, b)
  local out = {}
  for _, e in ipairs(a) do
    if not b[e.key] and #out < 5 then out[#out + 1] = e.key end
  end
  return out
end

-- "send: 10000 events read: 10000 mapped, 0 dropped, 0 failed" and the requests line, as numbers.
local function summary(err, kind)
  kind = kind or "send"
  local s = {}
  s.read, s.mapped, s.dropped, s.failed = err:match(kind .. ": (%d+) events? read[^:]*: (%d+) mapped, (%d+) dropped, "
                                                    .. "(%d+) failed")
  s.delivered, s.dead, s.queued, s.present = err:match(kind .. ": requests: (%d+) delivered, (%d+) dead letters, "
                                                       .. "(%d+) queued, (%d+) already present")
  for k, v in pairs(s) do s[k] = tonumber(v) end
  return s
end

-- A folder with the default scripts and a config for tenant "shop" with a private key, delivering to
-- the stand-in.
local function keyed_dir(standin)
  return h.serve_dir({ klaviyo = string.format('{ key = "pk_spec_volume_key", base_url = %q }', standin.url) })
end

------------------------------------------------------------------------------------------------------

describe("volume", function()
  local standins, servers = {}, {}

  local function standin()
    local s = h.start_standin()                   -- Klaviyo's real limits
    standins[#standins + 1] = s
    return s
  end
  local function serve(dir)
    local s = h.start_serve(dir)
    servers[#servers + 1] = s
    return s
  end

  after_each(function()
    for _, p in ipairs(running) do p.kill("KILL") end
    for _, s in ipairs(servers) do if s:alive() then s:stop("KILL") end end
    for _, s in ipairs(standins) do s.stop() end
    running, servers, standins = {}, {}, {}
  end)
  teardown(h.cleanup)

  it("serve sends a backlog in bulk jobs: every event once, each profile's in journal order", function()
    -- 500 customers, one return each; every tenth return is then reviewed (out of stock) and closed
    -- by later webhooks: 600 webhooks, 750 requests (created 1, review 2, closed 3).
    local created, review, closed = variants("return.created.json"),
                                    variants("return.updated.review_out_of_stock.json"),
                                    variants("return.updated.closed.json")
    local list = {}
    for p = 1, 500 do
      local id, who = tostring(5100000 + p), email("bulk", p)
      list[#list + 1] = { slot = p, text = created(id, who, RECENT) }
      if p % 10 == 0 then
        list[#list + 1] = { slot = p + 100.5, text = review(id, who, RECENT) }
        list[#list + 1] = { slot = p + 200.5, text = closed(id, who, RECENT) }
      end
    end
    table.sort(list, function(a, b) return a.slot < b.slot end)
    local bodies = {}
    for i, w in ipairs(list) do bodies[i] = w.text end
    local file = h.tempfile(table.concat(bodies, "\n") .. "\n", ".ndjson")

    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    local holder = hold_delivery_lock(dir .. "/data")    -- so the 600 pile up before delivery starts
    local server = serve(dir)
    local _, err, code = rf(dir, { "post", "-q", "-c", "returnflow.conf.lua", server:url(), file })
    assert.equal(0, code, err)
    assert.truthy(h.wait_for(function() return try_count(dir, "SELECT count(*) FROM events WHERE state = 1") == 600 end,
                             60), server:log())
    assert.equal(750, h.sql_count(dir, "SELECT count(*) FROM outbox"))
    assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state <> 0"), "delivered while locked")
    holder.stop()
    assert.truthy(h.wait_for(function() return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1") == 750 end,
                             90), server:log())

    local st = stats(klaviyo)
    assert.truthy((answers(st, "POST /api/event-bulk-create-jobs")["202"] or 0) >= 1, h.encode(st.by_endpoint))
    local got, want = accepted(klaviyo), outbox_events(dir)
    assert.equal(0, st.events_deduplicated, "an event was sent twice")
    assert.equal(#want, #got)
    local twice, got_set = repeats(got)
    assert.same({}, twice)
    assert.same({}, missing(want, got_set))
    -- Per profile, the stand-in's order is the journal's.
    local sent, journal = {}, {}
    for _, e in ipairs(got) do
      sent[e.email] = sent[e.email] or {}
      table.insert(sent[e.email], e.metric .. " " .. e.uid)
    end
    for _, e in ipairs(want) do
      journal[e.email] = journal[e.email] or {}
      table.insert(journal[e.email], e.metric .. " " .. e.uid)
    end
    local triples = 0
    for who, seq in pairs(journal) do
      if #seq > 1 then triples = triples + 1 end
      assert.same(seq, sent[who], who)
    end
    assert.equal(50, triples)
    local log = server:stop()
    assert.truthy(log:find("another process delivers this data folder", 1, true), log)
    assert.falsy(log:find("stays busy", 1, true) or log:find("stayed locked", 1, true), log)   -- issue 11
  end)

  it("dead-letters exactly the two items a bulk job's 400 names, and delivers the rest once", function()
    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    -- Two returns whose customer gets a phone number Klaviyo refuses (not E.164).
    h.write(dir .. "/scripts/95-bad-phone.lua", [[
local loop = require "returnflow.loop"

local BAD = { ["5200060"] = true, ["5200120"] = true }

return {
  ["*"] = function(ev, out)
    if BAD[loop.return_id(ev)] then out:identify{ email = loop.email(ev), phone_number = "12" } end
  end,
}
]])
    local file, expected = returns_file(150, "phone", 5200000)
    local _, err, code = rf(dir, { "send", "--tenant", "shop", file })
    assert.equal(1, code, err)                          -- dead letters
    local s = summary(err)
    assert.same({ 148, 2, 0 }, { s.delivered, s.dead, s.queued }, err)
    assert.truthy(err:find("Invalid phone number", 1, true), err)

    -- The store: exactly the two chosen returns' requests are dead, with the item's error.
    local dead = h.sql_rows(dir,
      "SELECT json_extract(b.body, '$.data.attributes.properties.return_id') FROM outbox o JOIN outbox_bodies b "
      .. "USING (id) WHERE o.state = 2 ORDER BY 1")
    assert.same({ "5200060", "5200120" }, dead)
    assert.equal(expected - 2, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1"))
    local list = rf(dir, { "dlq", "list", "-c", "returnflow.conf.lua" })
    local ids = {}
    for line in list:gmatch("[^\n]+") do
      if line:find("Invalid phone", 1, true) then ids[#ids + 1] = line:match("(request:%d+)") end
    end
    assert.equal(2, #ids, list)

    -- Klaviyo's side: one bulk job was refused naming both, the other 148 arrived once.
    local refused = h.curl(klaviyo.url .. "/_standin/requests?path=/api/event-bulk-create-jobs").json.requests
    local with_bad = 0
    for _, r in ipairs(refused) do
      if r.status == 400 then
        local n, emails = 0, {}
        for _, item in ipairs(r.body.data.attributes["events-bulk-create"].data) do
          emails[#emails + 1] = item.attributes.profile.data.attributes.email
          n = n + #item.attributes.events.data
        end
        local joined = table.concat(emails, " ")
        assert.truthy(joined:find(email("phone", 60), 1, true) and joined:find(email("phone", 120), 1, true), joined)
        assert.truthy(n > 2, "the refused job held only the bad items")
        with_bad = with_bad + 1
      end
    end
    assert.equal(1, with_bad)
    local got, want = accepted(klaviyo), outbox_events(dir, "state = 1")
    assert.equal(expected - 2, #got)
    assert.equal(0, stats(klaviyo).events_deduplicated)
    local twice, got_set = repeats(got)
    assert.same({}, twice)
    assert.same({}, missing(want, got_set))
    -- Each dead letter is the item the bulk job's answer named, not a single request refused later.
    local reasons = h.sql_rows(dir, "SELECT last_error FROM outbox WHERE state = 2")
    for _, why in ipairs(reasons) do
      assert.truthy(why:find("in a bulk job, for this item (/data/attributes/events-bulk-create/data/", 1, true), why)
    end
  end)

  it("send backfills N events at Klaviyo's real limits, each once with backfill: true; a rerun sends nothing", function()
    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    local file, expected = returns_file(N, "backfill", 6000000, 50)
    local started = h.now()
    local _, err, code = rf(dir, { "send", "--tenant", "shop", file })
    local seconds = h.now() - started
    assert.equal(0, code, err)
    local st = stats(klaviyo)
    local throttles, where = throttled(st)

    local got = accepted(klaviyo)
    assert.equal(expected, #got, err)
    assert.equal(0, st.events_deduplicated, "events sent twice")
    local twice, got_set = repeats(got)
    assert.same({}, twice)
    assert.same({}, missing(outbox_events(dir), got_set))
    local flows = 0
    for _, e in ipairs(got) do if not e.backfill then flows = flows + 1 end end
    assert.equal(0, flows, "events without backfill: true")
    local s = summary(err)
    assert.same({ N, N, 0, 0 }, { s.read, s.mapped, s.dropped, s.failed }, err)
    assert.same({ expected, 0, 0, 0 }, { s.delivered, s.dead, s.queued, s.present }, err)
    assert.truthy(err:find("every event carries backfill: true", 1, true), err)
    assert.truthy((answers(st, "POST /api/event-bulk-create-jobs")["202"] or 0) >= math.floor(N / 1000), h.encode(st))

    -- The same command again: everything is already present, nothing reaches Klaviyo.
    local _, again, code2 = rf(dir, { "send", "--tenant", "shop", file })
    assert.equal(0, code2, again)
    local s2 = summary(again)
    assert.same({ 0, 0, 0, expected }, { s2.delivered, s2.dead, s2.queued, s2.present }, again)
    assert.equal(st.requests, stats(klaviyo).requests, "the rerun sent requests")

    assert.equal(0, throttles, string.format("%d events in %.1f s: 429 from the stand-in (%s)", N, seconds, where))
  end)

  it("send paces a burst of bulk jobs to Klaviyo's limits (10/s): no 429", function()
    -- 15,000 events of one small metric: the store fills faster than 10 jobs a second can leave, so
    -- only the deliverer's pacing keeps the stand-in's one-second window under 10 bulk requests.
    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    h.sh_ok("rm -r " .. h.quote(dir .. "/scripts") .. " && mkdir " .. h.quote(dir .. "/scripts"))
    h.write(dir .. "/scripts/10-probe.lua", [[
return {
  ["return.created"] = function(ret, out)
    out:track("Volume Probe", { return_id = ret.id }, { unique_id = "probe:" .. ret.id })
  end,
}
]])
    local file, expected = returns_file(15000, "pace", 9000000)
    local started = h.now()
    local _, err, code = rf(dir, { "send", "--tenant", "shop", file })
    local seconds = h.now() - started
    assert.equal(0, code, err)
    local st = stats(klaviyo)
    assert.equal(expected, st.events_accepted)
    assert.truthy((answers(st, "POST /api/event-bulk-create-jobs")["202"] or 0) >= 14, h.encode(st.by_endpoint))
    local throttles, where = throttled(st)
    assert.equal(0, throttles, string.format("%d events in %.1f s: 429 from the stand-in (%s)", expected, seconds,
                                             where))
  end)

  local function interrupt_and_resume(signal)
    local klaviyo, dir, file, expected, args, job, why, stored
    -- Once the job has stored its first batch, a random moment: while reading, or while delivering.
    -- A moment past the job's end (a fast machine) is drawn again, from half the span, in a new folder;
    -- so is one that reached the job as it was finishing (it then ends 0, its work all done).
    local span, interrupted = 2500, false
    for _ = 1, 5 do
      klaviyo = standin()
      dir = keyed_dir(klaviyo)
      file, expected = returns_file(N, "resume", 7000000, 20)
      args = { "send", "--tenant", "shop", file }
      job = start_bg(dir, args)
      assert.truthy(h.wait_for(function()
        return (try_count(dir, "SELECT max(next_input) FROM jobs") or 0) > 0 or job.done()
      end, 60), job.err())
      local delay = math.random(0, span) / 1000
      why = string.format("(seed %d: SIG%s %.3f s after the first batch, %d events)", SEED, signal, delay, N)
      h.sleep(delay)
      stored = try_count(dir, "SELECT max(next_input) FROM jobs")
      if not job.done() then
        job.kill(signal)
        assert.truthy(h.wait_for(job.done, 30), why)
        interrupted = job.code() ~= 0 or not job.err():find("send: done in", 1, true)
        if interrupted then break end
      end
      span = span // 2
    end
    assert.truthy(interrupted, "the job ended before every moment drawn " .. why)
    local err = job.err()
    if signal == "INT" then
      h.assert_no_sanitizer_report(err, "send " .. why)
      assert.equal(130, job.code(), why .. "\n" .. err)
      assert.truthy(err:find("the same command with --resume continues there", 1, true), why .. "\n" .. err)
    else
      assert.equal(137, job.code(), why)
      assert.falsy(err:find("events read", 1, true), why .. "\n" .. err)
    end

    local _, resumed, code = rf(dir, { "send", "--resume", "--tenant", "shop", file })
    assert.equal(0, code, why .. "\n" .. resumed)
    assert.truthy(resumed:find("resuming after the %d+ events an earlier run stored"), why .. "\n" .. resumed)
    assert.equal(1, h.sql_count(dir, "SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL"), why)
    local got = accepted(klaviyo)
    local twice, got_set = repeats(got)
    assert.same({}, twice)
    local distinct = 0
    for _ in pairs(got_set) do distinct = distinct + 1 end
    local st = stats(klaviyo)
    assert.equal(expected, distinct, string.format("%s; %s events stored before the signal; %d deduplicated",
                                                   why, tostring(stored), st.events_deduplicated))
    assert.same({}, missing(outbox_events(dir), got_set))
    assert.equal(expected, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1"), why)
    for _, e in ipairs(got) do assert.truthy(e.backfill, why .. ": " .. e.key) end
  end

  it("send stopped by Ctrl-C at a random moment says --resume, and --resume completes it", function()
    interrupt_and_resume("INT")
  end)

  it("send killed -9 at a random moment is completed by --resume, nothing counted twice", function()
    interrupt_and_resume("KILL")
  end)

  it("replay after a metric's rename delivers the new metric for every journaled event", function()
    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    local file = returns_file(5, "replay", 8000000)
    local _, err, code = rf(dir, { "send", "--tenant", "shop", file })
    assert.equal(0, code, err)

    local path = dir .. "/scripts/10-returns.lua"
    local text, n = h.read(path):gsub('out:track%("Loop Return Created"', 'out:track("Loop Return Started"')
    assert.equal(1, n)
    h.write(path, text)
    local _, replayed, code2 = rf(dir, { "replay", "--tenant", "shop", "--since", os.date("!%Y-%m-%d") })
    assert.equal(0, code2, replayed)
    assert.truthy(replayed:find("replay: 5 events read", 1, true), replayed)

    local by = {}
    for _, e in ipairs(accepted(klaviyo)) do
      by[e.metric] = by[e.metric] or {}
      by[e.metric][e.email] = (by[e.metric][e.email] or 0) + 1
      assert.truthy(e.backfill, e.key)
    end
    for i = 1, 5 do
      assert.equal(1, (by["Loop Return Started"] or {})[email("replay", i)], email("replay", i))
      assert.equal(1, (by["Loop Return Created"] or {})[email("replay", i)], email("replay", i))
    end
    assert.equal(0, stats(klaviyo).events_deduplicated)
  end)

  it("test-integration sends every metric the default scripts emit, to the test profile", function()
    -- The fixtures in Loop's story order (cmd_send.c): a return, its labels, updates, closing.
    local order = { "return.created", "label.", "return.updated", "restock", "giftcard", "return.closed",
                    "return.processing" }
    local function rank(name)
      for i, prefix in ipairs(order) do if name:sub(1, #prefix) == prefix then return i end end
      return 99
    end
    local names = {}
    for line in h.sh_ok("ls " .. h.quote(h.root .. "/fixtures/loop")):gmatch("[^\n]+") do
      if line:match("%.json$") then names[#names + 1] = line end
    end
    table.sort(names, function(a, b)
      if rank(a) ~= rank(b) then return rank(a) < rank(b) end
      return a < b
    end)
    local paths = {}
    for i, name in ipairs(names) do paths[i] = h.root .. "/fixtures/loop/" .. name end
    local docs = h.map(paths)
    local want, nwant = {}, 0
    for _, d in ipairs(docs) do
      for _, list in ipairs({ h.metrics(d), h.scheduled_metrics(d) }) do
        for _, m in ipairs(list) do
          if not want[m] then want[m], nwant = true, nwant + 1 end
        end
      end
    end
    assert.truthy(nwant >= 10, h.encode(want))

    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    local _, err, code = rf(dir, { "test-integration", "--tenant", "shop", "--email", "integration-test@example.com" })
    assert.equal(0, code, err)
    local got = {}
    for _, e in ipairs(accepted(klaviyo)) do
      assert.equal("integration-test@example.com", e.email, e.key)
      assert.truthy(e.backfill, e.key)
      got[e.metric] = true
    end
    assert.same(want, got)
    assert.truthy(err:find("metrics sent", 1, true), err)
    for m in pairs(want) do assert.truthy(err:find("\n  " .. m .. " ", 1, true), m .. " not listed:\n" .. err) end
  end)

  it("send --dry prints what map prints and stores and sends nothing; --live warns and sends no backfill flag", function()
    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    local created = variants("return.created.json")
    local file = h.tempfile(table.concat({ created("8100001", email("dry", 1), OLD), created("8100002", email("dry", 2), RECENT),
                                           (h.read(h.fixture_path("giftcard.requested.json")):gsub("\n", " ")) }, "\n") .. "\n",
                            ".ndjson")
    local out, err, code = rf(dir, { "send", "--dry", "--tenant", "shop", file })
    assert.equal(0, code, err)
    local mapped = rf(dir, { "map", "--scripts", "scripts", "--tenant", "shop", "--backfill", file })
    assert.equal(3, #h.lines(out))
    assert.equal(mapped, out)
    assert.truthy(err:find("send: dry: nothing was stored or sent", 1, true), err)
    assert.falsy(io.open(db(dir)), "--dry made a store")
    assert.equal(0, stats(klaviyo).requests)

    local live = returns_file(3, "live", 8200000)
    local _, warned, code2 = rf(dir, { "send", "--live", "--tenant", "shop", live })
    assert.equal(0, code2, warned)
    assert.truthy(warned:find("--live: these events will trigger Klaviyo flows", 1, true), warned)
    assert.falsy(warned:find("every event carries backfill", 1, true), warned)
    local got = accepted(klaviyo)
    assert.equal(3, #got)
    for _, e in ipairs(got) do assert.falsy(e.backfill, e.key) end
  end)

  it("send beside a running serve leaves delivery to serve: each event once, both end cleanly", function()
    local klaviyo = standin()
    local dir = keyed_dir(klaviyo)
    local server = serve(dir)
    local file, expected = returns_file(300, "beside", 8300000)
    local _, err, code = rf(dir, { "send", "--tenant", "shop", file })
    assert.equal(0, code, err)
    -- SQLite: serve holds the data folder's delivery lock; PostgreSQL: serve is a node of the store's
    -- cluster, and the tenant's owner delivers
    local deferred = h.backend == "pg" and "the cluster's nodes deliver the requests"
                     or "another process delivers this data folder"
    assert.truthy(err:find(deferred, 1, true), err)
    local s = summary(err)
    assert.same({ expected, 0, 0 }, { s.delivered, s.dead, s.queued }, err)
    local metrics = h.curl("http://" .. server.address .. "/metrics").body
    assert.truthy(metrics:find('returnflow_requests_total{tenant="shop",outcome="delivered"} ' .. expected, 1, true),
                  metrics)
    local got = accepted(klaviyo)
    assert.equal(expected, #got)
    assert.equal(0, stats(klaviyo).events_deduplicated)
    assert.same({}, (repeats(got)))
    assert.truthy(server:alive())
    local log = server:stop()
    assert.falsy(server:alive())
    assert.truthy(log:find('"msg":"stopped"', 1, true), log)
  end)
end)
