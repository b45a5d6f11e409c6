--- `returnflow templates list|show|preview|lint|install`: the prebuilt notification flows.
-- The work is in returnflow.cli.catalogue (templates, mapping, rendering, lint) and
-- returnflow.cli.install (Klaviyo); this module reads the command line and prints.
-- @module returnflow.cli.templates
local native = require "returnflow.native"
local catalogue = require "returnflow.cli.catalogue"
local install = require "returnflow.cli.install"
local testing = require "returnflow.testing"

local json = native.json
local M = {}

local USAGE = [[
usage: returnflow templates list|show|preview|lint|install [options] [NAME]
  list                          every template: name, kind, trigger metric, title
  show NAME                     one template: what it sends, its files, the flow or segment body
  preview NAME [--event FILE] [--out DIR] [--organization NAME]
                                the email for a fixture (or FILE) mapped by the template's handlers:
                                DIR/NAME.html, DIR/NAME.txt, DIR/NAME.subject (default DIR: preview)
  lint [NAME]                   the email reads only what the mapping emits; handlers load; bodies build
  install NAME --tenant T [-c CONFIG] [--setup-email ADDRESS]
                                creates the email template and the draft flow (or the segment) in
                                Klaviyo unless they exist, on the metrics found there; a metric not
                                there yet stops it, unless --setup-email: then one backfilled event
                                on that profile creates it. A dry tenant prints the requests
  --templates DIR               the catalogue (default: ./templates, else the checkout's, else the installed one)
  --fixtures DIR                the Loop fixtures templates name (default: ./fixtures/loop, else as --templates)
]]

local function fail(fmt, ...)
  io.stderr:write("returnflow templates: ", fmt:format(...), "\n")
  return 2
end

-- Options (--name value, --name=value, -c value) and positional arguments.
local function parse(args)
  local opts, rest = {}, {}
  local i = 1
  while args[i] do
    local a = args[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    if name then
      opts[name] = value
    elseif a:match("^%-%-[%w-]+$") or a == "-c" then
      name = a == "-c" and "config" or a:sub(3)
      if name == "help" then opts.help = true
      else i = i + 1; opts[name] = args[i] or error({ usage = "option " .. a .. " needs a value" }) end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

local function load_or_fail(folder, name)
  local t, problems = catalogue.load(folder, name)
  if not t then
    for _, p in ipairs(problems) do io.stderr:write(p, "\n") end
    return nil
  end
  return t, problems
end

local commands = {}

function commands.list(folder)
  local names = catalogue.names(folder)
  if #names == 0 then return fail("no templates in %s", folder) end
  print(string.format("%-30s %-8s %-44s %s", "name", "kind", "metric", "what it is"))
  for _, name in ipairs(names) do
    local t = catalogue.load(folder, name)
    if t then
      print(string.format("%-30s %-8s %-44s %s", name, tostring(t.kind), tostring(t.metric or "-"), tostring(t.title)))
    end
  end
  print(string.format("\n%d templates in %s. Copy a template's .lua file into your scripts folder to turn it on; "
                      .. "'returnflow templates show NAME' tells more.", #names, folder))
  return 0
end

function commands.show(folder, name)
  local t = load_or_fail(folder, name)
  if not t then return 1 end
  print(t.title .. " (" .. t.name .. ", " .. t.kind .. ")")
  print("  " .. t.description)
  if t.handlers then
    print("  handlers:  " .. t.dir .. "/" .. t.handlers .. "   (copy it into your scripts folder to turn it on)")
  else
    print("  handlers:  none: the default scripts track all it needs")
  end
  if t.metric then print("  metric:    " .. t.metric .. (t.own_metric and "   (its own: " .. t.own_metric .. ")" or "")) end
  local fixtures = {}
  for _, f in ipairs(t.fixtures or {}) do fixtures[#fixtures + 1] = catalogue.fixture_label(f) end
  print("  fixtures:  " .. table.concat(fixtures, "; "))
  if t.kind == "flow" then
    print("  email:     " .. t.dir .. "/" .. t.email.html .. ", " .. t.dir .. "/" .. t.email.text)
    print("  subject:   " .. t.email.subject)
    if t.replaces_loop_email then
      print("  replaces:  Loop's \"" .. t.replaces_loop_email .. "\" email: switch it off in Loop once the flow is live")
    end
    print("\nPOST /api/flows (ids are filled in at install):")
    print(native.pretty(json.encode(catalogue.flow_body(t, "(metric id)", "(template id)"))))
  else
    print("\nPOST /api/segments (ids are filled in at install):")
    local ids = {}
    for _, m in ipairs(catalogue.segment_metrics(t)) do ids[m] = "(id of " .. m .. ")" end
    print(native.pretty(json.encode(catalogue.segment_body(t, ids))))
  end
  return 0
end

function commands.preview(folder, name, opts)
  local t = load_or_fail(folder, name)
  if not t then return 1 end
  if t.kind ~= "flow" then return fail("%s is a segment: it has no email to preview", name) end
  local parts, problems = catalogue.email(t)
  if #problems > 0 then
    for _, p in ipairs(problems) do io.stderr:write(p, "\n") end
    return 1
  end
  local dir, done = catalogue.scripts_folder(t, false)
  local scripts = testing.load(dir, { tenant = "preview" })
  local entry = t.fixtures[1]
  if not entry and not opts.event then done() return fail("%s names no fixture: give one with --event FILE", name) end
  if opts.event then
    local f = io.open(opts.event, "rb")
    if not f then done() return fail("cannot read %s", opts.event) end
    entry = json.decode(f:read("a"))
    f:close()
    if type(entry) ~= "table" then done() return fail("%s is not a JSON event", opts.event) end
  end
  local result, event = catalogue.map(scripts, t, entry)
  done()
  if not event then
    return fail("%s: the event was %s%s and tracked no %q, so there is no email to show", opts.event or
                catalogue.fixture_label(entry), result.status, result.reason and " (" .. result.reason .. ")" or "", t.metric)
  end
  local out, missing = catalogue.render(parts, catalogue.context(event, opts.organization))
  local target = opts.out or "preview"
  os.execute("mkdir -p '" .. target:gsub("'", "'\\''") .. "'")
  local files = {
    { target .. "/" .. name .. ".html", out.html },
    { target .. "/" .. name .. ".txt", out.text },
    { target .. "/" .. name .. ".subject", "Subject: " .. out.subject .. "\nPreview: " .. (out.preview_text or "") .. "\n" },
  }
  for _, file in ipairs(files) do
    local f = assert(io.open(file[1], "wb"))
    f:write(file[2])
    f:close()
    print("  wrote " .. file[1])
  end
  print("Subject: " .. out.subject)
  local any = false
  for part, list in pairs(missing) do
    any = true
    io.stderr:write(string.format("warning: %s rendered without %s\n", parts[part].name, table.concat(list, ", ")))
  end
  return any and 1 or 0
end

function commands.lint(folder, name)
  local names = name and { name } or catalogue.names(folder)
  if #names == 0 then return fail("no templates in %s", folder) end
  local bad = 0
  for _, n in ipairs(names) do
    local problems, notes = catalogue.lint(folder, n)
    for _, note in ipairs(notes or {}) do print("note: " .. note) end
    if #problems > 0 then
      bad = bad + 1
      for _, p in ipairs(problems) do io.stderr:write(p, "\n") end
    end
  end
  print(string.format("lint: %d template%s, %d with problems", #names, #names == 1 and "" or "s", bad))
  return bad > 0 and 1 or 0
end

function commands.install(folder, name, opts)
  if not opts.tenant then return fail("install needs --tenant T (a tenant of the config)") end
  local t, problems = load_or_fail(folder, name)
  if not t then return 1 end
  if #problems > 0 then
    for _, p in ipairs(problems) do io.stderr:write(p, "\n") end
    return 1
  end
  local settings, err = install.tenant(opts.config or "returnflow.conf.lua", opts.tenant)
  if not settings then return fail("%s", err) end
  if settings.key and settings.key_kind ~= "private" then
    return fail("tenant %s has a public key: templates, flows and segments need a private key (pk_...)", opts.tenant)
  end
  local client = install.client(settings, print)
  if client.dry then
    print(string.format("tenant %s has no Klaviyo key (dry): these are the requests install would send", opts.tenant))
  end
  local flow_created = false
  local function report(kind, object, outcome, id)
    flow_created = flow_created or (kind == "flow" and outcome == "created")
    if not client.dry then print(string.format("  %-9s %-46s %-8s %s", kind, object, outcome, id or "")) end
  end
  local ok, failure = pcall(install.install, client, t, report, opts["setup-email"])
  if not ok then return fail("install %s: %s", name, tostring(failure)) end
  if not opts["setup-email"] then
    print("No profile was created in the Klaviyo account: install only looks metrics up (--setup-email ADDRESS lets "
          .. "it create a missing one with an event on that profile).")
  end
  if flow_created then
    local loop_email = t.replaces_loop_email
      and "Once live, switch off Loop's \"" .. t.replaces_loop_email .. "\" email, or customers get two."
      or "Loop has no email of its own for it: nothing to switch off in Loop."
    print("The flow is a draft. Its email is transactional: Klaviyo must approve transactional sends for the account "
          .. "before it goes live. " .. loop_email)
  end
  return 0
end

function M.main(args)
  local ok, opts, rest = pcall(parse, args)
  if not ok then return fail("%s", type(opts) == "table" and opts.usage or tostring(opts)) end
  local command, name = rest[1], rest[2]
  if opts.help or command == "help" or not command then
    io.write(USAGE)
    return (opts.help or command) and 0 or 2
  end
  if opts.fixtures then
    local chosen, err = pcall(testing.use_fixtures, opts.fixtures)
    if not chosen then return fail("--fixtures: %s", (tostring(err):gsub("^.-returnflow%.testing: ", ""))) end
  else
    local here = io.open("fixtures/loop/return.created.json")
    if here then here:close(); testing.use_fixtures("fixtures/loop") end   -- ./fixtures/loop first, as ./templates is
  end
  local run = commands[command]
  if not run then return fail("no command %q\n%s", command, USAGE) end
  if (command == "show" or command == "preview" or command == "install") and not name then
    return fail("%s needs a template NAME ('returnflow templates list' shows them)", command)
  end
  return run(catalogue.folder(opts.templates), name, opts)
end

return M
