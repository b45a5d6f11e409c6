-- Faults on Klaviyo's side (issue 11): an outage longer than the backoff cap, every answer too slow
-- (timeouts en masse), a base URL that does not resolve. Each checks that nothing acknowledged is
-- lost, nothing is sent more often than its attempts, and the operator is told. Backoffs and timeouts
-- are made small in the config (delivery.backoff_max_seconds, timeout_seconds), so the cases take
-- seconds.
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
  return (template:gsub("@ID@", tostring(7300000 + i)):gsub("@EMAIL@", "outage+" .. i .. "@example.com"))
end

local function start(base_url, delivery)
  local dir = h.tempdir()
  h.sh_ok("mkdir " .. h.quote(dir .. "/scripts"))
  h.write(dir .. "/scripts/10-probe.lua", PROBE)
  h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data",
  delivery = %s,
  tenants = { shop = { scripts = "scripts", webhook_secret = "spec-secret",
                       klaviyo = { key = "pk_spec_fault_key", base_url = %q } } },
}]], delivery, base_url))
  return h.start_serve(dir), dir
end

local function post_all(server, n)
  for i = 1, n do assert.equal(202, (h.post_signed(server:url(), webhook(i)))) end
end

-- Requests the stand-in got for /api/events, by unique_id.
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

-- Every row delivered, its unique_id sent no more often than the row's attempts; the sends per row.
local function check_rows(dir, standin, n)
  local by, total = sends(standin)
  local rows = h.sql_rows(dir, "SELECT json_extract(body, '$.data.attributes.unique_id'), attempts, state FROM outbox")
  assert.equal(n, #rows)
  local most = 0
  for _, row in ipairs(rows) do
    local uid, attempts, state = row:match("^([^|]*)|(%d+)|(%d+)$")
    assert.equal("1", state, row)
    assert.truthy((by[uid] or 0) <= tonumber(attempts), row .. " sent " .. tostring(by[uid]))
    most = math.max(most, by[uid] or 0)
  end
  return total, most
end

local function metric(server, pattern)
  local body = h.curl("http://" .. server.address .. "/metrics").body
  return tonumber(body:match(pattern))
end

describe("Klaviyo misbehaving", function()
  local server, standin
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("an outage longer than the backoff cap: each row retried on its backoff, then delivered once", function()
    standin = h.start_standin()
    h.curl(standin.url .. "/_standin/faults", { body = { kind = "503", count = 15, path = "/api/events" } })
    local dir
    server, dir = start(standin.url, "{ backoff_max_seconds = 0.5 }")
    post_all(server, 3)
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1") == 3
    end), server:log())
    local total, most = check_rows(dir, standin, 3)
    assert.equal(18, total)                                  -- 15 refused, then 3 delivered
    assert.equal(15, metric(server, 'returnflow_requests_total{tenant="shop",outcome="retried"} (%d+)'))
    local accepted = h.curl(standin.url .. "/_standin/events").json
    assert.equal(3, #(accepted.events or accepted))
    io.stderr:write("[faults] Klaviyo outage > backoff cap: ", h.encode({ acked = 3, delivered = 3, requests = total,
      most_sends_per_row = most, duplicates_accepted = 0, retried_metric = 15 }), "\n")
  end)

  it("every answer too slow: each timeout counts as an attempt, and no row is sent more often", function()
    standin = h.start_standin()
    h.curl(standin.url .. "/_standin/faults", { body = { kind = "slow", delay_ms = 1500, count = 6,
                                                         path = "/api/events" } })
    local dir
    server, dir = start(standin.url, "{ backoff_max_seconds = 0.5, timeout_seconds = 0.5 }")
    post_all(server, 3)
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 1") == 3
    end), server:log())
    local total, most = check_rows(dir, standin, 3)
    local log = server:log()
    assert.truthy(log:find("Timeout", 1, true) or
                  h.sql_count(dir, "SELECT count(*) FROM outbox WHERE attempts > 1") > 0, log)
    -- Klaviyo (the stand-in) took a timed-out request too: the unique_id keeps it once.
    local accepted = h.curl(standin.url .. "/_standin/events").json
    assert.equal(3, #(accepted.events or accepted))
    io.stderr:write("[faults] timeouts en masse: ", h.encode({ acked = 3, delivered = 3, requests = total,
      most_sends_per_row = most, accepted_once = #(accepted.events or accepted) }), "\n")
  end)

  it("a base URL that does not resolve: rows wait with the reason, nothing is lost, status says why", function()
    local dir
    server, dir = start("http://klaviyo.invalid", "{ backoff_max_seconds = 0.5 }")
    post_all(server, 2)
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 0 AND attempts >= 2") == 2
    end), server:log())
    local said = h.run({ "status", "--data", dir .. "/data" })
    assert.truthy(said:lower():find("resolve", 1, true), said)
    assert.equal(2, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state IN (0, 3)"))
    local r = h.curl("http://" .. server.address .. "/healthz")
    assert.equal(200, r.status)                              -- the store is fine: Klaviyo is what fails
    io.stderr:write("[faults] unresolvable base URL: ", h.encode({ acked = 2, delivered = 0, queued = 2,
      healthz = r.json.status, status = said:match("shop[^\n]*") }), "\n")
  end)
end)
