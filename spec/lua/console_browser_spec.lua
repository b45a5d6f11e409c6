-- The console in a real browser: Debian's chromium driven by chromium-driver and python3-selenium
-- (spec/browser/console_browser.py) against serve and the Klaviyo stand-in: log in, find a return by
-- email and read its timeline, a customer named "<script>..." shown as text, the live tail receiving
-- a webhook, a dead letter replayed (confirmed) and received by the stand-in, two script versions
-- diffed, the charts drawn. With RETURNFLOW_SCREENSHOTS=DIR it saves each page there
-- (`make screenshots`: docs/console/).
local h = require "helpers"

local TOKEN = "spec-console-token-0123456789"
local XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
local HARNESS = h.root .. "/spec/browser/console_browser.py"

-- return.created as if made now (its expiry schedules still ahead), its customer named XSS.
local function created_now()
  local now = os.date("!%Y-%m-%dT%H:%M:%S+00:00")
  local body = h.read(h.fixture_path("return.created.json"))
  body = body:gsub('"created_at": "[^"]*"', '"created_at": "' .. now .. '"', 1)
  return (body:gsub('"first_name": "[^"]*"', '"first_name": "' .. XSS .. '"', 1))
end

describe("the console in Chromium", function()
  local server, standin
  teardown(function()
    if server then server:stop() end
    if standin then standin.stop() end
    h.cleanup()
  end)

  it("logs in, traces a return by email, shows a <script> name as text, tails, replays a dead letter, diffs, charts", function()
    standin = h.start_standin()
    local dir = h.serve_dir({ console = true,
                              klaviyo = string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url) })
    server = h.start_serve(dir, { RF_CONSOLE_TOKEN = TOKEN })
    local base = h.console_url(server)
    local faults = { { kind = "400", path = "/api/events", pointer = "/data/attributes/properties/console_spec" } }
    assert.truthy(h.curl(standin.url .. "/_standin/faults", { body = faults }).status < 300)
    assert.equal(202, (h.post_signed(server:url(), created_now())))
    assert.truthy(h.wait_for(function()
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 2") == 1
    end, 20), server:log())
    -- a second scripts version, for the diff
    local f = assert(io.open(dir .. "/scripts/10-returns.lua", "a"))
    f:write("-- changed in the console's spec\n")
    f:close()
    assert.truthy(h.wait_for(function()
      local versions = 0
      for _, name in ipairs(h.entries(dir .. "/data/scripts/shop")) do
        if name:match("^%x+$") then versions = versions + 1 end
      end
      return versions >= 2 and server:log():find('"msg":"scripts reloaded"', 1, true) ~= nil
    end, 30), server:log())

    local env = {
      CONSOLE_URL = base, TOKEN = TOKEN, WEBHOOK_URL = server:url(), SECRET = "spec-secret",
      STANDIN_URL = standin.url, EMAIL = "maria.gonzalez@example.com",
      TAIL_FIXTURE = h.fixture_path("return.updated.cancelled.json"),
      SCREENSHOTS = os.getenv("RETURNFLOW_SCREENSHOTS") or "",
      TMPDIR = h.tempdir(),     -- chromium's own folders (org.chromium.Chromium.*), which it leaves behind
    }
    local vars = {}
    for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. h.quote(v) end
    table.sort(vars)
    local out, err, code = h.sh("env " .. table.concat(vars, " ") .. " " .. h.quote(h.python) .. " " .. h.quote(HARNESS))
    assert.equal(0, code, out .. err .. "\n" .. server:log())
    assert.truthy(out:find("console_browser: all passed", 1, true), out)
    -- the replayed request was delivered, and nothing is dead any more
    assert.equal(0, h.sql_count(dir, "SELECT count(*) FROM outbox WHERE state = 2"))
    local log = server:stop()
    server = nil
    assert.falsy(log:find(TOKEN, 1, true))
  end)
end)
