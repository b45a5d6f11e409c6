--- What the busted specs share: where the binary and the fixtures are, running the binary, decoding
-- its output, building scripts folders and event variants in temporary places.
--
-- Every run of the binary is checked for sanitizer reports on standard error (the suite also runs
-- against an ASan+UBSan build), so a memory error fails the spec that caused it, whatever it asserts.
--
-- JSON goes through dkjson (a dependency of Debian's lua-busted) rather than lua-cjson 2.1.0, because
-- the specs must see what the binary really wrote: dkjson keeps integers as Lua integers (14080 stays
-- 14080, 13377290551445 stays exact) and keeps [] and {} apart, both ways. Where the exact bytes
-- matter (an empty object, a 64-bit id), the specs also look at the raw output line.
local json = require "dkjson"

local M = {}

local function abs(path)
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

-- The repo root: this file is spec/lua/helpers.lua.
local source = debug.getinfo(1, "S").source:sub(2)
M.root = abs(source):gsub("/%./", "/"):gsub("/spec/lua/helpers%.lua$", "")

M.bin = abs(os.getenv("RETURNFLOW_BIN") or (M.root .. "/build/returnflow"))
M.shared = abs(os.getenv("SHARED") or (M.root .. "/../shared"))
M.fixtures = M.shared .. "/fixtures/loop"
M.scripts = M.root .. "/scripts"
M.validator = M.root .. "/spec/tools/validate_requests.py"
M.python = "/usr/bin/python3"       -- Debian's, where python3-jsonschema lives

M.null = json.null

------------------------------------------------------------------------------------------------------
-- files and folders

local temps = {}

--- Single-quotes a string for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end
M.read = read

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end
M.write = write

local function mkdtemp()
  local p = assert(io.popen("mktemp -d /tmp/returnflow-spec.XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

--- A new empty folder under /tmp, removed by M.cleanup().
function M.tempdir()
  local dir = mkdtemp()
  temps[#temps + 1] = dir
  return dir
end

--- Writes text into a new temporary file (name ends with `suffix`) and returns its path.
function M.tempfile(text, suffix)
  local dir = M.tempdir()
  return write(dir .. "/input" .. (suffix or ".json"), text or "")
end

--- A scripts folder holding `files` ({ ["10-a.lua"] = "return {...}" }); returns its path.
function M.scripts_dir(files)
  local dir = M.tempdir()
  for name, text in pairs(files) do write(dir .. "/" .. name, text) end
  return dir
end

--- Removes every temporary folder made so far (call it from teardown).
function M.cleanup()
  for i = #temps, 1, -1 do
    os.execute("rm -rf " .. M.quote(temps[i]))
    temps[i] = nil
  end
end

------------------------------------------------------------------------------------------------------
-- JSON

--- Decodes JSON text (integers stay integers; null is M.null; [] and {} are marked apart).
function M.decode(text)
  local v, _, err = json.decode(text, 1, json.null)
  if err then error("JSON: " .. err .. " in: " .. text:sub(1, 200), 2) end
  return v
end

--- Encodes a value; tables decoded by M.decode keep their array/object kind.
function M.encode(v)
  return json.encode(v)
end

--- "array" or "object" for a table decoded by M.decode (so [] and {} can be told apart), else nil.
function M.json_kind(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt and mt.__jsontype or nil
end

--- A table that encodes as a JSON object even when empty.
function M.object(t) return setmetatable(t or {}, { __jsontype = "object" }) end

--- A table that encodes as a JSON array even when empty.
function M.array(t) return setmetatable(t or {}, { __jsontype = "array" }) end

--- Path of a fixture file: M.fixture_path("return.created.json").
function M.fixture_path(name) return M.fixtures .. "/" .. name end

--- A fixture, decoded: change it, then write it with M.event_file.
function M.fixture(name) return M.decode(read(M.fixture_path(name))) end

--- Writes one event (a table, or JSON text) to a temporary file; returns its path.
function M.event_file(ev)
  return M.tempfile(type(ev) == "string" and ev or M.encode(ev), ".json")
end

--- Writes several events (tables or JSON text) as NDJSON, one a line; returns its path.
function M.ndjson_file(events)
  local lines = {}
  for i, ev in ipairs(events) do
    lines[i] = type(ev) == "string" and ev or M.encode(ev)
  end
  return M.tempfile(table.concat(lines, "\n") .. "\n", ".ndjson")
end

--- Every fixture file name, sorted.
function M.fixture_names()
  local names = {}
  local p = assert(io.popen("ls " .. M.quote(M.fixtures)))
  for line in p:lines() do
    if line:match("%.json$") then names[#names + 1] = line end
  end
  p:close()
  table.sort(names)
  return names
end

------------------------------------------------------------------------------------------------------
-- running things

local SANITIZER_MARKS = { "AddressSanitizer", "LeakSanitizer", "runtime error:" }

--- Fails (from the caller's spec) when stderr holds a sanitizer report.
function M.assert_no_sanitizer_report(stderr, what)
  for _, mark in ipairs(SANITIZER_MARKS) do
    if stderr:find(mark, 1, true) then
      error(string.format("sanitizer report (%s) while running %s:\n%s", mark, what, stderr), 3)
    end
  end
end

--- Runs a shell command line with optional standard input; returns stdout, stderr, exit code.
function M.sh(cmdline, stdin_text)
  local dir = mkdtemp()
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local input = "/dev/null"
  if stdin_text then input = write(dir .. "/stdin", stdin_text) end
  local full = string.format("%s <%s >%s 2>%s", cmdline, M.quote(input), M.quote(out), M.quote(err))
  local ok, how, code = os.execute(full)
  if how == "signal" then code = 128 + code elseif ok == true then code = 0 end
  local stdout, stderr = read(out), read(err)
  os.execute("rm -rf " .. M.quote(dir))
  return stdout, stderr, code
end

--- Runs the returnflow binary with `args` (a list) and optional standard input.
-- Returns stdout, stderr, exit code; fails the spec if stderr holds a sanitizer report.
function M.run(args, stdin_text)
  local parts = { M.quote(M.bin) }
  for i, a in ipairs(args or {}) do parts[i + 1] = M.quote(a) end
  local cmdline = table.concat(parts, " ")
  local stdout, stderr, code = M.sh(cmdline, stdin_text)
  M.assert_no_sanitizer_report(stderr, cmdline)
  return stdout, stderr, code
end

--- Escapes a string for use inside a Lua pattern.
function M.literal(s)
  return (tostring(s):gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

--- Splits output into its non-empty lines.
function M.lines(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

--- `returnflow map` over `files` (a path or a list of paths; "-" with opts.stdin).
-- opts: scripts (folder, default the repo's scripts/), args (extra options, a list), stdin.
-- Returns the decoded documents (each with its raw output line in `.raw`), then a run record
-- { stdout, stderr, code, lines }.
function M.map(files, opts)
  opts = opts or {}
  if type(files) == "string" then files = { files } end
  local args = { "map", "--scripts", opts.scripts or M.scripts }
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  for _, f in ipairs(files) do args[#args + 1] = f end
  local stdout, stderr, code = M.run(args, opts.stdin)
  local docs, lines = {}, M.lines(stdout)
  for i, line in ipairs(lines) do
    docs[i] = M.decode(line)
    docs[i].raw = line
  end
  return docs, { stdout = stdout, stderr = stderr, code = code, lines = lines }
end

--- The document of `docs` whose input names `file` (a basename is enough), or nil.
function M.doc_for(docs, file)
  for _, d in ipairs(docs) do
    local input = d.input:gsub("#%d+$", "")
    if input == file or input:sub(-#file - 1) == "/" .. file then return d end
  end
  return nil
end

--- Metric names of a document's requests (events only), in order.
function M.metrics(doc)
  local names = {}
  for _, r in ipairs(doc.requests) do
    local a = r.body.data.attributes
    if a.metric then names[#names + 1] = a.metric.data.attributes.name end
  end
  return names
end

--- Metric names of a document's scheduled requests, in order.
function M.scheduled_metrics(doc)
  local names = {}
  for _, s in ipairs(doc.scheduled) do
    names[#names + 1] = s.request.body.data.attributes.metric.data.attributes.name
  end
  return names
end

--- Runs spec/tools/validate_requests.py over `returnflow map` output text.
-- Returns its stdout (violations, then the summary line) and exit code.
function M.validate(map_output, extra_args)
  local cmd = M.quote(M.python) .. " " .. M.quote(M.validator) .. " --require-requests"
  for _, a in ipairs(extra_args or {}) do cmd = cmd .. " " .. M.quote(a) end
  local stdout, stderr, code = M.sh(cmd, map_output)
  return stdout .. stderr, code
end

return M
