-- The console's HTTP side (core/ops/console*.c), in-process with curl: off unless configured, the
-- token, the session cookie and the CSRF token on every action, the security headers, the JSON the
-- page reads (tenants, trace, dead letters, script versions, counters) and the live tail's stream.
-- The page itself runs in a real Chromium in console_browser_spec.lua.
local h = require "helpers"

local TOKEN = "spec-console-token-0123456789"

-- A folder whose config has a console (and a keyed tenant on the stand-in, when given one).
local function console_dir(standin)
  return h.serve_dir({ console = true,
                       klaviyo = standin and string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url) })
end

local console_address = h.console_url

local function login(base)
  local r = h.curl(base .. "/api/login", { body = { token = TOKEN }, headers = { ["Content-Type"] = "application/json" } })
  assert.equal(200, r.status, r.body)
  local cookie = (r.headers["set-cookie"] or ""):match("^(rf_session=%x+)")
  assert.truthy(cookie, r.headers["set-cookie"])
  return cookie, r.json.csrf
end

describe("the console (HTTP)", function()
  local server, standin
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("is off unless the config has one", function()
    server = h.start_serve(h.serve_dir())
    assert.falsy(server:log():find("console listening", 1, true))
  end)

  it("refuses a config whose token is short or unset, naming the setting", function()
    local dir = console_dir()
    local _, err, code = h.run({ "serve", "-c", dir .. "/returnflow.conf.lua" })
    assert.equal(2, code)
    assert.truthy(err:find("console.token", 1, true) and err:find("RF_CONSOLE_TOKEN", 1, true), err)
    server = nil
    local out
    out, err, code = h.sh("cd " .. h.quote(dir) .. " && RF_CONSOLE_TOKEN=short " .. h.quote(h.bin)
                          .. " serve -c returnflow.conf.lua")
    assert.equal(2, code, out)
    assert.truthy(err:find("console.token: must be 16 bytes or more", 1, true), err)
  end)

  it("serves its page with a strict policy, and nothing else before a login", function()
    server = h.start_serve(console_dir(), { RF_CONSOLE_TOKEN = TOKEN })
    local base = console_address(server)
    assert.truthy(base:find("^http://127%.0%.0%.1:"), base)
    local page = h.curl(base .. "/")
    assert.equal(200, page.status)
    assert.truthy(page.body:find('<script src="/console.js"', 1, true))
    local csp = page.headers["content-security-policy"]
    assert.truthy(csp:find("default-src 'none'", 1, true) and csp:find("script-src 'self'", 1, true), csp)
    assert.falsy(csp:find("unsafe", 1, true), csp)
    assert.equal("DENY", page.headers["x-frame-options"])
    assert.equal("nosniff", page.headers["x-content-type-options"])
    assert.equal(200, h.curl(base .. "/console.js").status)
    for _, path in ipairs({ "/api/tenants", "/api/trace?q=1", "/api/dead", "/api/counters", "/api/tail",
                            "/api/scripts?tenant=shop" }) do
      assert.equal(401, h.curl(base .. path).status, path)
    end
    local wrong = h.curl(base .. "/api/login", { body = { token = TOKEN .. "x" },
                                                 headers = { ["Content-Type"] = "application/json" } })
    assert.equal(401, wrong.status)
    assert.falsy(wrong.headers["set-cookie"])
    -- a login posted as a plain form (what another site's page could send) is refused
    assert.equal(403, h.curl(base .. "/api/login", { body = "token=" .. TOKEN }).status)
    -- five wrong tokens in a row: logins wait, the right token too
    for _ = 1, 4 do
      assert.equal(401, h.curl(base .. "/api/login", { body = { token = "guess-guess-guess" },
                                                      headers = { ["Content-Type"] = "application/json" } }).status)
    end
    local waiting = h.curl(base .. "/api/login", { body = { token = TOKEN },
                                                   headers = { ["Content-Type"] = "application/json" } })
    assert.equal(429, waiting.status, waiting.body)
    local log = server:stop()
    server = nil
    assert.falsy(log:find(TOKEN, 1, true), "the token is never logged")
  end)

  it("wants the session's CSRF token, from its own origin, on every action", function()
    standin = h.start_standin()
    server = h.start_serve(console_dir(standin), { RF_CONSOLE_TOKEN = TOKEN })
    local base = console_address(server)
    local cookie, csrf = login(base)
    assert.equal(64, #csrf)
    local function replay(headers)
      headers.Cookie = cookie
      headers["Content-Type"] = "application/json"
      return h.curl(base .. "/api/dead/replay", { body = { id = "request:1" }, headers = headers })
    end
    assert.equal(403, replay({}).status)
    assert.equal(403, replay({ ["X-CSRF-Token"] = string.rep("0", 64) }).status)
    assert.equal(403, replay({ ["X-CSRF-Token"] = csrf, Origin = "http://evil.example" }).status)
    local ok = replay({ ["X-CSRF-Token"] = csrf, Origin = base })
    assert.equal(404, ok.status, ok.body)          -- allowed, and there is no such dead letter
    assert.truthy(ok.json.error:find("no such dead letter", 1, true))
    -- another session's CSRF token does not fit this one
    local _, other = login(base)
    assert.equal(403, replay({ ["X-CSRF-Token"] = other }).status)
  end)

  it("gives tenants, a trace, dead letters, script versions, counters and the live tail", function()
    standin = h.start_standin()
    server = h.start_serve(console_dir(standin), { RF_CONSOLE_TOKEN = TOKEN })
    local base = console_address(server)
    local cookie, csrf = login(base)
    local get = function(path) return h.curl(base .. path, { headers = { Cookie = cookie } }) end
    -- the live tail, opened before the webhook: curl reads the stream for 3 s
    local stream = h.spawn("curl -sN --max-time 5 -H " .. h.quote("Cookie: " .. cookie) .. " "
                           .. h.quote(base .. "/api/tail"))
    assert.truthy(h.wait_for(function() return stream.output():find("retry: ", 1, true) ~= nil end, 10))
    local faults = { { kind = "400", path = "/api/events", pointer = "/data/x" } }
    local r = h.curl(standin.url .. "/_standin/faults", { body = faults })
    assert.truthy(r.status < 300, r.body)
    assert.equal(202, (h.post_signed(server:url(), h.read(h.fixture_path("giftcard.requested.json")))))
    assert.truthy(h.wait_for(function()
      return h.sql_count(server.dir, "SELECT count(*) FROM outbox WHERE state = 2") == 1
    end, 20))
    local tenants = get("/api/tenants").json
    assert.equal("shop", tenants[1].tenant)
    assert.equal(1, tenants[1].dead)
    assert.truthy(#tenants[1].version > 0)
    local dead = get("/api/dead").json
    assert.equal(1, #dead)
    assert.truthy(dead[1].id:find("^request:%d+$"))
    local trace = get("/api/trace?q=event:1").json
    assert.equal(1, #trace.events)
    assert.equal("dead", trace.events[1].requests[1].state)
    -- the node that acknowledged it: the config gives none, so the host name (or "node")
    local host = h.sh("hostname"):match("^([%w._-]+)\n") or "node"
    if #host > 63 then host = "node" end
    assert.equal(host, trace.events[1].node)
    assert.equal(h.decode("null"), trace.events[1].requests[1].bulk_job)
    local versions = get("/api/scripts?tenant=shop").json
    assert.equal(versions.running, versions.versions[1].version)
    local files = get("/api/script?tenant=shop&version=" .. versions.running).json
    assert.truthy(files["10-returns.lua"])
    assert.equal(400, get("/api/script?tenant=shop&version=..").status)
    assert.equal(400, get("/api/script?tenant=..%2F..&version=x").status)
    local counters = get("/api/counters").body
    assert.truthy(counters:find('returnflow_events_total{tenant="shop",outcome="mapped"} 1', 1, true), counters)
    local purged = h.curl(base .. "/api/dead/purge", { body = { id = dead[1].id },
      headers = { Cookie = cookie, ["Content-Type"] = "application/json", ["X-CSRF-Token"] = csrf } })
    assert.equal(200, purged.status, purged.body)
    assert.equal(0, #get("/api/dead").json)
    assert.truthy(h.wait_for(function() return not stream.alive() end, 10))
    local events = stream.output()
    assert.truthy(events:find('data: {"event":1,', 1, true), events)
    assert.truthy(events:find('"trigger":"giftcard.requested"', 1, true), events)
    assert.truthy(events:find('"outcome":"mapped"', 1, true), events)
    local log = server:stop()
    server = nil
    assert.falsy(log:find("pk_spec_secret_key", 1, true))
  end)
end)
