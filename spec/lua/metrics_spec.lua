-- /metrics as Prometheus reads it: a live serve (a keyed tenant delivering to the Klaviyo stand-in)
-- is scraped and the text goes through `promtool check metrics` (Debian's prometheus package,
-- tools/deps.sh), then the families the README lists are checked: HELP and TYPE each, a tenant label
-- where there is one, the process_* families and the build info.
local h = require "helpers"

local PROMTOOL = "/usr/bin/promtool"

-- Runs promtool's linter on text; returns its output and exit code.
local function promtool_check(text)
  local file = h.tempfile(text, ".prom")
  local out, err, code = h.sh(h.quote(PROMTOOL) .. " check metrics < " .. h.quote(file))
  return out .. err, code
end

-- family name -> { help = text, type = text, samples = { line, ... } }
local function families(text)
  local by_name = {}
  local function family(name)
    by_name[name] = by_name[name] or { samples = {} }
    return by_name[name]
  end
  for _, line in ipairs(h.lines(text)) do
    local name, help = line:match("^# HELP (%S+) (.+)$")
    if name then family(name).help = help end
    local tname, typ = line:match("^# TYPE (%S+) (%S+)$")
    if tname then family(tname).type = typ end
    local sample = line:match("^([%w_]+)[{ ]")
    if sample and not line:find("^#") then
      local base = sample:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
      local f = by_name[sample] or by_name[base] or family(sample)
      f.samples[#f.samples + 1] = line
    end
  end
  return by_name
end

describe("/metrics", function()
  local server, standin
  after_each(function()
    if server then server:stop() end
    if standin then standin.stop() end
    server, standin = nil, nil
  end)
  teardown(h.cleanup)

  it("passes promtool check metrics on a live serve that mapped and delivered", function()
    standin = h.start_standin()
    local dir = h.serve_dir({ klaviyo = string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url) })
    server = h.start_serve(dir)
    assert.equal(202, (h.post_signed(server:url(), h.read(h.fixture_path("giftcard.requested.json")))))
    assert.equal(401, (h.post_signed(server:url(), "{}", { secret = "wrong" })))
    local text
    assert.truthy(h.wait_for(function()
      text = h.curl("http://" .. server.address .. "/metrics").body
      return text:find('returnflow_requests_total{tenant="shop",outcome="delivered"} 1', 1, true) ~= nil
    end, 20), text)
    local report, code = promtool_check(text)
    assert.equal(0, code, report .. "\n" .. text)
    assert.equal("", report)
  end)

  it("gives every family HELP and TYPE, a tenant label where it is per tenant, process and build info", function()
    standin = h.start_standin()
    server = h.start_serve(h.serve_dir({ klaviyo = string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url) }))
    assert.equal(202, (h.post_signed(server:url(), h.read(h.fixture_path("giftcard.requested.json")))))
    local text
    assert.truthy(h.wait_for(function()
      text = h.curl("http://" .. server.address .. "/metrics").body
      return text:find('returnflow_events_total{tenant="shop",outcome="mapped"} 1', 1, true) ~= nil
    end, 20), text)
    local got = families(text)
    for name, f in pairs(got) do
      assert.truthy(f.help, name .. " has no HELP")
      assert.truthy(f.type, name .. " has no TYPE")
    end
    for _, name in ipairs({ "returnflow_events_total", "returnflow_requests_total", "returnflow_queue_depth",
                            "returnflow_delivery_seconds", "returnflow_bulk_jobs_total", "returnflow_mapping_seconds" }) do
      assert.truthy(#got[name].samples > 0, name)
      for _, sample in ipairs(got[name].samples) do
        assert.truthy(sample:find('tenant="shop"', 1, true), sample)
      end
    end
    for name, typ in pairs({ process_cpu_seconds_total = "counter", process_resident_memory_bytes = "gauge",
                             process_open_fds = "gauge", process_max_fds = "gauge",
                             process_start_time_seconds = "gauge", returnflow_build_info = "gauge" }) do
      assert.equal(typ, got[name] and got[name].type, name)
    end
    -- the mapped event's wait, in the mapping histogram
    assert.truthy(text:find('returnflow_mapping_seconds_count{tenant="shop"} 1\n', 1, true), text)
    assert.truthy(tonumber(text:match('returnflow_mapping_seconds_sum{tenant="shop"} (%S+)')) < 60, text)
    local rss = tonumber(text:match("\nprocess_resident_memory_bytes (%S+)"))
    assert.truthy(rss > 1e6 and rss < 4e9, tostring(rss))
    local started = tonumber(text:match("\nprocess_start_time_seconds (%S+)"))
    assert.truthy(math.abs(started - os.time()) < 120, tostring(started))
    assert.truthy(tonumber(text:match("\nprocess_open_fds (%S+)")) >= 3)
    assert.truthy(text:find('returnflow_build_info{version="', 1, true))
  end)

  it("lists every family it exports in the README with its type and labels", function()
    standin = h.start_standin()
    server = h.start_serve(h.serve_dir({ klaviyo = string.format('{ key = "pk_spec_secret_key", base_url = %q }', standin.url) }))
    local text = h.curl("http://" .. server.address .. "/metrics").body
    local readme = h.read(h.root .. "/README.md")
    local checked = 0
    for name, f in pairs(families(text)) do
      local row = readme:match("\n%s*| `" .. name:gsub("_", "%%_") .. "[{`][^\n]*")
      assert.truthy(row, name .. " is not in the README's table")
      assert.truthy(row:find("| " .. f.type .. " |", 1, true), name .. ": " .. row)
      -- the labels its samples carry (le is the histogram's own) are the ones the README names
      local labels, seen = {}, {}
      for _, sample in ipairs(f.samples) do
        for label in (sample:match("{(.-)}") or ""):gmatch('([%w_]+)="') do
          if label ~= "le" and not seen[label] then seen[label] = true; labels[#labels + 1] = label end
        end
      end
      table.sort(labels)
      local documented = {}
      for label in (row:match("^[^`]*`[%w_]+{([^}]*)}") or ""):gmatch("[%w_]+") do documented[#documented + 1] = label end
      table.sort(documented)
      if #f.samples > 0 then assert.same(documented, labels, name .. ": " .. row) end
      checked = checked + 1
    end
    assert.truthy(checked >= 20, checked)
  end)
end)
