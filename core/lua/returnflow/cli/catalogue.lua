--- The template catalogue: reading templates/NAME/template.lua, mapping a template's fixtures through
-- its handlers, rendering its email, checking that the two agree, and building the Klaviyo bodies
-- that install sends. One place, so preview, lint, install and the specs all mean the same thing.
--
-- A template's handlers run the way a merchant runs them: copied next to the default scripts (a
-- `return require "returnflow.defaults"` file), in returnflow.native's sandbox. Label events carry no
-- customer, so a label fixture is mapped after return.created.json, as Loop sends them.
-- @module returnflow.cli.catalogue
local native = require "returnflow.native"
local render = require "returnflow.render"
local testing = require "returnflow.testing"

local json = native.json
local M = {}

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function quote(path) return "'" .. path:gsub("'", "'\\''") .. "'" end

--- The catalogue folder: the given one, ./templates, or the installed one.
function M.folder(given)
  if given then return given end
  if read("templates/return-confirmation/template.lua") then return "templates" end
  return (native.share or "/usr/local/share/returnflow") .. "/templates"
end

--- Every template name in the folder, sorted.
function M.names(folder)
  local names = {}
  local ls = io.popen("ls " .. quote(folder) .. " 2>/dev/null")
  for name in ls:lines() do
    if read(folder .. "/" .. name .. "/template.lua") then names[#names + 1] = name end
  end
  ls:close()
  table.sort(names)
  return names
end

-- `handlers` is optional: a template whose metric the defaults already track with all it needs has none.
local REQUIRED = {
  flow = { "name", "title", "description", "kind", "metric", "fixtures", "email", "flow" },
  segment = { "name", "title", "description", "kind", "fixtures", "segment" },
}
-- Every key template.lua may hold, by table: a misspelt one is a problem, not a silent default.
local KNOWN = {
  [""] = { dir = 1, name = 1, title = 1, description = 1, kind = 1, handlers = 1, metric = 1, fixtures = 1,
           replaces_loop_email = 1, email = 1, flow = 1, segment = 1, own_metric = 1, external_metrics = 1 },
  email = { subject = 1, preview_text = 1, html = 1, text = 1, logo_url = 1 },
  flow = { name = 1, trigger_filter = 1, delay = 1 },
  segment = { name = 1, definition = 1 },
}
local DELAY_UNITS = { days = true, hours = true, minutes = true }

-- Shape checks of what becomes the Klaviyo bodies (the OpenAPI validation is in the specs).
local function check_definitions(t, problem)
  for part, keys in pairs(KNOWN) do
    local tbl = part == "" and t or t[part]
    if tbl ~= nil and type(tbl) ~= "table" then
      problem("'%s' must be a table", part)
    elseif tbl then
      for k in pairs(tbl) do
        if not keys[k] then problem("unknown key '%s%s'", part == "" and "" or part .. ".", tostring(k)) end
      end
    end
  end
  if t.fixtures ~= nil and type(t.fixtures) ~= "table" then problem("'fixtures' must be a list") end
  for _, entry in ipairs(type(t.fixtures) == "table" and t.fixtures or {}) do
    local file = type(entry) == "table" and entry[1] or entry
    if type(file) ~= "string" or not pcall(testing.fixture_text, file) then
      problem("fixture %s is not a file of fixtures/loop", tostring(file))
    end
  end
  local logo = type(t.email) == "table" and t.email.logo_url or nil
  if logo ~= nil and (type(logo) ~= "string" or not logo:match("^https?://[^%s\"'<>]+$")) then
    problem("email.logo_url must be an http(s) URL with no spaces, quotes or angle brackets")
  end
  local delay = type(t.flow) == "table" and t.flow.delay
  if delay and (type(delay) ~= "table" or not DELAY_UNITS[delay.unit] or math.type(delay.value) ~= "integer"
                or delay.value < 1) then
    problem("flow.delay must be { unit = \"days\"|\"hours\"|\"minutes\", value = a whole number above 0 }")
  end
  local filter = type(t.flow) == "table" and t.flow.trigger_filter
  if filter and (type(filter) ~= "table" or type(filter.condition_groups) ~= "table" or #filter.condition_groups == 0) then
    problem("flow.trigger_filter must hold condition_groups, a non-empty list")
  end
  local definition = type(t.segment) == "table" and t.segment.definition
  if t.segment and (type(definition) ~= "table" or type(definition.condition_groups) ~= "table"
                    or #definition.condition_groups == 0) then
    problem("segment.definition must hold condition_groups, a non-empty list")
  end
end

--- Loads templates/NAME/template.lua (data only: it runs with no globals). Returns the template
-- (with .dir) and a list of problems, each "PATH: message".
function M.load(folder, name)
  local dir = folder .. "/" .. name
  local path = dir .. "/template.lua"
  local chunk, err = loadfile(path, "t", {})
  if not chunk then return nil, { err } end
  local ok, t = pcall(chunk)
  if not ok then return nil, { path .. ": " .. tostring(t) } end
  if type(t) ~= "table" then return nil, { path .. ": must return a table" } end
  t.dir = dir
  local problems = {}
  local function problem(fmt, ...) problems[#problems + 1] = path .. ": " .. fmt:format(...) end
  if not REQUIRED[t.kind] then
    problem("kind must be \"flow\" or \"segment\", not %s", tostring(t.kind))
    return t, problems
  end
  for _, key in ipairs(REQUIRED[t.kind]) do
    if t[key] == nil then problem("'%s' is missing", key) end
  end
  check_definitions(t, problem)
  if #problems > 0 then return t, problems end
  if t.name ~= name then problem("name is %q but the folder is %q", tostring(t.name), name) end
  if t.handlers and not read(dir .. "/" .. t.handlers) then problem("no handlers file %s", t.handlers) end
  if t.own_metric ~= nil and type(t.own_metric) ~= "string" then
    problem("own_metric must say, as text, why no default metric carries what the template needs")
  end
  if t.external_metrics ~= nil and type(t.external_metrics) ~= "table" then
    problem("external_metrics must be a list of metric names")
  end
  if type(t.fixtures) == "table" and #t.fixtures == 0 then
    problem("no fixtures: nothing would prove the handlers emit what the %s reads",
            t.kind == "flow" and "email" or "segment")
  end
  if t.kind == "flow" and type(t.email) == "table" then
    for _, key in ipairs({ "subject", "html", "text" }) do
      if not t.email[key] then problem("email.%s is missing", key) end
    end
    for _, key in ipairs({ "html", "text" }) do
      if t.email[key] and not read(dir .. "/" .. t.email[key]) then problem("no email file %s", t.email[key]) end
    end
  end
  return t, problems
end

--- A fixture entry: "file.json" or { "file.json", overrides } (overrides as in testing.fixture).
local function fixture_of(entry)
  if type(entry) == "table" then return entry[1], entry[2] end
  return entry, nil
end

--- A label for a fixture entry in messages.
function M.fixture_label(entry)
  local file, overrides = fixture_of(entry)
  if not overrides then return file end
  local keys = {}
  for k, v in pairs(overrides) do keys[#keys + 1] = k .. "=" .. (type(v) == "table" and "{...}" or tostring(v)) end
  table.sort(keys)
  return file .. " with " .. table.concat(keys, ", ")
end

--- A scripts folder holding the defaults and the template's handlers, if it has any (removed by
-- `done()`); `alone`: the handlers without the defaults.
function M.scripts_folder(t, alone)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. quote(dir)))
  if not alone then write(dir .. "/10-defaults.lua", 'return require "returnflow.defaults"\n') end
  if t.handlers then write(dir .. "/" .. t.handlers, assert(read(t.dir .. "/" .. t.handlers))) end
  return dir, function() os.execute("rm -rf " .. quote(dir)) end
end

--- The metrics the default scripts alone track (or schedule) for the template's fixtures: the facts
-- a template should trigger on rather than track again.
function M.default_metrics(t)
  local dir, done = M.scripts_folder({ dir = t.dir }, false)
  local scripts = testing.load(dir, { tenant = "lint" })
  local seen = {}
  for _, entry in ipairs(t.fixtures or {}) do
    local result = M.map(scripts, t, entry)
    for _, list in ipairs({ result.events, result.scheduled }) do
      for _, e in ipairs(list) do seen[e.metric] = true end
    end
  end
  done()
  return seen
end

local NUMERIC = {
  ["equals"] = function(a, b) return a == b end, ["not-equals"] = function(a, b) return a ~= b end,
  ["greater-than"] = function(a, b) return a > b end, ["greater-than-or-equal"] = function(a, b) return a >= b end,
  ["less-than"] = function(a, b) return a < b end, ["less-than-or-equal"] = function(a, b) return a <= b end,
}

-- Does a Klaviyo event pass one metric-property condition? Unknown filters pass (Klaviyo decides).
local function passes(properties, condition)
  if condition.type ~= "metric-property" then return true end
  local v, f = properties[condition.field], condition.filter or {}
  if f.type == "boolean" or (f.type == "string" and f.operator == "equals") then return v == f.value end
  if f.type == "string" and f.operator == "not-equals" then return v ~= f.value end
  if f.type == "string" and (f.operator == "in" or f.operator == "not-in") then
    local found = false
    for _, x in ipairs(type(f.value) == "table" and f.value or {}) do found = found or x == v end
    return (f.operator == "in") == found
  end
  if f.type == "numeric" and NUMERIC[f.operator] then
    return type(v) == "number" and type(f.value) == "number" and NUMERIC[f.operator](v, f.value)
  end
  if f.type == "list" and (f.operator == "contains" or f.operator == "not-contains") then
    local found = false
    for _, x in ipairs(type(v) == "table" and v or {}) do found = found or x == f.value end
    return (f.operator == "contains") == found
  end
  return true
end

--- Does the event pass the flow's trigger filter (every group; any condition of a group)?
function M.triggers_flow(t, klaviyo_event)
  local filter = type(t.flow) == "table" and t.flow.trigger_filter
  if not filter then return true end
  for _, group in ipairs(filter.condition_groups) do
    local any = false
    for _, c in ipairs(group.conditions or {}) do any = any or passes(klaviyo_event.properties or {}, c) end
    if not any then return false end
  end
  return true
end

--- Maps one fixture entry (or an event table) through the template's handlers. Returns the result
-- and the Klaviyo event of the template's metric in it (tracked now or scheduled), or nil.
function M.map(scripts, t, entry, options)
  local event
  if type(entry) == "table" and entry.trigger then
    event = entry
  else
    local file, overrides = fixture_of(entry)
    event = testing.fixture(file, overrides)
  end
  scripts:forget()
  if type(event.trigger) == "string" and event.trigger:match("^label%.") then
    scripts:map(testing.fixture("return.created"), "return.created.json (the label's return)")
  end
  local result = scripts:map(event, options and options.label)
  local metric = t.metric
  for _, list in ipairs({ result.events, result.scheduled }) do
    for _, e in ipairs(list) do
      if e.metric == metric then return result, e end
    end
  end
  return result, nil
end

--- What the email sees: event = the event's properties, person = the profile, organization.
function M.context(klaviyo_event, organization)
  local person = {}
  for k, v in pairs(klaviyo_event.profile or {}) do
    if k ~= "properties" and k ~= "meta" then person[k] = v end
  end
  for k, v in pairs((klaviyo_event.profile or {}).properties or {}) do person[k] = v end
  return { event = klaviyo_event.properties or {}, person = person,
           organization = { name = organization or "Acme Apparel" } }
end

-- The email's logo slot: what stands between these markers in email.html (the store's initial and
-- name) is replaced by the image at email.logo_url, when the template sets one.
local LOGO_SLOT = "(<!%-%- returnflow:logo.-%-%->)(.-)(<!%-%- /returnflow:logo %-%->)"

--- email.html as it goes to Klaviyo (and to a preview): the logo slot filled from email.logo_url.
function M.html(t)
  local html = read(t.dir .. "/" .. t.email.html)
  local url = t.email.logo_url
  if not html or type(url) ~= "string" then return html end
  local img = '<img src="' .. url .. '" height="40" alt="{{ organization.name }}" style="display:block; height:40px; '
              .. 'width:auto; max-width:240px; border:0; outline:none; text-decoration:none;">'
  local indent = "\n            "
  return (html:gsub(LOGO_SLOT, function(open, _, close) return open .. indent .. img .. indent .. close end, 1))
end

--- The email's parts compiled: subject, preview_text, html, text (each a render template), or problems.
function M.email(t)
  local parts, problems = {}, {}
  local sources = {
    subject = { t.email.subject, t.dir .. "/template.lua (email.subject)" },
    preview_text = { t.email.preview_text or "", t.dir .. "/template.lua (email.preview_text)" },
    html = { M.html(t), t.dir .. "/" .. t.email.html },
    text = { read(t.dir .. "/" .. t.email.text), t.dir .. "/" .. t.email.text },
  }
  for part, src in pairs(sources) do
    if src[1] then
      local tpl, err = render.compile(src[1], src[2])
      if tpl then parts[part] = { tpl = tpl, name = src[2], escape = part == "html" }
      else problems[#problems + 1] = err end
    end
  end
  return parts, problems
end

--- Renders every part for one context. Returns { part = text } and the missing variables by part.
function M.render(parts, context)
  local out, missing = {}, {}
  for part, p in pairs(parts) do
    local text, absent = p.tpl:render(context, { escape = p.escape, null = json.null })
    out[part] = text
    if #absent > 0 then missing[part] = absent end
  end
  return out, missing
end

-- Does value carry path ("a.b", "items[].title")? Lists check every item; an empty list passes.
local function carries(value, path)
  local head, rest = path:match("^([^.%[]+)(.*)$")
  if head == nil then return true end
  if type(value) ~= "table" or value == json.null then return false end
  local v = value[head]
  if v == nil and head:match("^%d+$") then v = value[tonumber(head) + 1] end
  if v == nil then return false end
  if rest == "" then return true end
  if rest:sub(1, 2) == "[]" then
    local sub = rest:sub(3):gsub("^%.", "")
    if type(v) ~= "table" then return false end
    for _, item in ipairs(v) do
      if sub ~= "" and not carries(item, sub) then return false end
    end
    return true
  end
  return carries(v, rest:sub(2))
end

local ROOTS = { event = true, person = true, organization = true }

--- Lint of one template: problems, each a line naming the file and what is wrong, and notes (why a
-- template tracks a metric of its own).
function M.lint(folder, name)
  local t, problems = M.load(folder, name)
  if not t or #problems > 0 or not REQUIRED[t.kind] then return problems end
  local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local handlers = t.handlers and t.dir .. "/" .. t.handlers or "the default scripts"
  for _, alone in ipairs(t.handlers and { true, false } or { false }) do
    local dir, done = M.scripts_folder(t, alone)
    local m, load_problems = native.mapper({ scripts = dir })
    if m then m:close() end
    done()
    if not m then
      for line in load_problems:gmatch("[^\n]+") do
        problem("%s", (line:gsub("^" .. dir:gsub("%p", "%%%0") .. "/", t.dir .. "/")))
      end
      return problems
    end
  end
  local parts = {}
  if t.kind == "flow" then
    local compile_problems
    parts, compile_problems = M.email(t)
    for _, p in ipairs(compile_problems) do problem("%s", p) end
    for _, p in pairs(parts) do
      for _, var in ipairs(p.tpl:variables()) do
        local root = var:match("^([^.%[]+)")
        if not ROOTS[root] then
          problem("%s reads %s: only event.*, person.* and organization.* exist in a flow email", p.name, var)
        end
      end
    end
  end
  local dir, done = M.scripts_folder(t, false)
  local scripts = testing.load(dir, { tenant = "lint" })
  local metrics_seen = {}
  for _, entry in ipairs(t.fixtures) do
    local label = M.fixture_label(entry)
    local result, event = M.map(scripts, t, entry)
    for _, list in ipairs({ result.events, result.scheduled }) do
      for _, e in ipairs(list) do metrics_seen[e.metric] = true end
    end
    if t.metric and not event then
      problem("%s: %s mapped from %s does not track %q (%s; tracked: %s)", handlers, t.name, label, t.metric,
              result.status .. (result.reason and ": " .. result.reason or ""), table.concat(result:metrics(), ", "))
    elseif t.kind == "flow" then
      if not M.triggers_flow(t, event) then
        problem("%s/template.lua: %q mapped from %s does not pass flow.trigger_filter: the fixture would send "
                .. "no email", t.dir, t.metric, label)
      end
      local carried = {}
      for k in pairs(event.properties or {}) do carried[#carried + 1] = k end
      table.sort(carried)
      for _, p in pairs(parts) do
        for _, var in ipairs(p.tpl:variables()) do
          local prop = var:match("^event%.(.+)$")
          if prop and not carries(event.properties, prop) then
            problem("%s reads event.%s, but %q mapped by %s from %s does not carry it (it carries: %s)", p.name,
                    prop, t.metric, handlers, label, table.concat(carried, ", "))
          end
        end
      end
      local _, missing = M.render(parts, M.context(event))
      for part, list in pairs(missing) do
        problem("%s renders with %s missing for %s", parts[part].name, table.concat(list, ", "), label)
      end
    end
  end
  done()
  -- A template triggers on the default metric that carries its fact; its own metric only where no
  -- default carries what it needs, and then template.lua says why (own_metric).
  local defaults = M.default_metrics(t)
  local own = {}
  if t.metric and not defaults[t.metric] and metrics_seen[t.metric] then
    if t.own_metric then own[1] = ("%s: own metric %q: %s"):format(t.name, t.metric, t.own_metric)
    else
      problem("%s/template.lua: %q is not a metric the default scripts track for its fixtures: trigger on the "
              .. "default that carries the fact (add what the email needs with `changes`), or say in own_metric "
              .. "why none does", t.dir, t.metric)
    end
  end
  local external = {}
  for _, m in ipairs(t.external_metrics or {}) do external[m] = true end
  if t.kind == "segment" then
    local function walk(v)
      if type(v) == "string" and v:match("^metric:") and not metrics_seen[v:sub(8)] and not external[v:sub(8)] then
        problem("%s/template.lua: the segment counts %q, which %s never tracks for its fixtures", t.dir, v:sub(8),
                handlers)
      elseif type(v) == "table" then
        for _, x in pairs(v) do walk(x) end
      end
    end
    walk(t.segment)
  end
  return problems, own
end

------------------------------------------------------------------------------- Klaviyo bodies

-- Lua tables as JSON: lists become arrays even when empty where the spec wants an array.
local function array(t) return json.array(t or {}) end

--- POST /api/templates: the email as a CODE template.
function M.template_body(t)
  return { data = { type = "template", attributes = {
    name = t.flow.name, editor_type = "CODE",
    html = M.html(t), text = read(t.dir .. "/" .. t.email.text),
  } } }
end

--- POST /api/flows: a draft flow, triggered by the metric, [delay], send the transactional email.
function M.flow_body(t, metric_id, template_id)
  local trigger = { type = "metric", id = metric_id }
  if t.flow.trigger_filter then trigger.trigger_filter = M.resolve(t.flow.trigger_filter, { [t.metric] = metric_id }) end
  local email = {
    temporary_id = "send-email", type = "send-email", links = { next = json.null },
    data = { status = "draft", message = {
      subject_line = t.email.subject, preview_text = t.email.preview_text or "", template_id = template_id,
      transactional = true, smart_sending_enabled = false, add_tracking_params = false,
      custom_tracking_params = array(),
    } },
  }
  local actions, entry = { email }, "send-email"
  if t.flow.delay then
    table.insert(actions, 1, { temporary_id = "delay", type = "time-delay", links = { next = "send-email" },
                               data = { unit = t.flow.delay.unit, value = t.flow.delay.value, timezone = "profile" } })
    entry = "delay"
  end
  return { data = { type = "flow", attributes = { name = t.flow.name, definition = {
    triggers = array({ trigger }), actions = array(actions), entry_action_id = entry,
  } } } }
end

--- Replaces "metric:NAME" strings with metric ids (a copy). ids: name -> id.
function M.resolve(value, ids)
  if type(value) == "string" and value:match("^metric:") then return ids[value:sub(8)] or value end
  if type(value) ~= "table" then return value end
  local copy = {}
  for k, v in pairs(value) do copy[k] = M.resolve(v, ids) end
  -- The array/object markers are guarded (getmetatable gives their name): mark the copy the same way.
  local mt = getmetatable(value)
  if mt == "array" then return json.array(copy) elseif mt == "object" then return json.object(copy) end
  return setmetatable(copy, mt)
end

--- The metric names a segment definition counts ("metric:NAME" placeholders).
function M.segment_metrics(t)
  local names, seen = {}, {}
  local function walk(v)
    if type(v) == "string" and v:match("^metric:") and not seen[v] then
      seen[v] = true
      names[#names + 1] = v:sub(8)
    elseif type(v) == "table" then
      for _, x in pairs(v) do walk(x) end
    end
  end
  walk(t.segment)
  table.sort(names)
  return names
end

--- POST /api/segments.
function M.segment_body(t, ids)
  return { data = { type = "segment", attributes = {
    name = t.segment.name, definition = M.resolve(t.segment.definition, ids),
  } } }
end

return M
