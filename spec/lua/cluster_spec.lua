-- Several nodes on one PostgreSQL (issue 15, docs/scale-out.md): any node takes any webhook, each
-- tenant is mapped and delivered by the one node holding its lease, and a node killed with kill -9
-- loses its tenants to the live nodes within the lease's bound.
--
-- Three nodes (node-a, node-b, node-c) on a private PostgreSQL (pg.lua), six tenants on the Klaviyo
-- stand-in with its real rate limits, each tenant its own key. 8 clients post COUNT webhooks
-- round-robin to the nodes at RATE a second (a webhook whose node is dead goes to the next node, as a
-- load balancer would send it); while they post, two nodes are killed with kill -9 at random moments,
-- one after the other, and each is started again once its tenants resumed elsewhere. Then:
-- every acknowledged webhook reached the stand-in (lost = 0; the stand-in keeps one event per
-- unique_id, and counts the copies it dropped), each profile's events arrived in the order of their
-- webhooks' acknowledgements, no answer was a 429, and every tenant is owned by exactly one live node.
-- Resume time: from the kill to the first request of the dead node's tenants delivered after another
-- node took their leases (bound: 15 s).
--
-- Scale: the issue's run is 20,000 webhooks; on the 2-core machine that runs the whole suite (three
-- nodes, PostgreSQL and the stand-in share the cores) the spec posts 3,000 at 75 a second under `make
-- stress` (40 s of posting, about a minute in all), 2,000 under `make test` (27 s of posting: room for
-- both kills and their resumes). RETURNFLOW_CLUSTER_COUNT and RETURNFLOW_CLUSTER_RATE scale it;
-- RETURNFLOW_CLUSTER_SEED replays one run's kill moments.
local h = require "helpers"
local pg = require "pg"

local COUNT = h.size("RETURNFLOW_CLUSTER_COUNT", 3000, 2000)
local RATE = tonumber(os.getenv("RETURNFLOW_CLUSTER_RATE") or "75")
local SEED = tonumber(os.getenv("RETURNFLOW_CLUSTER_SEED") or tostring(os.time()))
local CLIENTS = 8
local SECRET = "spec-secret"
local NODES = { "node-a", "node-b", "node-c" }
local TENANTS = { "t1", "t2", "t3", "t4", "t5", "t6" }
local RESUME_BOUND = 15
local CLUSTER_POST = h.root .. "/spec/tools/cluster_post.py"

-- One event per webhook: its unique_id names the webhook, so a webhook posted twice (its 202 lost to
-- a kill) or sent twice (a request in flight on the killed node) counts once at the stand-in.
local PROBE = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Cluster Probe", { webhook = ret.id }, { unique_id = "webhook:" .. ret.id })
  end,
}
]]

local function node_dir(name, url, standin)
  local dir = h.tempdir()
  h.sh_ok("mkdir -p " .. h.quote(dir .. "/scripts"))
  h.write(dir .. "/scripts/10-probe.lua", PROBE)
  local tenants = {}
  for _, t in ipairs(TENANTS) do
    tenants[#tenants + 1] = string.format('    %s = { scripts = "scripts", webhook_secret = %q, '
                                          .. 'klaviyo = { key = "pk_cluster_%s", base_url = %q } },', t, SECRET, t,
                                          standin.url)
  end
  h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data", node = %q,
  store = { url = %q },
  tenants = {
%s
  },
}
]], name, url, table.concat(tenants, "\n")))
  return dir
end

local function healthz(server)
  local r = h.curl("http://" .. server.address .. "/healthz", { timeout = 5 })
  return r.json or {}
end

-- tenant -> list of the live nodes whose /healthz says they own it.
local function owners(servers)
  local by = {}
  for _, t in ipairs(TENANTS) do by[t] = {} end
  for i, s in pairs(servers) do
    if s:alive() then
      for _, t in ipairs(healthz(s).owns or {}) do table.insert(by[t], NODES[i]) end
    end
  end
  return by
end

local function each_owned_once(servers)
  local by = owners(servers)
  for _, t in ipairs(TENANTS) do if #by[t] ~= 1 then return false, by end end
  return true, by
end

-- The lease lines of every node's log, for a failure's message.
local function lease_log(servers)
  local lines = {}
  for i, s in pairs(servers) do
    for line in s:log():gmatch("[^\n]+") do
      if line:find('"msg":"lease', 1, true) or line:find("leases", 1, true) then lines[#lines + 1] = NODES[i] .. " " .. line end
    end
  end
  return table.concat(lines, "\n")
end

local function write_nodes(path, servers)
  local lines = {}
  for i = 1, #NODES do lines[i] = servers[i] and servers[i].address or "127.0.0.1:1" end
  h.write(path .. ".tmp", table.concat(lines, "\n") .. "\n")
  os.rename(path .. ".tmp", path)
end

local function progress(path)
  local f = io.open(path, "r")
  local n = f and tonumber((f:read("l") or ""):match("^(%d+)")) or 0
  if f then f:close() end
  return n
end

local function throttled(standin)
  local st = h.curl(standin.url .. "/_standin/stats").json
  local n = 0
  for _, counts in pairs(st.by_endpoint) do n = n + (counts["429"] or 0) end
  return n, st
end

describe("a cluster of three nodes on one PostgreSQL", function()
  local db, standin, servers, load, sql = nil, nil, {}, nil, nil
  teardown(function()
    if load then load.stop() end
    for _, s in pairs(servers) do if s:alive() then s:stop("KILL") end end
    if standin then standin.stop() end
    if sql then sql:close() end
    if db then db:stop() end
    h.cleanup()
  end)

  it("delivers every acknowledged webhook once, in order, through two kill -9s", function()
    math.randomseed(SEED)
    local says = "(seed " .. SEED .. ")"
    db = pg.start()
    standin = h.start_standin({ "--quiet" })
    local dirs = {}
    for i, name in ipairs(NODES) do
      dirs[i] = node_dir(name, db.url, standin)
      servers[i] = h.start_serve(dirs[i])
    end
    sql = db:connect()
    local function delivered_of(tenants)
      local list = {}
      for _, t in ipairs(tenants) do list[#list + 1] = "'" .. t .. "'" end
      local cur = assert(sql:execute("SELECT count(*) FROM outbox WHERE state = 1 AND tenant IN ("
                                     .. table.concat(list, ",") .. ")"))
      local n = tonumber(cur:fetch())
      cur:close()
      return n
    end
    local function taken_from(node, tenants)
      local cur = assert(sql:execute("SELECT count(*) FROM leases WHERE tenant IN ('" .. table.concat(tenants, "','")
                                     .. "') AND node <> '" .. node .. "' AND expires_at > "
                                     .. "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"))
      local n = tonumber(cur:fetch())
      cur:close()
      return n == #tenants
    end
    assert.truthy(h.wait_for(function() return each_owned_once(servers) end, 30),
                  "every tenant owned at the start " .. h.encode(owners(servers)))

    local nodes_file = h.tempdir() .. "/nodes"
    write_nodes(nodes_file, servers)
    local out = h.tempdir()
    load = h.spawn(string.format("%s %s --nodes-file %s --fixture %s --secret %s --tenants %s --count %d "
                                 .. "--clients %d --rate %g --acked %s --progress %s --watch-pid %s",
                                 h.quote(h.python), h.quote(CLUSTER_POST), h.quote(nodes_file),
                                 h.quote(h.fixture_path("return.created.json")), SECRET, table.concat(TENANTS, ","),
                                 COUNT, CLIENTS, RATE, h.quote(out .. "/acked"), h.quote(out .. "/progress"),
                                 h.own_pid()))

    -- Two kills at random moments of the posting, each of a node that owns tenants, one after the other.
    local resumes, posting = {}, COUNT / RATE
    local killed = {}
    for k = 1, 2 do
      local at = (k == 1 and 0.10 or 0.55) * posting + math.random() * 0.2 * posting
      h.wait_for(function() return progress(out .. "/progress") >= at * RATE end, posting + 30)
      local candidates = {}
      for i, s in ipairs(servers) do
        if not killed[i] and #(healthz(s).owns or {}) > 0 then candidates[#candidates + 1] = i end
      end
      assert.truthy(#candidates > 0, "a node owning tenants to kill " .. says)
      local victim = candidates[math.random(#candidates)]
      killed[victim] = true
      local theirs = healthz(servers[victim]).owns
      local t0 = h.now()
      servers[victim]:stop("KILL")
      -- Resumed: another node holds each of its tenants, and has delivered for them since (a commit
      -- the killed node had on its way would not do).
      local resumed = h.wait_for(function() return taken_from(NODES[victim], theirs) end, RESUME_BOUND + 15)
      local before = delivered_of(theirs)
      resumed = resumed and h.wait_for(function() return delivered_of(theirs) > before end, RESUME_BOUND + 15)
      local took = h.now() - t0
      resumes[#resumes + 1] = { node = NODES[victim], tenants = theirs, seconds = took }
      assert.truthy(resumed, NODES[victim] .. "'s tenants did not resume " .. says)
      -- Its log goes first: start_serve reads the address from it, and the killed run's line would do.
      os.remove(dirs[victim] .. "/serve.err")
      servers[victim] = h.start_serve(dirs[victim])
      write_nodes(nodes_file, servers)
    end

    assert.truthy(h.wait_for(function() return not load.alive() end, posting + 120), "the clients did not finish")
    local summary = h.decode(load.output():match("[^\n]+"))
    load.stop()
    load = nil
    local acked = {}
    local order = {}                                   -- profile -> its webhooks by acknowledgement order
    for line in io.lines(out .. "/acked") do
      local id, _, profile, seq = line:match("^(%S+) (%S+) (%S+) (%d+)")
      acked[#acked + 1] = id
      order[profile] = order[profile] or {}
      order[profile][id] = tonumber(seq)
    end
    assert.equal(COUNT, #acked, "every webhook acked in the end " .. h.encode(summary))

    -- Every acknowledged webhook at the stand-in (it keeps the first of each unique_id).
    local seen, events = {}, {}
    assert.truthy(h.wait_for(function()
      local r = h.curl(standin.url .. "/_standin/events?since=" .. #events, { timeout = 30 })
      for _, e in ipairs(r.json.events) do
        events[#events + 1] = e
        seen[(e.unique_id or ""):match("^webhook:(.+)$") or ""] = e
      end
      for _, id in ipairs(acked) do if not seen[id] then return false end end
      return true
    end, 120), "every acked webhook delivered " .. says)
    local lost = 0
    for _, id in ipairs(acked) do if not seen[id] then lost = lost + 1 end end

    -- Each profile's events in the order of its webhooks.
    local last, out_of_order = {}, 0
    for _, e in ipairs(events) do
      local id, profile = e.unique_id:match("^webhook:(.+)$"), e.profile.email
      local seq = order[profile] and order[profile][id]
      if seq then
        if last[profile] and seq < last[profile] then out_of_order = out_of_order + 1 end
        last[profile] = math.max(seq, last[profile] or -1)
      end
    end

    local n429, stats = throttled(standin)
    local once, by = h.wait_for(function() return each_owned_once(servers) end, 30)
    io.stderr:write(string.format("[cluster] %d webhooks from %d clients at %g/s to 3 nodes, 2 kill -9 %s: acked %d, "
                                  .. "delivered %d, duplicates dropped by unique_id %d, lost %d, out of order %d, "
                                  .. "429 %d, resume %s, posting %.1f s\n", COUNT, CLIENTS, RATE, says, #acked,
                                  #events, stats.events_deduplicated, lost, out_of_order, n429,
                                  h.encode(resumes), summary.seconds))
    assert.equal(0, lost)
    assert.equal(0, out_of_order)
    assert.equal(0, n429, h.encode(stats.by_endpoint))
    if not once then                                   -- what the store says, for the message
      local rows = {}
      for _, q in ipairs({ "SELECT tenant || ' ' || coalesce(node, '-') || ' ' || epoch || ' ' || (expires_at - "
                           .. "(extract(epoch FROM clock_timestamp()) * 1000)::bigint) || ' ' || coalesce(wanted_by, '-') "
                           .. "FROM leases ORDER BY tenant",
                           "SELECT name || ' ' || ((extract(epoch FROM clock_timestamp()) * 1000)::bigint - seen_at) FROM nodes",
                           "SELECT pid || ' ' || state || ' ' || coalesce(wait_event, '-') || ' ' || left(query, 120) "
                           .. "FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid()" }) do
        local cur = assert(sql:execute(q))
        local row = cur:fetch()
        while row do rows[#rows + 1] = row; row = cur:fetch() end
        cur:close()
      end
      for i, srv in pairs(servers) do rows[#rows + 1] = NODES[i] .. " " .. h.encode(healthz(srv)) end
      by = h.encode(by) .. "\n" .. table.concat(rows, "\n")
    else
      by = h.encode(by)
    end
    assert.truthy(once, "each tenant owned by exactly one live node " .. by .. "\n" .. lease_log(servers))
    for _, r in ipairs(resumes) do
      assert.truthy(r.seconds <= RESUME_BOUND, r.node .. "'s tenants resumed after " .. r.seconds .. " s " .. says)
    end
    for _, s in pairs(servers) do s:stop() end
  end)

  it("maps a tenant only on nodes running its published scripts, and hands everything over at a stop", function()
    db = db or pg.start()
    standin = standin or h.start_standin({ "--quiet" })
    for _, s in pairs(servers) do if s:alive() then s:stop("KILL") end end
    servers = {}
    local url = db.url:gsub("/returnflow%?", "/versions?")
    h.sh_ok(string.format("%s/createdb -h %s -p %d -U %s versions", pg.bin, h.quote(db.dir), db.port, db.user))
    local dirs = {}
    for i = 1, 2 do
      dirs[i] = node_dir(NODES[i], url, standin)
      servers[i] = h.start_serve(dirs[i])
    end
    local function owns(i) return healthz(servers[i]).owns or {} end
    assert.truthy(h.wait_for(function() return each_owned_once(servers) end, 30), h.encode(owners(servers)))

    -- node-a gets new scripts (its hot reload publishes them): node-b, still on the old ones, lets go.
    h.write(dirs[1] .. "/scripts/20-more.lua", "return {}\n")
    assert.truthy(h.wait_for(function() return #owns(1) == #TENANTS and #owns(2) == 0 end, 30),
                  "node-a alone maps the new version " .. h.encode(owners(servers)) .. servers[1]:log())
    -- node-b gets them too: the tenants spread again, each on one node.
    h.write(dirs[2] .. "/scripts/20-more.lua", "return {}\n")
    assert.truthy(h.wait_for(function()
      local once = each_owned_once(servers)
      return once and #owns(2) > 0
    end, 30), "spread again " .. h.encode(owners(servers)) .. servers[2]:log())

    -- `returnflow status` from the shared store: the live nodes, and each tenant's owner.
    local status
    assert.truthy(h.wait_for(function()                -- /healthz and the store agree (no move under way)
      status = h.run({ "status", "-c", dirs[1] .. "/returnflow.conf.lua" })
      local once, by = each_owned_once(servers)
      if not once or not status:find("nodes live: node-a, node-b\n", 1, true) then return false end
      for _, t in ipairs(TENANTS) do
        if not status:find("\n" .. t .. " +" .. h.literal(by[t][1]) .. " +%d+ +[%d.]+ s left") then return false end
      end
      return true
    end, 15), status)

    -- A stop gives every lease up: node-a says so for each tenant it held, and node-b takes them on
    -- its next pass (every second), not after the lease's 10 s. Timed from the end of the stop, whose
    -- own length (requests in flight, a loaded machine) is not the handover's. The bound, 7 s: a lease
    -- not released would be free no sooner than 8 s after the stop (renewed every 2 s, for 10 s), and
    -- under ASan in the full suite's load (no idle CPU) it took 4.3 s and 5.8 s.
    local held = #owns(1)
    assert.truthy(held > 0, h.encode(owners(servers)))
    local log = servers[1]:stop()
    local _, released = log:gsub('"msg":"lease released: the node stops"', "")
    -- (a tenant may move between the read of what node-a holds and the stop: at least one is given up)
    assert.truthy(released > 0, string.format("held %d, released %d at the stop\n%s", held, released, log))
    local t0 = h.now()
    assert.truthy(h.wait_for(function() return #owns(2) == #TENANTS end, 10), h.encode(owns(2)))
    local took = h.now() - t0
    io.stderr:write(string.format("[cluster] a stopped node's tenants taken over %.2f s after its stop\n", took))
    assert.truthy(took < 7, "taken over " .. took .. " s after the stop")
    servers[2]:stop()
  end)
end)
