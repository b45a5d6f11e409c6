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
M.fixtures = M.root .. "/fixtures/loop"
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

--- A fixture, decoded: change it, then write it with M.event_file. A missing one names its path.
function M.fixture(name)
  local path = M.fixture_path(name)
  local f, err = io.open(path, "rb")
  if not f then error("the Loop fixture is missing: " .. err, 2) end
  local text = f:read("a")
  f:close()
  return M.decode(text)
end

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
  local p = assert(io.popen("ls " .. M.quote(M.fixtures) .. " 2>/dev/null"))
  for line in p:lines() do
    if line:match("%.json$") then names[#names + 1] = line end
  end
  p:close()
  if #names == 0 then error("no Loop fixtures (*.json) in " .. M.fixtures, 2) end
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
  -- In a subshell, so the redirections apply to a whole pipeline, not to its last command.
  local full = string.format("( %s ) <%s >%s 2>%s", cmdline, M.quote(input), M.quote(out), M.quote(err))
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

------------------------------------------------------------------------------------------------------
-- the Klaviyo stand-in (spec/standin/klaviyo_standin.py) and curl

M.standin_script = M.root .. "/spec/standin/klaviyo_standin.py"

local function sleep(seconds) os.execute("sleep " .. seconds) end
M.sleep = sleep

-- The pid of this Lua process: the parent of the shell io.popen starts.
local function own_pid()
  local p = assert(io.popen("echo $PPID"))
  local pid = p:read("l")
  p:close()
  return pid
end

-- True while `pid` runs (a zombie, waiting for a reaper, counts as gone).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- Starts the Klaviyo stand-in on a free port with extra `args` (a list); returns a server object
-- { port, url, pid, log (path of its standard error), stop() }. It exits by itself if this Lua process
-- dies (--watch-pid), so no run leaves it behind; call server:stop() from teardown all the same.
function M.start_standin(args)
  local dir = M.tempdir()
  local out, log = dir .. "/stdout", dir .. "/stderr"
  local parts = { M.quote(M.python), M.quote(M.standin_script), "--port", "0", "--watch-pid", own_pid() }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = M.quote(a) end
  local p = assert(io.popen(table.concat(parts, " ") .. " </dev/null >" .. M.quote(out) .. " 2>"
                            .. M.quote(log) .. " & echo $!"))
  local pid = p:read("l")
  p:close()
  local server = { pid = pid, log = log, dir = dir }
  function server.stop()
    if not server.pid then return end
    os.execute("kill " .. server.pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not alive(server.pid) then server.pid = nil; return end
      sleep(0.05)
    end
    os.execute("kill -9 " .. server.pid .. " 2>/dev/null")
    server.pid = nil
  end
  for _ = 1, 200 do
    local f = io.open(out, "rb")         -- made by the background shell, maybe not yet
    local text = f and f:read("a") or ""
    if f then f:close() end
    local port = text:match("^listening on 127%.0%.0%.1:(%d+)\n")
    if port then
      server.port, server.url = tonumber(port), "http://127.0.0.1:" .. port
      return server
    end
    if not alive(pid) then break end
    sleep(0.05)
  end
  server.stop()
  error("the Klaviyo stand-in did not start:\n" .. read(log), 2)
end

local function curl_args(opts)
  local args = { "-sS", "--max-time", tostring(opts.timeout or 10), "-X", opts.method or (opts.body and "POST" or "GET") }
  for name, value in pairs(opts.headers or {}) do
    args[#args + 1] = "-H"
    args[#args + 1] = M.quote(name .. ": " .. value)
  end
  if opts.body then
    local body = type(opts.body) == "string" and opts.body or M.encode(opts.body)
    args[#args + 1] = "--data-binary"
    args[#args + 1] = "@" .. M.quote(M.tempfile(body, ".json"))
  end
  return args
end

-- Headers of one response ("HTTP/1.1 ..." block): a table with lower-case names.
local function parse_headers(block)
  local headers = {}
  for name, value in block:gmatch("([%w%-]+):[ \t]*([^\r\n]*)") do headers[name:lower()] = value end
  return headers
end

--- One HTTP request with the curl command line. opts: method (default GET, or POST with a body),
-- headers (name -> value), body (a string, or a table sent as JSON), timeout (seconds).
-- Returns { status (0 when nothing was answered), headers (lower-case names), body, json (decoded when
-- it is JSON), exit (curl's exit code), seconds (curl's time_total), stderr }.
function M.curl(url, opts)
  opts = opts or {}
  local dir = M.tempdir()
  local args = curl_args(opts)
  local cmd = "curl " .. table.concat(args, " ") .. " -o " .. M.quote(dir .. "/body") .. " -D "
              .. M.quote(dir .. "/headers") .. " -w '%{http_code} %{time_total}' " .. M.quote(url)
  local stdout, stderr, code = M.sh(cmd)
  local status, seconds = stdout:match("^(%d+) ([%d%.]+)")
  local r = { status = tonumber(status) or 0, seconds = tonumber(seconds), exit = code, stderr = stderr }
  local hf, bf = io.open(dir .. "/headers", "rb"), io.open(dir .. "/body", "rb")
  r.headers = hf and parse_headers(hf:read("a")) or {}
  r.body = bf and bf:read("a") or ""
  if hf then hf:close() end
  if bf then bf:close() end
  if r.body:match("^%s*[{%[]") then r.json = M.decode(r.body) end
  return r
end

--- `n` requests of one kind in one curl run (one connection, kept alive). Returns a list of
-- { status, headers, connects } (connects: new connections curl opened for that request).
function M.curl_burst(n, url, opts)
  opts = opts or {}
  local dir = M.tempdir()
  local cmd = { "curl", table.concat(curl_args(opts), " "), "-D", M.quote(dir .. "/headers"),
                "-w", M.quote("%{http_code} %{num_connects}\\n") }
  for _ = 1, n do cmd[#cmd + 1] = "-o /dev/null " .. M.quote(url) end
  local stdout = M.sh(table.concat(cmd, " "))
  local blocks, current = {}, nil         -- one a final response (interim 1xx ones left out)
  for line in read(dir .. "/headers"):gmatch("[^\n]+") do
    if line:match("^HTTP/%S+ %d") then
      current = nil
      if not line:match("^HTTP/%S+ 1%d%d") then current = #blocks + 1; blocks[current] = "" end
    elseif current then
      blocks[current] = blocks[current] .. line .. "\n"
    end
  end
  local list = {}
  for status, connects in stdout:gmatch("(%d+) (%d+)\n") do
    list[#list + 1] = { status = tonumber(status), connects = tonumber(connects),
                        headers = parse_headers(blocks[#list + 1] or "") }
  end
  return list
end


------------------------------------------------------------------------------------------------------
-- returnflow serve as a process, and signed webhooks

--- Runs a shell command that must succeed; returns its stdout.
function M.sh_ok(cmd)
  local out, err, code = M.sh(cmd)
  assert(code == 0, cmd .. "\n" .. out .. err)
  return out
end

--- A folder with the default scripts and a config for one tenant "shop" on a free port.
-- opts: secret, max_body, klaviyo (a Lua table constructor text for the tenant's klaviyo settings).
function M.serve_dir(opts)
  opts = opts or {}
  local dir = M.tempdir()
  M.sh_ok("cp -r " .. M.quote(M.scripts) .. " " .. M.quote(dir .. "/scripts"))
  write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data", max_body = %d,
  timeouts = { header = 2, body = 2, idle = 5 },
  tenants = { shop = { scripts = "scripts", webhook_secret = %q, klaviyo = %s } },
}]], opts.max_body or 1048576, opts.secret or "spec-secret", opts.klaviyo or "{}"))
  return dir
end

local Server = {}
Server.__index = Server

--- Starts `returnflow serve` in dir (see serve_dir); returns { dir, pid, address, url(), stop(signal) }.
function M.start_serve(dir)
  local err = dir .. "/serve.err"
  local p = assert(io.popen(string.format("cd %s && %s serve -c returnflow.conf.lua >/dev/null 2>%s & echo $!",
                                          M.quote(dir), M.quote(M.bin), M.quote(err))))
  local pid = p:read("l")
  p:close()
  local s = setmetatable({ dir = dir, pid = pid, err = err }, Server)
  for _ = 1, 200 do
    local f = io.open(err, "rb")
    local log = f and f:read("a") or ""
    if f then f:close() end
    s.address = log:match('"msg":"listening","address":"([^"]+)"')
    if s.address then return s end
    if not alive(pid) then break end
    sleep(0.05)
  end
  error("serve did not start:\n" .. (io.open(err) and read(err) or ""))
end

function Server:url(tenant) return "http://" .. self.address .. "/v1/webhooks/" .. (tenant or "shop") end

function Server:alive() return alive(self.pid) end

function Server:log() return read(self.err) end

--- Stops the server with a signal (default TERM); returns its log. After KILL nothing is checked.
function Server:stop(signal)
  os.execute("kill -" .. (signal or "TERM") .. " " .. self.pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not alive(self.pid) then break end
    sleep(0.05)
  end
  if alive(self.pid) then os.execute("kill -9 " .. self.pid) end
  local log = read(self.err)
  if signal ~= "KILL" then M.assert_no_sanitizer_report(log, "returnflow serve") end
  return log
end

--- POSTs body with curl, signed with opts.secret (default "spec-secret") unless it is false.
-- Returns the status and the answer. opts: secret, method, content_type.
function M.post_signed(url, body, opts)
  opts = opts or {}
  local file = M.tempfile(body, ".json")
  local sig = ""
  if opts.secret ~= false then
    local out = M.sh_ok(string.format("openssl dgst -sha256 -hmac %s -binary <%s | base64",
                                      M.quote(opts.secret or "spec-secret"), M.quote(file)))
    sig = "-H " .. M.quote("X-Loop-Signature: " .. out:gsub("%s+$", ""))
  end
  local out = M.sh_ok(string.format("curl -s -o - -w '\\n%%{http_code}' -X %s %s -H %s --data-binary @%s %s",
                                    opts.method or "POST", sig,
                                    M.quote("Content-Type: " .. (opts.content_type or "application/json")),
                                    M.quote(file), M.quote(url)))
  local answer, status = out:match("^(.*)\n(%d+)$")
  return tonumber(status), answer
end

--- The number a query of the store in dir returns.
function M.sql_count(dir, sql)
  return tonumber((M.sh_ok(string.format("sqlite3 %s %s", M.quote(dir .. "/data/returnflow.db"), M.quote(sql)))))
end

--- Polls fn until it returns a true value (at most `seconds`, default 10); returns that value.
function M.wait_for(fn, seconds)
  for _ = 1, math.floor((seconds or 10) / 0.05) do
    local v = fn()
    if v then return v end
    sleep(0.05)
  end
  return fn()
end

------------------------------------------------------------------------------------------------------
-- background processes and a clock (spec/lua/durability_spec.lua)

--- Seconds since boot, from /proc/uptime (10 ms steps): a clock read without starting a process.
function M.now()
  local f = assert(io.open("/proc/uptime", "r"))
  local t = f:read("n")
  f:close()
  return t
end

--- True while the process `pid` runs (a zombie counts as gone).
M.alive = alive

--- Starts a shell command line in the background, its standard output and error into files.
-- Returns { pid, out, err (paths), alive(), output() (stdout so far), stop() }; stop() sends TERM,
-- then KILL after 5 s, and returns once the process is gone. Call it from after_each.
function M.spawn(cmdline)
  local dir = M.tempdir()
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local p = assert(io.popen(string.format("%s </dev/null >%s 2>%s & echo $!", cmdline, M.quote(out), M.quote(err))))
  local pid = p:read("l")
  p:close()
  local proc = { pid = pid, out = out, err = err }
  function proc.alive() return proc.pid ~= nil and alive(proc.pid) end
  function proc.output()
    local f = io.open(out, "rb")
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text
  end
  function proc.stop()
    if not proc.pid then return end
    os.execute("kill " .. proc.pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not alive(proc.pid) then proc.pid = nil; return end
      sleep(0.05)
    end
    os.execute("kill -9 " .. proc.pid .. " 2>/dev/null")
    proc.pid = nil
  end
  return proc
end

--- Loop's X-Loop-Signature of body: base64 of its HMAC-SHA256 with secret (default "spec-secret").
function M.loop_signature(body, secret)
  local out = M.sh_ok(string.format("openssl dgst -sha256 -hmac %s -binary <%s | base64",
                                    M.quote(secret or "spec-secret"), M.quote(M.tempfile(body, ".json"))))
  return (out:gsub("%s+$", ""))
end

return M
