--- `returnflow templates install`: creates a template's objects in Klaviyo, each only if it is not
-- there yet, found by name: the email template, then the flow as a draft or the segment. The metrics
-- they name are found, never made up: a template triggers on the default metrics returnflow's events
-- create. A metric not in the account yet stops install before anything is created, saying how to get
-- it; only with --setup-email ADDRESS does install create it, by one backfilled event (no flow fires) on
-- that profile. Another integration's metric (a reviews app's) is never created. Running it twice
-- creates nothing new.
-- Requests go one after the other (each needs the last one's id), paced by Klaviyo's answers: a
-- 429 waits out its Retry-After; a daily limit (100 flows, 100 segments) stops with a clear message.
-- The key goes into the Authorization header only and is never printed; a dry tenant (no key)
-- prints the requests instead of sending them.
-- @module returnflow.cli.install
local native = require "returnflow.native"
local catalogue = require "returnflow.cli.catalogue"
local testing = require "returnflow.testing"

local json = native.json
local M = {}

local MAX_WAIT_S = 60

local function config_dir(path) return path:match("^(.*)/[^/]*$") or "." end

local function secret(value, base)
  if type(value) == "string" then return value end
  if type(value) ~= "table" then return nil end
  if value.env then return os.getenv(value.env) end
  if value.file then
    local file = value.file:sub(1, 1) == "/" and value.file or base .. "/" .. value.file
    local f = io.open(file, "rb")
    if not f then return nil end
    local text = f:read("a"):gsub("\r?\n$", "")
    f:close()
    return text
  end
end

--- The tenant's Klaviyo settings from returnflow.conf.lua: { key, base_url, revision, key_kind }.
function M.tenant(config_path, tenant)
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(config_path, "t", env)
  if not chunk then return nil, err end
  local ok, cfg = pcall(chunk)
  if not ok or type(cfg) ~= "table" then return nil, config_path .. ": " .. tostring(ok and "must return a table" or cfg) end
  local t = type(cfg.tenants) == "table" and cfg.tenants[tenant]
  if type(t) ~= "table" then return nil, string.format("%s: no tenant %q", config_path, tenant) end
  local k = type(t.klaviyo) == "table" and t.klaviyo or {}
  return { key = secret(k.key, config_dir(config_path)), base_url = k.base_url or "https://a.klaviyo.com",
           revision = k.revision or native.klaviyo_revision, key_kind = k.key_kind or "private" }
end

local Client = {}
Client.__index = Client

--- A client for one tenant; dry (no key) prints each request and answers with placeholders.
function M.client(settings, print_line)
  return setmetatable({ s = settings, dry = not settings.key, print = print_line, made = 0 }, Client)
end

local function escape_filter(name) return (name:gsub('\\', '\\\\'):gsub('"', '\\"')) end

local function urlencode(s)
  return (s:gsub("[^%w%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

--- One request; returns the decoded answer body (nil for an empty one), or raises a message.
function Client:call(method, path, body)
  local text = body and json.encode(body) or nil
  if self.dry then                               -- as `returnflow map` shows a request: key redacted
    self.print(json.encode({ method = method, path = path, body = body, headers = {   -- a GET has no body
      ["Authorization"] = "Klaviyo-API-Key ***", ["revision"] = self.s.revision,
      ["Accept"] = "application/vnd.api+json", ["Content-Type"] = "application/vnd.api+json" } }))
    self.made = self.made + 1
    return { data = method == "GET" and json.array({}) or { id = "(id of " .. path .. ")" } }
  end
  local headers = {
    ["Authorization"] = "Klaviyo-API-Key " .. self.s.key, ["revision"] = self.s.revision,
    ["Accept"] = "application/vnd.api+json", ["Content-Type"] = "application/vnd.api+json",
  }
  local url = path:match("^https?://") and path or self.s.base_url .. path
  for attempt = 1, 5 do
    local status, answer, response_headers = native.http({ method = method, url = url, headers = headers, body = text })
    if not status then error(answer, 0) end
    if status < 300 then
      self.made = self.made + 1
      return answer ~= "" and json.decode(answer) or nil
    end
    local decoded = json.decode(answer)
    local first = type(decoded) == "table" and type(decoded.errors) == "table" and decoded.errors[1] or {}
    local detail = type(first.detail) == "string" and first.detail or answer:sub(1, 300)
    if type(first.source) == "table" and first.source.pointer then detail = detail .. " (at " .. first.source.pointer .. ")" end
    if status == 429 then
      local wait = tonumber(response_headers["retry-after"]) or tonumber(detail:match("available in (%d+) second")) or 2
      if wait > MAX_WAIT_S then
        error(string.format("%s %s: Klaviyo's limit is reached for %d s more (%s); run install again later, it "
                            .. "picks up where it stopped", method, path, wait, detail), 0)
      end
      os.execute("sleep " .. math.max(wait, 1))
    elseif status >= 500 and attempt < 5 then
      os.execute("sleep " .. attempt)
    else
      error(string.format("%s %s: Klaviyo answered %d: %s", method, path, status, detail), 0)
    end
  end
  error(string.format("%s %s: Klaviyo kept refusing; try again later", method, path), 0)
end

--- The first object of a kind ("templates", "flows", "segments") with that name, or nil.
function Client:find(kind, name)
  local answer = self:call("GET", "/api/" .. kind .. "?filter=" .. urlencode('equals(name,"' .. escape_filter(name) .. '")'))
  for _, obj in ipairs(answer and answer.data or {}) do
    if obj.attributes and obj.attributes.name == name then return obj end
  end
end

--- Every metric's id by name (GET /api/metrics, following pages).
function Client:metrics()
  local ids, path = {}, "/api/metrics"
  while path do
    local answer = self:call("GET", path)
    for _, m in ipairs(answer and answer.data or {}) do ids[m.attributes.name] = m.id end
    local next_page = answer and answer.links and answer.links.next
    path = type(next_page) == "string" and next_page or nil
  end
  return ids
end

local function is_external(t, metric)
  for _, m in ipairs(t.external_metrics or {}) do
    if m == metric then return true end
  end
  return false
end

-- The metric's id, found by name. A metric not there yet is created only with a setup email (one
-- backfilled event on that profile, with the properties the template's fixtures give it); else this
-- raises, saying how the metric comes to exist.
local function ensure_metric(client, t, metric, report, setup_email)
  client.ids = client.ids or client:metrics()
  local ids = client.ids
  if ids[metric] then report("metric", metric, "exists", ids[metric]) return ids[metric] end
  if is_external(t, metric) then
    if client.dry then
      report("metric", metric, "looked up", "(another integration's: never created)")
      return "(id of " .. metric .. ")"
    end
    error(string.format("the metric %q is not in this Klaviyo account, so nothing was created: it is another "
                        .. "integration's (set its name in %s/template.lua); install again once that integration "
                        .. "has sent one", metric, t.dir), 0)
  end
  if not setup_email then
    if client.dry then report("metric", metric, "looked up", "(must exist)") return "(id of " .. metric .. ")" end
    error(string.format("the metric %q is not in this Klaviyo account yet, so nothing was created. It appears with "
                        .. "the first such event returnflow delivers (`returnflow serve`, `returnflow send`, or "
                        .. "`returnflow test-integration --email YOU`): run install again then. Or give --setup-email "
                        .. "ADDRESS to create it now with one backfilled event (no flow fires) on that profile "
                        .. "(Klaviyo creates the profile if it does not exist)", metric), 0)
  end
  local dir, done = catalogue.scripts_folder(t, false)
  local scripts = testing.load(dir, { tenant = "install" })
  local properties = {}
  for _, entry in ipairs(t.fixtures) do
    local result = catalogue.map(scripts, t, entry)
    for _, list in ipairs({ result.events, result.scheduled }) do
      for _, e in ipairs(list) do
        if e.metric == metric then properties = e.properties break end
      end
    end
  end
  done()
  client:call("POST", "/api/events", { data = { type = "event", attributes = {
    properties = properties, backfill = true, unique_id = "returnflow-install:" .. metric,
    metric = { data = { type = "metric", attributes = { name = metric } } },
    profile = { data = { type = "profile", attributes = { email = setup_email } } },
  } } })
  if client.dry then report("metric", metric, "created", "(by one backfilled event)") return "(id of " .. metric .. ")" end
  for _ = 1, 20 do                               -- Klaviyo makes the metric shortly after the event
    client.ids = client:metrics()
    if client.ids[metric] then
      report("metric", metric, "created", client.ids[metric] .. " (by one backfilled event on " .. setup_email .. ")")
      return client.ids[metric]
    end
    os.execute("sleep 1")
  end
  error(string.format("the event for %q was accepted, but the metric did not appear; run install again in a "
                      .. "minute", metric), 0)
end

--- Installs template t; report(kind, name, outcome, id) tells what happened to each object.
-- setup_email: the profile that may receive a metric-creating event (nil: none is created).
function M.install(client, t, report, setup_email)
  if t.kind == "flow" then
    local metric_id = ensure_metric(client, t, t.metric, report, setup_email)   -- first: it may stop install
    local existing = client:find("templates", t.flow.name)
    local template_id
    if existing then
      template_id = existing.id
      report("template", t.flow.name, "exists", template_id)
    else
      template_id = client:call("POST", "/api/templates", catalogue.template_body(t)).data.id
      report("template", t.flow.name, "created", template_id)
    end
    local flow = client:find("flows", t.flow.name)
    if flow then
      report("flow", t.flow.name, "exists", flow.id)
    else
      local id = client:call("POST", "/api/flows", catalogue.flow_body(t, metric_id, template_id)).data.id
      report("flow", t.flow.name, "created", id .. " (a draft)")
    end
  else
    local ids, metrics = {}, catalogue.segment_metrics(t)
    table.sort(metrics, function(a, b)       -- another integration's first: missing, it stops install at once
      local ea, eb = is_external(t, a), is_external(t, b)
      if ea ~= eb then return ea end
      return a < b
    end)
    for _, metric in ipairs(metrics) do ids[metric] = ensure_metric(client, t, metric, report, setup_email) end
    local segment = client:find("segments", t.segment.name)
    if segment then
      report("segment", t.segment.name, "exists", segment.id)
    else
      local id = client:call("POST", "/api/segments", catalogue.segment_body(t, ids)).data.id
      report("segment", t.segment.name, "created", id)
    end
  end
end

return M
