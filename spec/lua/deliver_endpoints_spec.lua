-- Delivery sends only to the base URL plus a path of the fixed Klaviyo endpoint table
-- (core/script/klaviyo_endpoints.c): an outbox row whose method or path is anything else (a
-- forged "@host:port/..." that would carry the key elsewhere) is a dead letter with the reason, and
-- nothing is sent for it.
local h = require "helpers"

describe("delivery refuses a row that is not a Klaviyo endpoint", function()
  local server, standin
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("dead-letters a row whose path names another host, and sends nothing for it", function()
    standin = h.start_standin()
    local dir = h.serve_dir({ klaviyo = string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url) })
    server = h.start_serve(dir)
    local status, answer = h.post_signed(server:url(), h.read(h.fixture_path("return.created.json")))
    assert.equal(202, status, answer)
    local function count(where)
      return h.sql_count(dir, "SELECT count(*) FROM outbox WHERE " .. where)
    end
    -- Every row the webhook made is delivered first, so the count below can only grow by the forged one.
    assert.truthy(h.wait_for(function() return count("state = 1") >= 1 and count("state <> 1") == 0 end), server:log())
    local sent = #(h.curl(standin.url .. "/_standin/events").json.events or {})
    h.sh_ok(string.format("sqlite3 %s %s", h.quote(dir .. "/data/returnflow.db"), h.quote(
      "INSERT INTO outbox (event_id, tenant, profile, method, path, body, created_at) " ..
      "SELECT event_id, tenant, 'email:forged@example.com', 'POST', '@127.0.0.1:9/steal', body, created_at " ..
      "FROM outbox LIMIT 1")))
    assert.truthy(h.wait_for(function() return count("path = '@127.0.0.1:9/steal' AND state = 2") == 1 end),
                  server:log())
    local why = h.sh_ok(string.format("sqlite3 %s %s", h.quote(dir .. "/data/returnflow.db"),
                                      h.quote("SELECT last_error FROM outbox WHERE path = '@127.0.0.1:9/steal'")))
    assert.matches("not a Klaviyo endpoint", why)
    assert.equal(sent, #(h.curl(standin.url .. "/_standin/events").json.events or {}))
  end)
end)
