-- Faults (issue 11): Klaviyo's address answers with a TLS certificate that does not verify (a
-- self-signed one, made here with openssl; the stand-in serves HTTPS with it through Python's ssl).
-- Delivery refuses it: no request is ever sent without the check (the stand-in reads none), the rows
-- wait with the reason, nothing acknowledged is lost, and `returnflow status` says why.
local h = require "helpers"

local PROBE = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Fault Probe", { return_id = ret.id }, { unique_id = "probe:" .. ret.id })
  end,
}
]]

local function webhook(i)
  local ev = h.fixture("return.created.json")
  ev.id, ev.customer = tostring(7400000 + i), "tls+" .. i .. "@example.com"
  ev.customer_detail.email = ev.customer
  return h.encode(ev)
end

describe("a TLS certificate that does not verify", function()
  local server, standin
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("is refused: nothing is sent without the check, rows wait with the reason, status says why", function()
    local dir = h.tempdir()
    h.sh_ok("cd " .. h.quote(dir) .. " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 " ..
            "-nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=127.0.0.1 " ..
            "-addext subjectAltName=IP:127.0.0.1 2>&1")
    standin = h.start_standin({ "--tls", dir .. "/cert.pem", dir .. "/key.pem" })
    local https = "https://127.0.0.1:" .. standin.port
    h.sh_ok("mkdir " .. h.quote(dir .. "/scripts"))
    h.write(dir .. "/scripts/10-probe.lua", PROBE)
    h.write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data",
  delivery = { backoff_max_seconds = 0.5 },
  tenants = { shop = { scripts = "scripts", webhook_secret = "spec-secret",
                       klaviyo = { key = "pk_spec_tls_key", base_url = %q } } },
}]], https))
    server = h.start_serve(dir)
    for i = 1, 2 do assert.equal(202, (h.post_signed(server:url(), webhook(i)))) end

    -- Each row tried twice or more, each time refused in the handshake.
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 0 AND attempts >= 2") == 2
    end), server:log())
    local errors = h.sql_rows(dir, "SELECT last_error FROM outbox")
    for _, e in ipairs(errors) do assert.truthy(e:lower():find("certificate", 1, true), e) end
    local said = h.run({ "status", "--data", dir .. "/data" })
    assert.truthy(said:lower():find("certificate", 1, true), said)
    -- Nothing acknowledged is lost: both events are journaled and their requests queued (or in flight).
    assert.equal(2, h.sql_count(dir, "SELECT count(*) FROM events"))
    assert.equal(2, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state IN (0, 3)"))
    -- The stand-in read no request: every connection ended in the handshake (its log says so).
    local stats = h.sh_ok("curl -sk " .. https .. "/_standin/stats")
    assert.equal(0, h.decode(stats).requests, stats)
    local f = assert(io.open(standin.log, "rb"))
    local log = f:read("a")
    f:close()
    assert.truthy(log:find("unknown ca", 1, true) or log:find("UNKNOWN_CA", 1, true), log)
    local r = h.curl("http://" .. server.address .. "/healthz")
    assert.equal(200, r.status)                              -- the store is fine: Klaviyo's side is what fails
    io.stderr:write("[faults] TLS certificate that does not verify: ", h.encode({ acked = 2, delivered = 0,
      queued = 2, requests_read_by_standin = 0, healthz = r.json.status,
      status = said:match("shop[^\n]*") }), "\n")
  end)
end)
