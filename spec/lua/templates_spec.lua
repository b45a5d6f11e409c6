-- The prebuilt notification templates (templates/, issue 4), proven on whatever the catalogue holds:
-- the issue's minimum catalogue is there and listed; every template's handlers, dropped into a scripts
-- folder beside the defaults or alone, map each fixture it declares to its metric with what its email
-- reads, in requests that validate against Klaviyo's OpenAPI spec; the catalogue lints clean; every
-- flow email previews with nothing missing or left unrendered; the install bodies (FlowCreateQuery,
-- SegmentCreateQuery) validate; install against the Klaviyo stand-in creates each object once and a
-- second install creates none; a broken copy fails lint naming both sides; and the README's five lines.
--
-- Templates are read from templates/*/template.lua as the CLI reads them (data only, no globals), so a
-- template added to the catalogue is covered without touching this file. Fixture variants ({ "file",
-- overrides } entries) are built with returnflow.testing from the normal build/ (see testing_spec.lua
-- for why build/ even when RETURNFLOW_BIN is the ASan binary).
local h = require "helpers"

package.path = h.root .. "/core/lua/?.lua;" .. package.path
-- returnflow.native: the build under test's (helpers.lua puts its lib/ first on package.cpath)
local testing = require "returnflow.testing"
local catalogue = require "returnflow.cli.catalogue"
local json = testing.native.json

local CATALOGUE = h.root .. "/templates"
local KEY = "pk_test_templates_spec_7c41d0"
local REVISION = "2026-07-15"

-- The minimum catalogue: issue 4's 12 customer notifications and 4 segments, and issue 17's use cases of
-- Loop's article (a confirmation by outcome, a first-time returner, a negative review but no return).
local MINIMUM = {
  flow = { "return-confirmation", "return-confirmation-no-label", "return-in-transit", "return-delivered",
           "return-reminder", "return-expired", "refund-issued", "store-credit-issued", "exchange-order-created",
           "exchange-out-of-stock", "return-cancelled", "gift-return-confirmation", "first-time-returner",
           "return-outcome-exchange", "return-outcome-refund", "return-outcome-store-credit" },
  segment = { "serial-returners", "size-fit-returners", "gift-returners", "high-value-returners",
              "negative-review-no-return" },
}

-- Every key the CLI requires of a template.lua, by kind (handlers is optional: a template the
-- defaults already serve whole has none).
local REQUIRED = {
  flow = { "name", "title", "description", "kind", "metric", "fixtures", "email", "flow" },
  segment = { "name", "title", "description", "kind", "fixtures", "segment" },
}

local SETUP_EMAIL = "owner@acme-apparel.example"

------------------------------------------------------------------------------------------- the catalogue

-- Every folder of `folder` holding a template.lua, sorted.
local function catalogue_names(folder)
  local names = {}
  local ls = assert(io.popen("ls " .. h.quote(folder)))
  for name in ls:lines() do
    local f = io.open(folder .. "/" .. name .. "/template.lua", "rb")
    if f then
      f:close()
      names[#names + 1] = name
    end
  end
  ls:close()
  table.sort(names)
  return names
end

-- templates/NAME/template.lua as the CLI reads it; nil and a message when it does not load.
local function load_template(folder, name)
  local path = folder .. "/" .. name .. "/template.lua"
  local chunk, err = loadfile(path, "t", {})
  if not chunk then return nil, err end
  local ok, t = pcall(chunk)
  if not ok or type(t) ~= "table" then return nil, path .. ": " .. tostring(ok and "does not return a table" or t) end
  t.dir = folder .. "/" .. name
  return t
end

local NAMES = catalogue_names(CATALOGUE)
local TEMPLATES, UNLOADABLE, BY_NAME, FLOWS, SEGMENTS = {}, {}, {}, {}, {}
for _, name in ipairs(NAMES) do
  local t, err = load_template(CATALOGUE, name)
  if t then
    TEMPLATES[#TEMPLATES + 1], BY_NAME[name] = t, t
    if t.kind == "flow" then FLOWS[#FLOWS + 1] = t elseif t.kind == "segment" then SEGMENTS[#SEGMENTS + 1] = t end
  else
    UNLOADABLE[#UNLOADABLE + 1] = err
  end
end

-- The reviews app's metric the negative-review segment counts (a setting of its template.lua).
local REVIEW_METRIC = ((BY_NAME["negative-review-no-return"] or {}).external_metrics or {})[1]

-- A fixture entry ("file.json" or { "file.json", overrides }) as the CLI names it in messages.
local function entry_label(entry)
  if type(entry) ~= "table" then return tostring(entry) end
  local keys = {}
  for k, v in pairs(entry[2] or {}) do keys[#keys + 1] = k .. "=" .. (type(v) == "table" and "{...}" or tostring(v)) end
  table.sort(keys)
  return tostring(entry[1]) .. " with " .. table.concat(keys, ", ")
end

-- The event file of a fixture entry (the repository's fixture, or a variant written from it) and the event.
local function entry_event(entry)
  if type(entry) ~= "table" then return h.fixture_path(entry), h.fixture(entry) end
  local path = h.tempfile(json.encode(testing.fixture(entry[1], entry[2])), ".json")
  return path, h.decode(h.read(path))
end

-- The files `returnflow map` gets for an entry: a label event after its return, as Loop sends them
-- (label events carry no customer).
local function map_files(entry)
  local file, event = entry_event(entry)
  if tostring(event.trigger):match("^label%.") then return { h.fixture_path("return.created.json"), file }, event end
  return { file }, event
end

-- The order name a fixture's email should show: its own, or (a label) its return's.
local function fixture_order(event)
  if tostring(event.trigger):match("^label%.") then return h.fixture("return.created.json").order_name end
  if type(event.order_name) == "string" then return event.order_name end
  if type(event.external_order_name) == "string" then return event.external_order_name end
  return nil
end

-- The event properties a flow email reads (the name after "event." in a {{ }} or {% %} tag), from the
-- subject, the preview text, the HTML and the text part, sorted.
local function email_reads(t)
  local sources = { t.email.subject or "", t.email.preview_text or "", h.read(t.dir .. "/" .. t.email.html),
                    h.read(t.dir .. "/" .. t.email.text) }
  local names, seen = {}, {}
  for _, source in ipairs(sources) do
    for tag in source:gmatch("{[{%%](.-)[}%%]}") do
      for name in tag:gmatch("%f[%w_.]event%.([%a_][%w_]*)") do
        if not seen[name] then
          seen[name] = true
          names[#names + 1] = name
        end
      end
    end
  end
  table.sort(names)
  return names
end

-- A segment's "metric:NAME" placeholders and its profile-property conditions ({ property, value }).
local function segment_needs(t)
  local metrics, properties, seen = {}, {}, {}
  local function walk(v)
    if type(v) == "string" and v:match("^metric:") and not seen[v] then
      seen[v] = true
      metrics[#metrics + 1] = v:sub(8)
    elseif type(v) == "table" then
      if v.type == "profile-property" and type(v.filter) == "table" then
        properties[#properties + 1] = { property = tostring(v.property):match("^properties%['(.-)'%]$") or v.property,
                                        value = v.filter.value }
      end
      for _, x in pairs(v) do walk(x) end
    end
  end
  walk(t.segment)
  table.sort(metrics)
  return metrics, properties
end

------------------------------------------------------------------------------------ mapping and output

-- A scripts folder with the template's handler file (if it has one), beside the default scripts or alone.
local function scripts_with(t, alone)
  local files = {}
  if t.handlers then files[t.handlers] = h.read(t.dir .. "/" .. t.handlers) end
  if not alone then files["10-defaults.lua"] = 'return require "returnflow.defaults"\n' end
  return h.scripts_dir(files)
end

-- The attributes of every event of `metric` a document holds, tracked now or scheduled.
local function metric_events(doc, metric)
  local found = {}
  for _, r in ipairs(doc.requests) do
    local a = r.body.data.attributes
    if type(a.metric) == "table" and a.metric.data.attributes.name == metric then found[#found + 1] = a end
  end
  for _, s in ipairs(doc.scheduled) do
    local a = s.request.body.data.attributes
    if a.metric.data.attributes.name == metric then found[#found + 1] = a end
  end
  return found
end

-- Does a request of the document append `value` to the profile property (meta.patch_properties.append)?
local function appends(doc, property, value)
  local function walk(v)
    if type(v) ~= "table" then return false end
    local patch = type(v.patch_properties) == "table" and v.patch_properties.append
    if type(patch) == "table" then
      local got = patch[property]
      if got == value then return true end
      if type(got) == "table" then
        for _, x in ipairs(got) do
          if x == value then return true end
        end
      end
    end
    for _, x in pairs(v) do
      if walk(x) then return true end
    end
    return false
  end
  for _, r in ipairs(doc.requests) do
    if walk(r.body) then return true end
  end
  return false
end

-- A `returnflow map` output line with its "input" renamed, so documents of several runs validate in
-- one validator run and its messages still say which run a request came from.
local function relabel(line, input)
  local renamed, n = line:gsub('^{"input":"[^"]*"', function() return '{"input":' .. h.encode(input) end, 1)
  assert(n == 1, "a map document does not start with its input: " .. line:sub(1, 120))
  return renamed
end

-- Dry install output wrapped as one `returnflow map` document (requests are the JSON lines, verbatim).
local function install_doc(name, raws)
  return '{"input":' .. h.encode("install " .. name) .. ',"requests":[' .. table.concat(raws, ",")
         .. '],"scheduled":[],"cancelled":[]}'
end

-- A config with tenants "dry" (no key) and, given a stand-in, "shop" (a private key, the stand-in's URL).
local function config(server)
  local shop = server and string.format('shop = { klaviyo = { key = %q, base_url = %q } },', KEY, server.url) or ""
  return h.write(h.tempdir() .. "/returnflow.conf.lua",
                 "return { tenants = { dry = { scripts = \"scripts\" }, " .. shop .. " } }\n")
end

-- `returnflow templates install` of a dry tenant: the decoded request lines (each with .raw) and the run.
local function dry_install(name, conf)
  local stdout, stderr, code = h.run({ "templates", "install", name, "--tenant", "dry", "-c", conf,
                                       "--templates", CATALOGUE })
  local requests = {}
  for _, line in ipairs(h.lines(stdout)) do
    if line:sub(1, 1) == "{" then
      local r = h.decode(line)
      r.raw = line
      requests[#requests + 1] = r
    end
  end
  return requests, { stdout = stdout, stderr = stderr, code = code }
end

-- Does a line of `text` hold every string of `parts` (literally)? Returns that line.
local function line_with(text, parts)
  for line in text:gmatch("[^\n]+") do
    local all = true
    for _, part in ipairs(parts) do
      if not line:find(part, 1, true) then all = false break end
    end
    if all then return line end
  end
  return nil
end

local function api_headers()
  return { ["revision"] = REVISION, ["Accept"] = "application/vnd.api+json",
           ["Authorization"] = "Klaviyo-API-Key " .. KEY }
end

-- The stand-in's created objects: { templates = {...}, flows = {...}, segments = {...} }.
local function standin_objects(server) return h.curl(server.url .. "/_standin/objects").json end

-- Klaviyo's metrics as the stand-in lists them: name -> list of ids.
local function standin_metrics(server)
  local r = h.curl(server.url .. "/api/metrics", { headers = api_headers() })
  assert.equal(200, r.status, r.body)
  local ids = {}
  for _, m in ipairs(r.json.data) do
    ids[m.attributes.name] = ids[m.attributes.name] or {}
    table.insert(ids[m.attributes.name], m.id)
  end
  return ids
end

-- The objects of a list by name: name -> list of objects.
local function by_name(list)
  local names = {}
  for _, o in ipairs(list) do
    names[o.attributes.name] = names[o.attributes.name] or {}
    table.insert(names[o.attributes.name], o)
  end
  return names
end

-- The line of install output reporting one object: "  KIND  NAME  OUTCOME  ID".
local function reported(stdout, kind, name, outcome)
  return stdout:find("\n  " .. kind .. "%s+" .. h.literal(name) .. "%s+" .. outcome .. "%f[%s]")
         or stdout:find("^  " .. kind .. "%s+" .. h.literal(name) .. "%s+" .. outcome .. "%f[%s]")
end

teardown(function() h.cleanup() end)

---------------------------------------------------------------------------------------------- 1

describe("the template catalogue", function()
  it("holds the issues' 16 flows and 5 segments, and every template.lua loads", function()
    assert.same({}, UNLOADABLE)
    for kind, names in pairs(MINIMUM) do
      for _, name in ipairs(names) do
        local t = BY_NAME[name]
        assert.is_table(t, "templates/" .. name .. "/template.lua is missing")
        assert.equal(kind, t.kind, name .. " is a " .. tostring(t.kind))
        assert.equal(name, t.name)
      end
    end
    assert.is_true(#FLOWS >= 16, #FLOWS .. " flows")
    assert.is_true(#SEGMENTS >= 5, #SEGMENTS .. " segments")
    assert.equal(#NAMES, #FLOWS + #SEGMENTS)
  end)

  it("documents every template: docs/templates/NAME.md, linked from the catalogue, naming its metric", function()
    local readme = h.read(h.root .. "/docs/templates/README.md")
    for _, t in ipairs(TEMPLATES) do
      local page = io.open(h.root .. "/docs/templates/" .. t.name .. ".md", "rb")
      assert.is_not_nil(page, "docs/templates/" .. t.name .. ".md is missing")
      local text = page:read("a")
      page:close()
      assert.truthy(readme:find(("| [%s](%s.md) |"):format(t.name, t.name), 1, true), t.name .. ": no link in the catalogue")
      if t.metric then assert.truthy(text:find(t.metric, 1, true), t.name .. ".md does not name " .. t.metric) end
      if t.handlers then assert.truthy(text:find(t.handlers, 1, true), t.name .. ".md does not name " .. t.handlers) end
    end
  end)

  it("shows every template in `templates list`, with its kind and metric", function()
    local stdout, stderr, code = h.run({ "templates", "list", "--templates", CATALOGUE })
    assert.equal(0, code, stderr)
    for _, t in ipairs(TEMPLATES) do
      local row = stdout:match("\n(" .. h.literal(t.name) .. " [^\n]*)")
      assert.is_string(row, t.name .. " is not listed:\n" .. stdout)
      assert.matches("^" .. h.literal(t.name) .. "%s+" .. t.kind .. "%s+" .. h.literal(t.metric or "-") .. "%s", row)
    end
    assert.matches("\n" .. #NAMES .. " templates in ", stdout)
  end)

  it("shows each template whole with `templates show`: its handler file and its Klaviyo body", function()
    for _, t in ipairs(TEMPLATES) do
      local stdout, stderr, code = h.run({ "templates", "show", t.name, "--templates", CATALOGUE })
      assert.equal(0, code, t.name .. ": " .. stderr)
      if t.handlers then assert.matches(h.literal(t.dir .. "/" .. t.handlers), stdout)
      else assert.matches("handlers:  none: the default scripts track all it needs", stdout, 1, true) end
      assert.matches(t.kind == "flow" and "POST /api/flows" or "POST /api/segments", stdout, 1, true)
    end
  end)
end)

---------------------------------------------------------------------------------------------- 2

describe("a template's handlers in a scripts folder", function()
  for _, t in ipairs(TEMPLATES) do
    it(t.name .. " declares the fixtures it triggers on", function()
      assert.is_table(t.fixtures, t.name .. ": no fixtures list")
      assert.is_true(#t.fixtures > 0, t.name .. ": no fixture, so nothing proves its mapping")
    end)

    for _, entry in ipairs(type(t.fixtures) == "table" and t.fixtures or {}) do
      local label = entry_label(entry)
      local what = t.metric and ("tracks %q"):format(t.metric) or "tags the segment"
      it(("%s: %s %s beside the defaults, passing the flow's filter; every request validates"):format(t.name, label,
                                                                                                  what), function()
        local files = map_files(entry)
        local reads = t.kind == "flow" and email_reads(t) or {}
        local _, properties = segment_needs(t)
        local output = {}
        for _, alone in ipairs({ false }) do
          local how = "beside the defaults"
          local docs, run = h.map(files, { scripts = scripts_with(t, alone) })
          assert.equal(0, run.code, how .. ": " .. run.stderr)
          assert.equal(#files, #docs, how)
          local doc = docs[#docs]
          assert.equal("mapped", doc.status, how .. ": " .. tostring(doc.reason))
          if t.metric then
            local events = metric_events(doc, t.metric)
            assert.equal(1, #events, ("%s: %q tracked %d times (tracked: %s; scheduled: %s)"):format(how, t.metric,
                         #events, table.concat(h.metrics(doc), ", "), table.concat(h.scheduled_metrics(doc), ", ")))
            for _, name in ipairs(reads) do
              assert.is_not_nil((events[1].properties or {})[name],
                                ("%s: %q lacks %s, which the email reads"):format(how, t.metric, name))
            end
            if t.kind == "flow" then
              assert.is_true(catalogue.triggers_flow(t, events[1]), t.name .. ": the event does not pass the filter")
            end
          end
          for _, p in ipairs(properties) do
            assert.is_true(appends(doc, p.property, p.value),
                           ("%s: no request appends %q to %s, which the segment reads"):format(how, tostring(p.value),
                                                                                              tostring(p.property)))
          end
          for i, line in ipairs(run.lines) do
            output[#output + 1] = relabel(line, ("%s %s: %s #%d"):format(t.name, how, label, i))
          end
        end
        local report, code = h.validate(table.concat(output, "\n") .. "\n")
        assert.equal(0, code, report)
        assert.matches(", 0 invalid", report, 1, true)
      end)
    end
  end

  for _, t in ipairs(SEGMENTS) do
    it(t.name .. ": every metric the segment counts is one the defaults (and its handler) track, or another "
       .. "integration's", function()
      local metrics = segment_needs(t)
      local dir, seen = scripts_with(t, false), {}
      for _, m in ipairs(t.external_metrics or {}) do seen[m] = true end
      for _, entry in ipairs(t.fixtures) do
        local docs = h.map((map_files(entry)), { scripts = dir })
        for _, doc in ipairs(docs) do
          for _, m in ipairs(h.metrics(doc)) do seen[m] = true end
        end
      end
      for _, m in ipairs(metrics) do assert.is_true(seen[m], t.name .. " counts " .. m .. ", never tracked") end
      if t.metric then assert.is_true(seen[t.metric], t.name .. " never tracks " .. t.metric) end
    end)
  end
  -- A parcel may go straight to out_for_delivery; one that goes in_transit then out_for_delivery must
  -- still get one email. Which label updates of one return pass return-in-transit's trigger filter?
  local function in_transit_passes(statuses)
    local t = BY_NAME["return-in-transit"]
    local files = { h.fixture_path("return.created.json") }
    for _, status in ipairs(statuses) do
      files[#files + 1] = h.tempfile(json.encode(testing.fixture("label.updated.in_transit.json",
                                                                 { label_status = status })), ".json")
    end
    local docs, run = h.map(files, { scripts = scripts_with(t, false) })
    assert.equal(0, run.code, run.stderr)
    local passed = {}
    for i = 2, #docs do
      local events = metric_events(docs[i], "Loop Label Updated")
      assert.equal(1, #events, docs[i].input)
      if catalogue.triggers_flow(t, events[1]) then passed[#passed + 1] = statuses[i - 1] end
    end
    return passed
  end

  it("return-in-transit: one email per return, on in_transit or out_for_delivery, whichever comes first", function()
    assert.same({ "out_for_delivery" }, in_transit_passes({ "out_for_delivery", "delivered" }))
    assert.same({ "in_transit" }, in_transit_passes({ "in_transit", "out_for_delivery", "delivered" }))
    assert.same({ "out_for_delivery" }, in_transit_passes({ "out_for_delivery", "in_transit" }))   -- out of order
    assert.same({}, in_transit_passes({ "delivered" }))
  end)

  it("store-credit-issued: no email for a giftcard.requested that issues no credit", function()
    local t = BY_NAME["store-credit-issued"]
    local passes = {}
    for _, credit in ipairs({ "25.00", "0.00" }) do
      local file = h.tempfile(json.encode(testing.fixture("giftcard.requested.json", { total_credit_issued = credit })),
                              ".json")
      local docs, run = h.map({ file }, { scripts = scripts_with(t, false) })
      assert.equal(0, run.code, run.stderr)
      local events = metric_events(docs[1], "Loop Store Credit Issued")
      assert.equal(1, #events)
      passes[#passes + 1] = catalogue.triggers_flow(t, events[1])
    end
    assert.same({ true, false }, passes)
  end)

  it("with every template on, each fixture yields each fact once: the defaults' metrics, and a template's "
     .. "own only where it says why", function()
    local files = { ["10-defaults.lua"] = 'return require "returnflow.defaults"\n' }
    local own = {}
    for _, t in ipairs(TEMPLATES) do
      if t.handlers then files[t.handlers] = h.read(t.dir .. "/" .. t.handlers) end
      if t.own_metric then own[t.metric] = true end
    end
    local all, defaults = h.scripts_dir(files), h.scripts_dir({ ["10-defaults.lua"] = files["10-defaults.lua"] })
    -- Loop's order: the returns first (label events need their customer), then the rest
    local order = {}
    for _, name in ipairs(h.fixture_names()) do
      if name:match("^return%.created") then table.insert(order, 1, h.fixture_path(name))
      else order[#order + 1] = h.fixture_path(name) end
    end
    local with_all, run = h.map(order, { scripts = all })
    assert.equal(0, run.code, run.stderr)
    local alone = h.map(order, { scripts = defaults })
    assert.equal(#alone, #with_all)
    for i, doc in ipairs(with_all) do
      local metrics, seen = {}, {}
      for _, m in ipairs(h.metrics(doc)) do metrics[#metrics + 1] = m end
      for _, m in ipairs(h.scheduled_metrics(doc)) do metrics[#metrics + 1] = m end
      local expected = {}
      for _, m in ipairs(h.metrics(alone[i])) do expected[#expected + 1] = m end
      for _, m in ipairs(h.scheduled_metrics(alone[i])) do expected[#expected + 1] = m end
      local extra = {}
      for _, m in ipairs(metrics) do
        assert.is_nil(seen[m], doc.input .. ": " .. m .. " twice")
        seen[m] = true
        if not own[m] then extra[#extra + 1] = m end
      end
      assert.same(expected, extra, doc.input)
    end
  end)
end)

---------------------------------------------------------------------------------------------- 3

---------------------------------------------------------------------------------------------- 3

describe("templates lint", function()
  it("passes for the whole catalogue", function()
    local stdout, stderr, code = h.run({ "templates", "lint", "--templates", CATALOGUE })
    assert.equal("", stderr)
    assert.equal(0, code, stdout)
    assert.matches("lint: " .. #NAMES .. " templates, 0 with problems", stdout, 1, true)
  end)
end)

---------------------------------------------------------------------------------------------- 4

describe("templates preview", function()
  for _, t in ipairs(FLOWS) do
    for _, entry in ipairs(type(t.fixtures) == "table" and t.fixtures or {}) do
      it(("%s renders %s: html, text and subject, nothing missing or left unrendered"):format(t.name,
         entry_label(entry)), function()
        local file, event = entry_event(entry)
        local out = h.tempdir()
        local stdout, stderr, code = h.run({ "templates", "preview", t.name, "--templates", CATALOGUE,
                                             "--event", file, "--out", out })
        assert.equal("", stderr)
        assert.equal(0, code, stdout)
        local html = h.read(out .. "/" .. t.name .. ".html")
        local text = h.read(out .. "/" .. t.name .. ".txt")
        local subject_file = h.read(out .. "/" .. t.name .. ".subject")
        assert.matches("<html", html, 1, true)
        assert.matches("%S", text)
        local subject = subject_file:match("^Subject: ([^\n]*)\n")
        assert.is_string(subject, subject_file)
        assert.matches("%S", subject)
        for part, rendered in pairs({ html = html, text = text, subject = subject_file }) do
          for _, mark in ipairs({ "{{", "}}", "{%", "%}" }) do
            assert.is_nil(rendered:find(mark, 1, true), ("%s: %q left in the %s"):format(t.name, mark, part))
          end
        end
        if t.email.subject:find("event%.order%f[^%w_]") then
          local order = fixture_order(event)
          assert.is_string(order, "the fixture has no order name")
          assert.matches(h.literal(order), subject)
        end
      end)
    end
  end
end)

---------------------------------------------------------------------------------------------- 5

describe("templates install, dry", function()
  local conf
  setup(function() conf = config(nil) end)

  for _, t in ipairs(TEMPLATES) do
    it(t.name .. ": the bodies it would POST validate (" .. (t.kind == "flow" and "FlowCreateQuery"
       or "SegmentCreateQuery") .. "), in the issue's order", function()
      local requests, run = dry_install(t.name, conf)
      assert.equal(0, run.code, run.stderr)
      local posts, raws = {}, {}
      for _, r in ipairs(requests) do
        if r.method == "POST" then
          posts[#posts + 1] = r
          raws[#raws + 1] = r.raw
        end
      end
      local paths = {}
      for i, r in ipairs(posts) do paths[i] = r.path end
      local expected = {}
      if t.kind == "flow" then expected[1] = "/api/templates" end
      expected[#expected + 1] = t.kind == "flow" and "/api/flows" or "/api/segments"
      assert.same(expected, paths)     -- no metric-creating event: no profile is made without --setup-email
      assert.matches("No profile was created in the Klaviyo account", run.stdout, 1, true)
      if t.kind == "flow" then         -- Loop's email to switch off, named only where there is one
        local switch_off = t.replaces_loop_email and "switch off Loop's \"" .. t.replaces_loop_email .. "\" email"
                           or "Loop has no email of its own for it"
        assert.matches(switch_off, run.stdout, 1, true)
      end

      local last = posts[#posts].body.data.attributes
      if t.kind == "flow" then
        local template = posts[1].body.data.attributes
        assert.equal("CODE", template.editor_type)
        assert.equal(h.read(t.dir .. "/" .. t.email.html), template.html)
        assert.equal(t.flow.name, last.name)
        local send
        for _, action in ipairs(last.definition.actions) do
          if action.type == "send-email" then send = action end
        end
        assert.is_table(send, "no send-email action")
        assert.equal("draft", send.data.status)
        assert.is_true(send.data.message.transactional)
        assert.is_false(send.data.message.smart_sending_enabled)
        assert.is_false(send.data.message.add_tracking_params)
        assert.equal(t.email.subject, send.data.message.subject_line)
      else
        assert.equal(t.segment.name, last.name)
        assert.is_nil(h.encode(last.definition):find('"metric:', 1, true), "a metric placeholder is left")
      end
      local report, code = h.validate(install_doc(t.name, raws) .. "\n")
      assert.equal(0, code, report)
      assert.equal(#posts, tonumber(report:match("validated (%d+) requests?, 0 invalid")), report)
    end)
  end

  it("with --setup-email, creates each metric of ours by one backfilled event on that profile, never another "
     .. "integration's", function()
    for _, t in ipairs(TEMPLATES) do
      local stdout, stderr, code = h.run({ "templates", "install", t.name, "--tenant", "dry", "-c", conf,
                                           "--templates", CATALOGUE, "--setup-email", SETUP_EMAIL })
      assert.equal(0, code, stderr)
      local created, external = {}, {}
      for _, m in ipairs(t.external_metrics or {}) do external[m] = true end
      for _, line in ipairs(h.lines(stdout)) do
        if line:sub(1, 1) == "{" and line:find('"path":"/api/events"', 1, true) then
          local a = h.decode(line).body.data.attributes
          assert.is_true(a.backfill, "the metric-creating event must be backfilled")
          assert.equal(SETUP_EMAIL, a.profile.data.attributes.email)
          created[#created + 1] = a.metric.data.attributes.name
        end
      end
      local wanted = {}
      for _, m in ipairs(t.kind == "flow" and { t.metric } or (segment_needs(t))) do
        if not external[m] then wanted[#wanted + 1] = m end
      end
      table.sort(created)
      table.sort(wanted)
      assert.same(wanted, created)
      assert.not_matches("No profile was created", stdout, 1, true)
    end
  end)

  it("prints only requests that validate, as printed (GET lookups included)", function()
    local docs = {}
    for _, t in ipairs(TEMPLATES) do
      local requests, run = dry_install(t.name, conf)
      assert.equal(0, run.code, run.stderr)
      local raws = {}
      for i, r in ipairs(requests) do raws[i] = r.raw end
      docs[#docs + 1] = install_doc(t.name, raws)
    end
    local report, code = h.validate(table.concat(docs, "\n") .. "\n")
    assert.equal(0, code, report)
  end)
end)

---------------------------------------------------------------------------------------------- 6

describe("templates install into the Klaviyo stand-in", function()
  local server, conf, scale, first_round_requests

  -- Real limits (scale 1, so the installer meets Klaviyo's 1/s burst on POST /api/flows) unless the
  -- catalogue has more flows or segments than 14 a minute allow: then scaled, so a run stays near 15 s.
  setup(function()
    scale = math.max(1, math.ceil(math.max(#FLOWS, #SEGMENTS) / 14))
    server = h.start_standin({ "--key", KEY, "--limit-scale", tostring(scale), "--quiet" })
    conf = config(server)
  end)
  teardown(function() server.stop() end)

  local function install(name, setup)
    local args = { "templates", "install", name, "--tenant", "shop", "-c", conf, "--templates", CATALOGUE }
    if setup then args[#args + 1], args[#args + 2] = "--setup-email", SETUP_EMAIL end
    return h.run(args)
  end

  it("stops before creating anything when a metric is not in the account, saying how to get it", function()
    local stdout, stderr, code = install(FLOWS[1].name)
    assert.equal(2, code, stdout .. stderr)
    assert.matches(("the metric %q is not in this Klaviyo account yet, so nothing was created"):format(FLOWS[1].metric),
                   stderr, 1, true)
    assert.matches("--setup-email", stderr, 1, true)
    local objects = standin_objects(server)
    assert.same({ 0, 0, 0 }, { #objects.templates, #objects.flows, #objects.segments })
    assert.same({}, h.curl(server.url .. "/_standin/events").json.events)
  end)

  it("never creates another integration's metric: a segment on a reviews app's waits for it", function()
    for _, t in ipairs(SEGMENTS) do
      if t.external_metrics then
        local stdout, stderr, code = install(t.name, true)
        assert.equal(2, code, stdout .. stderr)
        assert.matches("is another integration's", stderr, 1, true)
        assert.same({}, h.curl(server.url .. "/_standin/events").json.events)
        assert.equal(0, #standin_objects(server).segments)
      end
    end
    -- the reviews app sends its first review: its metric exists from now on
    local review = { data = { type = "event", attributes = {
      properties = { Rating = 1 }, metric = { data = { type = "metric", attributes = { name = REVIEW_METRIC } } },
      profile = { data = { type = "profile", attributes = { email = "reviewer@example.com" } } } } } }
    local headers = api_headers()
    headers["Content-Type"] = "application/vnd.api+json"
    assert.equal(202, h.curl(server.url .. "/api/events", { method = "POST", headers = headers, body = review }).status)
  end)

  it("creates every template, flow and segment once: drafts, transactional, no smart sending or tracking",
     function()
    -- one 429 with Retry-After on top of the real limiter: the installer must wait it out and go on
    assert.equal(201, h.curl(server.url .. "/_standin/faults", { method = "POST",
      body = { kind = "429", path = "/api/flows", retry_after = 1, count = 1 } }).status)
    for _, t in ipairs(TEMPLATES) do
      local stdout, stderr, code = install(t.name, true)
      assert.equal(0, code, t.name .. ": " .. stdout .. stderr)
      if t.kind == "flow" then
        assert.truthy(reported(stdout, "template", t.flow.name, "created"), stdout)
        assert.truthy(reported(stdout, "metric", t.metric, "%a+"), stdout)
        assert.truthy(reported(stdout, "flow", t.flow.name, "created"), stdout)
      else
        for _, m in ipairs((segment_needs(t))) do assert.truthy(reported(stdout, "metric", m, "%a+"), stdout) end
        assert.truthy(reported(stdout, "segment", t.segment.name, "created"), stdout)
      end
    end

    local objects, metric_ids = standin_objects(server), standin_metrics(server)
    assert.equal(#FLOWS, #objects.templates)
    assert.equal(#FLOWS, #objects.flows)
    assert.equal(#SEGMENTS, #objects.segments)
    local templates, flows, segments = by_name(objects.templates), by_name(objects.flows), by_name(objects.segments)
    for _, t in ipairs(FLOWS) do
      local name = t.flow.name
      assert.equal(1, #(templates[name] or {}), "templates named " .. name)
      assert.equal(1, #(flows[name] or {}), "flows named " .. name)
      assert.equal(1, #(metric_ids[t.metric] or {}), "metrics named " .. t.metric)
      local template, flow = templates[name][1], flows[name][1]
      assert.equal("CODE", template.attributes.editor_type)
      assert.equal(h.read(t.dir .. "/" .. t.email.html), template.attributes.html)
      assert.equal("draft", flow.attributes.status)
      local definition = flow.attributes.definition
      assert.equal(1, #definition.triggers)
      assert.same({ "metric", metric_ids[t.metric][1] }, { definition.triggers[1].type, definition.triggers[1].id })
      local filter = definition.triggers[1].trigger_filter
      assert.equal(t.flow.trigger_filter == nil, filter == nil, name .. ": the trigger filter")
      if filter then
        assert.is_nil(h.encode(filter):find('"metric:', 1, true), name .. ": a metric placeholder was sent")
        assert.matches('"metric_id":"' .. metric_ids[t.metric][1] .. '"', h.encode(filter), 1, true)
      end
      local sends = 0
      for _, action in ipairs(definition.actions) do
        if action.type == "send-email" then
          sends = sends + 1
          local message = action.data.message
          assert.equal(template.id, message.template_id)
          assert.is_true(message.transactional, name)
          assert.is_false(message.smart_sending_enabled, name)
          assert.is_false(message.add_tracking_params, name)
          assert.equal("draft", action.data.status)
        end
      end
      assert.equal(1, sends, name .. ": send-email actions")
    end
    for _, t in ipairs(SEGMENTS) do
      local name = t.segment.name
      assert.equal(1, #(segments[name] or {}), "segments named " .. name)
      local definition = h.encode(segments[name][1].attributes.definition)
      for _, m in ipairs((segment_needs(t))) do
        assert.equal(1, #(metric_ids[m] or {}), "metrics named " .. m)
        assert.matches('"metric_id":"' .. metric_ids[m][1] .. '"', definition, 1, true)
      end
      assert.is_nil(definition:find('"metric:', 1, true), name .. ": a metric placeholder was sent")
    end
    local made = 0
    for _, e in ipairs(h.curl(server.url .. "/_standin/events").json.events) do
      if e.metric ~= REVIEW_METRIC then
        made = made + 1
        assert.is_true(e.backfill, e.metric .. ": a metric-creating event must be backfilled (no flow fires)")
        assert.equal(SETUP_EMAIL, e.profile.email)
      end
    end
    local ours = {}        -- one event per metric the catalogue needs, and only the first time
    for _, t in ipairs(TEMPLATES) do
      for _, m in ipairs(t.kind == "flow" and { t.metric } or (segment_needs(t))) do
        if m ~= REVIEW_METRIC then ours[m] = true end
      end
    end
    local distinct = 0
    for _ in pairs(ours) do distinct = distinct + 1 end
    assert.equal(distinct, made)

    local stats = h.curl(server.url .. "/_standin/stats").json
    local flow_posts = stats.by_endpoint["POST /api/flows"] or {}
    assert.equal(#FLOWS, flow_posts["201"] or 0)
    -- The fault is taken by the first request under /api/flows, a look-up (GET) or a create (POST),
    -- whichever the installer sends first: it met it, waited it out and went on.
    local throttled = 0
    for route, answers in pairs(stats.by_endpoint) do
      if route:match("^%u+ /api/flows") then throttled = throttled + (answers["429"] or 0) end
    end
    assert.is_true(throttled >= 1, "no 429 was met: " .. h.encode(stats.by_endpoint))
    first_round_requests = stats.requests
  end)

  it("creates nothing the second time: every object exists", function()
    assert.is_number(first_round_requests, "the first install did not complete")
    local before = standin_objects(server)
    for _, t in ipairs(TEMPLATES) do
      local stdout, stderr, code = install(t.name)
      assert.equal(0, code, t.name .. ": " .. stdout .. stderr)
      local objects = {}
      if t.kind == "flow" then
        objects = { { "template", t.flow.name }, { "metric", t.metric }, { "flow", t.flow.name } }
      else
        for _, m in ipairs((segment_needs(t))) do objects[#objects + 1] = { "metric", m } end
        objects[#objects + 1] = { "segment", t.segment.name }
      end
      for _, o in ipairs(objects) do
        assert.truthy(reported(stdout, o[1], o[2], "exists"), stdout)
        assert.falsy(reported(stdout, o[1], o[2], "created"), stdout)
      end
      local reports = stdout:gsub("\nThe flow is a draft[^\n]*", ""):gsub("\nNo profile was created[^\n]*", "")
      assert.equal(#objects, #h.lines(reports), stdout)
    end
    assert.same(before, standin_objects(server))
    local since = h.curl(server.url .. "/_standin/requests?since=" .. first_round_requests).json.requests
    assert.is_true(#since > 0)
    for _, r in ipairs(since) do assert.equal("GET", r.method, r.method .. " " .. r.path) end
  end)
end)

---------------------------------------------------------------------------------------------- 7

describe("templates lint of a broken copy", function()
  -- The first flow whose handler sets, on a line of its own and only there, a property its email reads.
  local function pick(templates)
    for _, t in ipairs(templates) do
      local handler = t.handlers and h.read(t.dir .. "/" .. t.handlers) or ""
      local reads = {}
      for _, name in ipairs(email_reads(t)) do reads[name] = true end
      for line in handler:gmatch("[^\n]+") do
        local key = line:match("^%s*([%a_][%w_]*)%s*=[^=].*,%s*$")
        if key and reads[key] then
          local n = 0
          for other in handler:gmatch("[^\n]+") do
            if other:match("^%s*" .. key .. "%s*=[^=]") then n = n + 1 end
          end
          if n == 1 then return t, key, line end
        end
      end
    end
  end

  local folder, t, copy

  before_each(function()
    folder = h.tempdir() .. "/templates"
    h.sh_ok("cp -R " .. h.quote(CATALOGUE) .. " " .. h.quote(folder))
    local chosen = pick(FLOWS)
    assert.is_table(chosen, "no flow template to break")
    t = chosen
    copy = folder .. "/" .. t.name
  end)

  local function lint(name)
    local args = { "templates", "lint", "--templates", folder }
    if name then args[#args + 1] = name end
    local stdout, stderr, code = h.run(args)
    return stdout, stderr, code
  end

  -- Rewrites a file of the copy line by line: edit(line, number) returns its replacement (or nil to drop it).
  local function rewrite(path, edit)
    local lines, n = {}, 0
    for line in (h.read(path) .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      local new = edit(line, n)
      if new then lines[#lines + 1] = new end
    end
    h.write(path, table.concat(lines, "\n"))
  end

  it("names the email, the variable, the metric and the handler file when the email reads what is not there",
     function()
    local html = copy .. "/" .. t.email.html
    local done = false
    rewrite(html, function(line)
      if not done and line:find("</body>", 1, true) then
        done = true
        return "<p>{{ event.not_a_property }}</p>\n" .. line
      end
      return line
    end)
    assert.is_true(done, "no </body> in " .. html)
    local stdout, stderr, code = lint()
    assert.equal(1, code, stdout .. stderr)
    assert.matches("lint: " .. #NAMES .. " templates, 1 with problems", stdout, 1, true)
    assert.truthy(line_with(stderr, { html, "event.not_a_property", '"' .. t.metric .. '"',
                                      copy .. "/" .. t.handlers }), stderr)
  end)

  it("names the file and the line of an {% if %} never closed", function()
    local html = copy .. "/" .. t.email.html
    local at = 3
    rewrite(html, function(line, n)
      if n == at then return "{% if event.order %}<p>never closed</p>\n" .. line end
      return line
    end)
    local stdout, stderr, code = lint(t.name)
    assert.equal(1, code, stdout .. stderr)
    local line = line_with(stderr, { html .. ":" })
    assert.is_string(line, stderr)
    assert.is_truthy(line:find(html .. ":" .. at .. ":", 1, true) or line:find("line " .. at .. "%f[%D]"), line)
    assert.matches("if", line, 1, true)
  end)

  it("names the property a handler no longer emits, with the metric and the handler file", function()
    local _, key, removed = pick(FLOWS)
    local handler = copy .. "/" .. t.handlers
    local dropped = 0
    rewrite(handler, function(line)
      if line == removed then dropped = dropped + 1 return nil end
      return line
    end)
    assert.equal(1, dropped)
    local stdout, stderr, code = lint(t.name)
    assert.equal(1, code, stdout .. stderr)
    assert.truthy(line_with(stderr, { "event." .. key, '"' .. t.metric .. '"', handler, "does not carry it" }), stderr)
  end)

  it("names each key missing from a template.lua", function()
    local cases = {}
    for _, key in ipairs(REQUIRED.flow) do cases[#cases + 1] = { t, key } end
    local segment = SEGMENTS[1]
    assert.is_table(segment, "no segment template")
    for _, key in ipairs(REQUIRED.segment) do cases[#cases + 1] = { segment, key } end
    for _, case in ipairs(cases) do
      local victim, key = case[1], case[2]
      local path = folder .. "/" .. victim.name .. "/template.lua"
      local original = h.read(path)
      local renamed = 0
      rewrite(path, function(line)
        local indent = line:match("^(%s%s)" .. key .. "%s*=")
        if indent and renamed == 0 then
          renamed = 1
          return indent .. "removed_" .. line:sub(3)
        end
        return line
      end)
      assert.equal(1, renamed, victim.name .. ": no top-level '" .. key .. "' line to remove")
      local stdout, stderr, code = lint(victim.name)
      assert.equal(1, code, key .. ": " .. stdout .. stderr)
      local line = line_with(stderr, { path .. ":" })
      assert.is_string(line, key .. ": " .. path .. " is not named:\n" .. stderr)
      local message = line:sub(line:find(path .. ":", 1, true) + #path + 1)
      assert.truthy(message:find("%f[%w_]" .. key .. "%f[^%w_]"), key .. " is not named:\n" .. stderr)
      h.write(path, original)
    end
  end)
end)

describe("templates lint of a template.lua with a wrong shape", function()
  local folder
  before_each(function()
    folder = h.tempdir() .. "/templates"
    h.sh_ok("cp -R " .. h.quote(CATALOGUE) .. " " .. h.quote(folder))
  end)

  -- Appends `extra` inside the returned table of NAME/template.lua, then lints NAME.
  local function lint_with(name, extra)
    local path = folder .. "/" .. name .. "/template.lua"
    local text = h.read(path)
    local at = text:find("}%s*$")
    h.write(path, text:sub(1, at - 1) .. extra .. "\n}\n")
    local stdout, stderr, code = h.run({ "templates", "lint", "--templates", folder, name })
    return stderr, code, path, stdout
  end

  it("names a misspelt key, a delay Klaviyo has no unit for, and a fixture that is not there", function()
    local flow = FLOWS[1]
    local stderr, code, path, stdout = lint_with(flow.name, "  replaces_loop_emial = 'x',\n")
    assert.equal(1, code, stdout .. stderr)
    assert.truthy(line_with(stderr, { path, "unknown key 'replaces_loop_emial'" }), stderr)
    h.sh_ok("cp -R " .. h.quote(CATALOGUE .. "/" .. flow.name) .. "/. " .. h.quote(folder .. "/" .. flow.name))
    stderr, code = lint_with(flow.name, "  flow = { name = 'x', delay = { unit = 'fortnights', value = 1 } },\n")
    assert.equal(1, code, stderr)
    assert.truthy(line_with(stderr, { path, "flow.delay must be" }), stderr)
    h.sh_ok("cp -R " .. h.quote(CATALOGUE .. "/" .. flow.name) .. "/. " .. h.quote(folder .. "/" .. flow.name))
    stderr, code = lint_with(flow.name, "  fixtures = { 'label.nope.json' },\n")
    assert.equal(1, code, stderr)
    assert.truthy(line_with(stderr, { path, "fixture label.nope.json is not a file of fixtures/loop" }), stderr)
    assert.not_matches("internal error", stderr, 1, true)
  end)
end)

---------------------------------------------------------------------------------------------- 8

describe("the README's five lines", function()
  local server, conf
  setup(function()
    server = h.start_standin({ "--key", KEY, "--quiet" })
    conf = config(server)
  end)
  teardown(function() server.stop() end)

  -- The binary run from `dir` (a merchant's shell), checked for sanitizer reports.
  local function run_in(dir, args)
    local parts = { "cd", h.quote(dir), "&&", h.quote(h.bin) }
    for _, a in ipairs(args) do parts[#parts + 1] = h.quote(a) end
    local cmdline = table.concat(parts, " ")
    local stdout, stderr, code = h.sh(cmdline)
    h.assert_no_sanitizer_report(stderr, cmdline)
    return stdout, stderr, code
  end

  it("list, copy one file into scripts/, see its metric in map, preview it, install it", function()
    -- 1. returnflow templates list   (from the checkout: ./templates)
    local listing, stderr, code = run_in(h.root, { "templates", "list" })
    assert.equal(0, code, stderr)
    local name = listing:match("\n(%S+)%s+flow%s")
    assert.is_string(name, listing)
    local t = BY_NAME[name]
    local shown = run_in(h.root, { "templates", "show", name })
    local handler = shown:match("handlers:%s+(%S+)")
    assert.equal("templates/" .. name .. "/" .. t.handlers, handler)

    -- 2. cp templates/NAME/NN-NAME.lua scripts/   (a copy of the repo's scripts/)
    local scripts = h.tempdir() .. "/scripts"
    h.sh_ok("cp -R " .. h.quote(h.scripts) .. " " .. h.quote(scripts))
    local files = map_files(t.fixtures[1])
    local reads = email_reads(t)
    local function lacking(doc)          -- what the email reads that the default metric does not carry
      local events, missing = metric_events(doc, t.metric), {}
      assert.equal(1, #events, table.concat(h.metrics(doc), ", "))
      for _, r in ipairs(reads) do
        if events[1].properties[r] == nil then missing[#missing + 1] = r end
      end
      return missing
    end
    local before = h.map(files, { scripts = scripts })
    assert.is_true(#lacking(before[#before]) > 0, "the defaults alone carry all the email reads")
    h.sh_ok("cp " .. h.quote(h.root .. "/" .. handler) .. " " .. h.quote(scripts .. "/"))

    -- 3. returnflow map --scripts scripts FIXTURE   shows the default metric, now with what the email reads
    local docs, run = h.map(files, { scripts = scripts })
    assert.equal(0, run.code, run.stderr)
    assert.same({}, lacking(docs[#docs]))

    -- 4. returnflow templates preview NAME
    local out = h.tempdir()
    local stdout
    stdout, stderr, code = run_in(h.root, { "templates", "preview", name, "--out", out })
    assert.equal(0, code, stdout .. stderr)
    assert.matches("<html", h.read(out .. "/" .. name .. ".html"), 1, true)
    assert.matches("^Subject: %S", h.read(out .. "/" .. name .. ".subject"))

    -- 5. returnflow templates install NAME --tenant shop --setup-email ADDRESS   (a new account has no metric)
    stdout, stderr, code = run_in(h.root, { "templates", "install", name, "--tenant", "shop", "-c", conf,
                                            "--setup-email", SETUP_EMAIL })
    assert.equal(0, code, stdout .. stderr)
    assert.truthy(reported(stdout, "template", t.flow.name, "created"), stdout)
    assert.truthy(reported(stdout, "metric", t.metric, "created"), stdout)
    assert.truthy(reported(stdout, "flow", t.flow.name, "created"), stdout)
    local objects = standin_objects(server)
    assert.equal(1, #objects.templates)
    assert.equal(1, #objects.flows)
    assert.equal(t.flow.name, objects.flows[1].attributes.name)
    assert.equal("draft", objects.flows[1].attributes.status)
    assert.is_nil(stdout:find(KEY, 1, true), "the key was printed")
  end)
end)
