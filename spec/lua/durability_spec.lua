-- `returnflow serve` under stress, end to end: the service, the Klaviyo stand-in and the clients as
-- real processes on loopback. What Loop relies on: a 202 means the webhook survives anything, kill -9
-- included, and reaches Klaviyo; no client, however slow, and no tenant, however broken its scripts,
-- holds up the others; past the connection cap the service says 503 and recovers.
--
-- Scale: the kill -9 run posts 20,000 webhooks under `make stress` (8,000 under `make test`; fewer in the
-- ASan+UBSan build and on PostgreSQL) and kills the service 5 times (most of its time is delivery: the
-- deliverer sends at most 32 requests a 50 ms tick). RETURNFLOW_DURABILITY_SEED replays one run's
-- kill moments; every failure message of that run names its seed.
local h = require "helpers"

local SECRET = "spec-secret"
local LOAD_POST = h.root .. "/spec/tools/load_post.py"
local SLOW_CLIENT = h.root .. "/spec/tools/slow_client.py"
local FIXTURE = h.fixture_path("return.created.json")

-- One event per webhook, its unique_id and a property carrying the webhook's id: the stand-in keeps
-- one per unique_id, so a webhook posted twice (its 202 lost to a kill) counts once.
local PROBE_SCRIPT = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Durability Probe", { webhook = ret.id }, { unique_id = "webhook:" .. ret.id })
  end,
}
]]

-- A script that never returns: the run-time cap has to end every event.
local SPIN_SCRIPT = [[
return {
  ["return.created"] = function()
    local n = 0
    while true do n = n + 1 end
  end,
}
]]

local own_pid = h.own_pid

-- The mapping thread a tenant lands on among n (core/service/worker.c: FNV-1a of its id, modulo n).
local function thread_of(tenant, n)
  local hash = 2166136261
  for i = 1, #tenant do hash = ((hash ~ tenant:byte(i)) * 16777619) & 0xffffffff end
  return hash % n
end

-- A folder with `scripts` folders ({ name = { file = source } }) and a config whose body is `conf`
-- (a Lua table constructor's fields, formatted by the caller).
local function service_dir(scripts, conf)
  local dir = h.tempdir()
  for name, files in pairs(scripts) do
    h.sh_ok("mkdir -p " .. h.quote(dir .. "/" .. name))
    for file, text in pairs(files) do h.write(dir .. "/" .. name .. "/" .. file, text) end
  end
  h.write(dir .. "/returnflow.conf.lua", "return {\n  listen = \"127.0.0.1:0\", data = \"data\",\n" .. conf .. "\n}\n")
  return dir
end

local function keyed(standin, extra)
  return string.format('{ key = "pk_spec_durability_key", base_url = %q%s }', standin.url, extra or "")
end

local function standin_stats(standin)
  return h.curl(standin.url .. "/_standin/stats").json
end

-- The unique_ids the stand-in accepted (each at most once: it dedups), as id -> times seen.
local function standin_webhooks(standin)
  local r = h.curl(standin.url .. "/_standin/events", { timeout = 60 })
  assert(r.status == 200, "the stand-in's events: " .. r.status .. " " .. r.stderr)
  local seen, n = {}, 0
  for id in r.body:gmatch('"unique_id":%s*"webhook:([^"]+)"') do
    seen[id] = (seen[id] or 0) + 1
    n = n + 1
  end
  return seen, n
end

-- Every row of a one-column query, as a list of strings.
local function sql_column(dir, sql)
  return h.sql_rows(dir, sql)
end

-- Runs spec/tools/load_post.py to the end (no kills); returns its summary.
local function post_many(server, tenant, count, first_id)
  local address = h.write(h.tempdir() .. "/address", server.address)
  local out = h.sh_ok(string.format("%s %s --address-file %s --fixture %s --secret %s --tenant %s --count %d "
                                    .. "--first-id %d --clients 2 --deadline 30",
                                    h.quote(h.python), h.quote(LOAD_POST), h.quote(address), h.quote(FIXTURE),
                                    h.quote(SECRET), tenant, count, first_id))
  return h.decode(out)
end

-- A webhook of its own (return.created with its own id and customer), as JSON text.
local function webhook(id)
  local ev = h.fixture("return.created.json")
  ev.id, ev.customer = tostring(id), "durability+" .. id .. "@example.com"
  ev.customer_detail.email = ev.customer
  return h.encode(ev)
end

-- POSTs a signed webhook with curl; returns the curl record (status, seconds, body).
local function post_timed(server, body, tenant)
  return h.curl(server:url(tenant), { body = body, timeout = 10,
    headers = { ["Content-Type"] = "application/json", ["X-Loop-Signature"] = h.loop_signature(body, SECRET) } })
end

-- Waits until the process `pid` is gone entirely, as a supervisor does before a restart: after a
-- kill its main thread may show as a zombie while its other threads still exit, holding the store's
-- files (and SQLite's locks) open; init reaps it only once they are done.
local function gone(pid)
  for _ = 1, 200 do
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if not f then return end
    f:close()
    h.sleep(0.02)
  end
  error("process " .. pid .. " still there 4 s after kill -9")
end

-- Polls fn every `step` seconds until it returns a true value (at most `seconds`); returns that value.
local function poll(fn, seconds, step)
  local deadline = h.now() + seconds
  repeat
    local v = fn()
    if v then return v end
    h.sleep(step)
  until h.now() > deadline
  return fn()
end

local function metric(server, line)
  local text = h.curl("http://" .. server.address .. "/metrics").body
  return tonumber(text:match(h.literal(line) .. " (%d+)"))
end

describe("returnflow serve under stress", function()
  local servers, procs, standins = {}, {}, {}

  local function start(dir)
    local s = h.start_serve(dir)
    servers[#servers + 1] = s
    return s
  end
  local function spawn(cmdline)
    local p = h.spawn(cmdline)
    procs[#procs + 1] = p
    return p
  end
  local function standin()
    local s = h.start_standin({ "--no-limits", "--quiet" })
    standins[#standins + 1] = s
    return s
  end

  after_each(function()
    for _, p in ipairs(procs) do p.stop() end
    for _, s in ipairs(servers) do if s:alive() then s:stop("KILL") end end
    for _, s in ipairs(standins) do s.stop() end
    servers, procs, standins = {}, {}, {}
  end)
  teardown(h.cleanup)

  it("loses no acknowledged webhook across kill -9 under load: each reaches Klaviyo once", function()
    -- Under `make stress` 20,000 webhooks in the normal build on SQLite; the sanitized one, several times
    -- slower per webhook, proves the same recovery paths under ASan with 8,000, and so does PostgreSQL
    -- (durability_pg_spec.lua, where the server's CPU is most of the cost). Under `make test` 8,000 and
    -- 5,000: five kills and a backlog all the same (RETURNFLOW_DURABILITY_N sets any).
    local count = (h.asan or h.backend == "pg") and h.size("RETURNFLOW_DURABILITY_N", 8000, 5000)
                  or h.size("RETURNFLOW_DURABILITY_N", 20000, 8000)
    local kills = 5
    local seed = tonumber(os.getenv("RETURNFLOW_DURABILITY_SEED") or os.time())
    math.randomseed(seed)
    local run = string.format("(seed %d, %d webhooks, %d kills)", seed, count, kills)
    local klaviyo = standin()
    local dir = service_dir({ probe = { ["10-probe.lua"] = PROBE_SCRIPT } }, string.format([[
  tenants = { shop = { scripts = "probe", webhook_secret = %q, klaviyo = %s } },]],
      SECRET, keyed(klaviyo, ", rate_scale = 100")))
    local address_file = dir .. "/address"
    local function publish(server)       -- atomically, for the load generator to re-read
      h.write(address_file .. ".tmp", server.address)
      assert(os.rename(address_file .. ".tmp", address_file))
    end
    -- Kill moments: when the acked count passes random marks between 3 % and 85 % of the load, plus a
    -- random 0-100 ms, so kills fall during commits, answers, mapping and delivery alike.
    local marks = {}
    for i = 1, kills do marks[i] = math.random(math.floor(count * 0.03), math.floor(count * 0.85)) end
    table.sort(marks)

    local server = start(dir)
    publish(server)
    local acked_file, progress_file = dir .. "/acked", dir .. "/progress"
    local load = spawn(string.format("%s %s --address-file %s --fixture %s --secret %s --count %d --clients 8 "
                                     .. "--deadline 85 --acked %s --progress %s --watch-pid %s",
                                     h.quote(h.python), h.quote(LOAD_POST), h.quote(address_file), h.quote(FIXTURE),
                                     h.quote(SECRET), count, h.quote(acked_file), h.quote(progress_file), own_pid()))
    local killed, lives = 0, 1
    while load.alive() do
      local f = io.open(progress_file, "r")
      local acked = f and f:read("n") or 0
      if f then f:close() end
      if killed < kills and acked >= marks[killed + 1] then
        assert(server:alive(), "the service died by itself " .. run .. ":\n" .. server:log())
        h.sleep(string.format("%.3f", math.random() * 0.1))
        server:stop("KILL")
        gone(server.pid)
        killed = killed + 1
        assert(os.rename(server.err, string.format("%s/serve.%d.err", dir, lives)))
        lives = lives + 1
        server = start(dir)
        publish(server)
      else
        h.sleep(0.02)
      end
    end
    local summary = h.decode(load.output():match("[^\n]+") or "null")

    assert.equal(kills, killed, "the load ended before every kill " .. run)
    assert.equal(count, summary.acked, "webhooks acked " .. run .. ": " .. h.encode(summary))
    assert.same({}, summary.refused, run)
    assert.truthy(summary.retried > 0, "no kill interrupted a client " .. run .. ": " .. h.encode(summary))

    -- The last life of the service maps and delivers what is left: nothing journaled stays unmapped,
    -- nothing queued stays unsent (an outbox row is marked delivered after the stand-in's 2xx).
    local delivered = poll(function()
      return h.sql_count(dir, "SELECT count(*) FROM events WHERE state = 0") == 0
             and h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state <> 1") == 0   -- queued or in flight
    end, 60, 0.25)
    local log = server:stop("TERM")
    local logs = {}
    for i = 1, lives - 1 do                     -- killed lives: no sanitizer report before the kill
      logs[i] = h.read(string.format("%s/serve.%d.err", dir, i))
      h.assert_no_sanitizer_report(logs[i], "returnflow serve, life " .. i)
    end
    logs[lives] = log
    -- Every writer waits on the store's lock (issue 11): no life says the store stayed busy or locked.
    for i, text in ipairs(logs) do
      for line in text:gmatch("[^\n]+") do
        assert.falsy(line:find("stays busy", 1, true) or line:find("stayed locked", 1, true),
                     "life " .. i .. " " .. run .. ": " .. line)
      end
    end
    assert.truthy(log:find('"msg":"stopped"', 1, true), log)
    assert.truthy(delivered, "not everything was mapped and sent within 60 s " .. run .. ": "
                  .. h.encode(standin_stats(klaviyo)))

    -- Every acked webhook is journaled, and its event reached Klaviyo once.

    local acked = {}
    for _, id in ipairs(h.lines(h.read(acked_file))) do
      assert.is_nil(acked[id], "acked twice: " .. id)
      acked[id] = true
    end
    local journaled, rows = {}, 0
    for _, id in ipairs(sql_column(dir, "SELECT json_extract(body, '$.id') FROM events WHERE tenant = 'shop'")) do
      journaled[id] = true
      rows = rows + 1
    end
    local at_klaviyo, accepted = standin_webhooks(klaviyo)
    local lost, undelivered, twice, stray, distinct = {}, {}, {}, {}, 0
    for id in pairs(acked) do
      if not journaled[id] then lost[#lost + 1] = id end
      if not at_klaviyo[id] then undelivered[#undelivered + 1] = id end
    end
    for id, n in pairs(at_klaviyo) do
      if n > 1 then twice[#twice + 1] = id end
      if not journaled[id] then stray[#stray + 1] = id end
    end
    for _ in pairs(journaled) do distinct = distinct + 1 end
    local function some(list) table.sort(list); return #list .. " " .. table.concat(list, " ", 1, math.min(#list, 10)) end
    assert.equal(0, #lost, "acked but not journaled " .. run .. ": " .. some(lost))
    assert.equal(0, #undelivered, "acked but not at Klaviyo " .. run .. ": " .. some(undelivered))
    assert.equal(0, #twice, "one webhook, two events at Klaviyo " .. run .. ": " .. some(twice))
    assert.equal(0, #stray, "events at Klaviyo from no webhook " .. run .. ": " .. some(stray))
    assert.equal(distinct, accepted, run)
    -- Duplicates only at the HTTP level: rows of a webhook re-posted after a lost 202 (and requests
    -- re-sent after a kill) are there, and Klaviyo's dedup by unique_id absorbed them.
    assert.truthy(rows >= distinct, run)
    assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM events WHERE state <> 1"), run)
    assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state <> 1"), run)
    -- Thousands of webhooks make a backlog, and a backlog goes in bulk jobs: fewer requests than events.
    local stats = standin_stats(klaviyo)
    local bulk_jobs = (stats.by_endpoint["POST /api/event-bulk-create-jobs"] or {})["202"] or 0
    assert.truthy(bulk_jobs > 0 and stats.requests < accepted,
                  run .. ": " .. h.encode(stats))
    -- Each request sent in a bulk job keeps the job (its first request, its size) for `returnflow trace`:
    -- rows of one job are never more than its size, and a job no kill interrupted has them all.
    local jobs = sql_column(dir, "SELECT bulk_job, count(*), max(bulk_size), min(bulk_size), min(event_id) FROM outbox "
                                 .. "WHERE bulk_job IS NOT NULL GROUP BY bulk_job")
    local whole, traced
    for _, j in ipairs(jobs) do
      local first, n, size, smallest, event = j:match("^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)$")
      n, size = tonumber(n), tonumber(size)
      assert.truthy(n <= size and size > 1 and tonumber(smallest) > 1, run .. ": bulk job " .. j)
      if n == size and not whole then whole = { first = tonumber(first), size = size, event = event } end
    end
    assert.truthy(whole, run .. ": no bulk job whole in the store: " .. table.concat(jobs, "; ", 1, math.min(#jobs, 10)))
    local t = h.decode((h.run({ "trace", "--event", whole.event, "--json", table.unpack(h.store_args(dir)) })))
    for _, e in ipairs(t.events) do
      for _, r in ipairs(e.requests) do
        if r.bulk_job and r.bulk_job.first_request == whole.first then traced = r.bulk_job end
      end
    end
    assert.same({ first_request = whole.first, size = whole.size }, traced, run)
  end)

  it("answers normal clients promptly while slowloris clients trickle, and closes those at the timeouts", function()
    local server = start(h.serve_dir({ secret = SECRET }))     -- timeouts: header 2 s, body 2 s, idle 5 s
    local slow = spawn(string.format("%s %s --address %s --mode headers --mode body --connections 10 --interval 1 "
                                     .. "--hold 8", h.quote(h.python), h.quote(SLOW_CLIENT), server.address))
    assert.truthy(h.wait_for(function() return slow.output():find("^connected 20\n") end, 5), h.read(slow.err))
    -- Post while the trickling connections are surely still open (they close at ~2 s): as many as fit
    -- in 1.5 s, at least 5, each answered well before a blocked request could be (it would wait ~2 s).
    local opened = h.now()
    local slowest, posts = 0, 0
    while posts < 20 and h.now() - opened < 1.5 do
      posts = posts + 1
      local r = post_timed(server, webhook(910000000 + posts))
      assert.equal(202, r.status, r.body)
      slowest = math.max(slowest, r.seconds)
    end
    assert.truthy(posts >= 5, "only " .. posts .. " posts overlapped the slow clients")
    assert.truthy(slowest < 1.0, "a normal webhook waited " .. slowest .. " s")

    assert.truthy(h.wait_for(function() return not slow.alive() end, 12), "the slow client outlived --hold")
    local report = h.decode(slow.output():match("\n([^\n]+)\n$"))
    assert.equal(20, #report.connections)
    for _, c in ipairs(report.connections) do
      assert.truthy(c.closed_by_server, "a " .. c.mode .. " trickler was held open: " .. h.encode(c))
      assert.truthy(c.seconds >= 1.8 and c.seconds < 3.5, "closed after " .. c.seconds .. " s: " .. h.encode(c))
      assert.falsy(c.answer:find("202", 1, true), c.answer)
    end
    assert.equal(20, metric(server, 'returnflow_webhooks_total{outcome="timeout"}'))
    assert.equal(202, post_timed(server, webhook(910000099)).status)
    server:stop()
    assert.equal(posts + 1, h.sql_count(server.dir, "SELECT count(*) FROM events"))
  end)

  it("delivers one tenant's events promptly while another tenant's scripts loop forever", function()
    assert.are_not.equal(thread_of("spinner", 2), thread_of("prompt", 2))   -- one mapping thread each
    local klaviyo = standin()
    local dir = service_dir({ spin = { ["10-spin.lua"] = SPIN_SCRIPT }, probe = { ["10-probe.lua"] = PROBE_SCRIPT } },
                            string.format([[
  workers = 2, caps = { time_ms = 50 },
  tenants = {
    spinner = { scripts = "spin", webhook_secret = %q, klaviyo = %s },
    prompt = { scripts = "probe", webhook_secret = %q, klaviyo = %s },
  },]], SECRET, keyed(klaviyo), SECRET, keyed(klaviyo)))
    local server = start(dir)

    local spun = post_many(server, "spinner", 60, 920000000)     -- 60 events x 50 ms of CPU cap: 3 s at least
    assert.equal(60, spun.acked, h.encode(spun))
    local posted = post_many(server, "prompt", 10, 930000000)
    local sent = h.now()
    assert.equal(10, posted.acked, h.encode(posted))
    assert.truthy(posted.seconds < 4, "ingest waited for the spinning tenant: " .. h.encode(posted))
    assert.truthy(h.wait_for(function() return standin_stats(klaviyo).events_accepted == 10 end, 10),
                  h.encode(standin_stats(klaviyo)))
    local took = h.now() - sent
    local spinning = h.sql_count(dir, "SELECT count(*) FROM events WHERE tenant = 'spinner' AND state = 0")
    assert.truthy(took < 4, "the prompt tenant's events took " .. took .. " s")
    assert.truthy(spinning > 0, "the spinning tenant was done before the prompt one was delivered")

    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM events WHERE tenant = 'spinner' AND state = 2") == 60
    end, 120), server:log())          -- 3 s of CPU caps at least; a generous deadline for a busy machine
    local reasons = sql_column(dir, "SELECT reason FROM events WHERE tenant = 'spinner'")
    for _, reason in ipairs(reasons) do assert.truthy(reason:find("cap:", 1, true), reason) end
    assert.equal(10, h.sql_count(dir, "SELECT count(*) FROM events WHERE tenant = 'prompt' AND state = 1"))
    local at_klaviyo, accepted = standin_webhooks(klaviyo)
    assert.equal(10, accepted)
    for i = 0, 9 do assert.truthy(at_klaviyo[tostring(930000000 + i)], i) end
    server:stop()
  end)

  it("answers 503 past max_connections, and serves again once connections close", function()
    local dir = service_dir({ scripts = { ["10-probe.lua"] = PROBE_SCRIPT } }, string.format([[
  max_connections = 4, timeouts = { header = 10, body = 10, idle = 10 },
  tenants = { shop = { scripts = "scripts", webhook_secret = %q } },]], SECRET))
    local server = start(dir)
    local holders = spawn(string.format("%s %s --address %s --mode idle --connections 4 --hold 2",
                                        h.quote(h.python), h.quote(SLOW_CLIENT), server.address))
    assert.truthy(h.wait_for(function() return holders.output():find("^connected 4\n") end, 5), h.read(holders.err))
    h.sleep(0.2)                                          -- the service has accepted all four

    for _ = 1, 3 do
      local r = h.curl("http://" .. server.address .. "/healthz")
      assert.equal(503, r.status, r.stderr)
      assert.truthy(r.body:find("too many connections", 1, true), r.body)
      assert.equal("1", r.headers["retry-after"])
    end
    assert.equal(503, post_timed(server, webhook(940000001)).status)

    assert.truthy(h.wait_for(function() return not holders.alive() end, 5))
    local report = h.decode(holders.output():match("\n([^\n]+)\n$"))
    for _, c in ipairs(report.connections) do      -- the cap refuses newcomers, it evicts nobody
      assert.falsy(c.closed_by_server, h.encode(c))
    end
    local r = h.wait_for(function()
      local answer = post_timed(server, webhook(940000002))
      return answer.status == 202 and answer
    end, 3)
    assert.truthy(r, "still refused once the connections closed")
    assert.equal(200, h.curl("http://" .. server.address .. "/healthz").status)
    server:stop()
    assert.equal(1, h.sql_count(dir, "SELECT count(*) FROM events"))
  end)
end)
