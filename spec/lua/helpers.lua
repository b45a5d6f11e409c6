--- What the busted specs share: where the binary and the fixtures are, running the binary, decoding
-- its output, building scripts folders and event variants in temporary places.
--
-- Every run of the binary is checked for sanitizer reports on standard error (the suite also runs
-- against an ASan+UBSan build), so a memory error fails the spec that caused it, whatever it asserts.
--
-- Waiting and talking happen in-process, never a process per call: HTTP through the host's own libcurl
-- client (returnflow.native's http, from the build under test), webhook signatures through the host's
-- signature.c (native.sign), SQL through LuaSQL (Debian's lua-sql-sqlite3, lua-sql-postgres), sleeps and the clock
-- through lua-system (a dependency of lua-busted). Request bodies are checked by one long-lived
-- validator process per run (spec/tools/validate_requests.py --serve).
--
-- The invariant: nothing outlives the run. Every process started here and every temporary folder is
-- recorded; M.cleanup() removes the folders of a spec, and when the busted process ends (its Lua state
-- closes: after a failure too), every process still running is stopped and every folder removed.
--
-- JSON goes through dkjson (a dependency of Debian's lua-busted) rather than lua-cjson 2.1.0, because
-- the specs must see what the binary really wrote: dkjson keeps integers as Lua integers (14080 stays
-- 14080, 13377290551445 stays exact) and keeps [] and {} apart, both ways. Where the exact bytes
-- matter (an empty object, a 64-bit id), the specs also look at the raw output line.
-- Decoding with LPeg (Debian's lua-lpeg, busted's dependency too) when it loads: the same results, and
-- several times faster than dkjson's Lua scanner on the thousands of documents a volume spec reads.
local json = require "dkjson"
if pcall(require, "lpeg") then json = json.use_lpeg() end
local lfs = require "lfs"
local system = require "system"

local M = {}

local function abs(path)
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

-- The repo root: this file is spec/lua/helpers.lua.
local source = debug.getinfo(1, "S").source:sub(2)
M.root = abs(source):gsub("/%./", "/"):gsub("/spec/lua/helpers%.lua$", "")

M.bin = abs(os.getenv("RETURNFLOW_BIN") or (M.root .. "/build/returnflow"))
-- returnflow.native of the build under test: lib/ beside its binary (never sanitized, so it loads into
-- lua5.4 for the ASan build's suite too).
M.lib = M.bin:gsub("/[^/]*$", "") .. "/lib"
package.cpath = M.lib .. "/?.so;" .. package.cpath
M.fixtures = M.root .. "/fixtures/loop"
M.scripts = M.root .. "/scripts"
M.validator = M.root .. "/spec/tools/validate_requests.py"
-- Debian's, where python3-jsonschema lives; RETURNFLOW_SPEC_PYTHON names another (a profiling wrapper, say).
M.python = os.getenv("RETURNFLOW_SPEC_PYTHON") or "/usr/bin/python3"

M.null = json.null

-- The stress specs' sizes. `make test` runs each at a size that still takes every path it checks (bulk
-- jobs of 1,000 events, kills that land in commits, answers, mapping and delivery, a backlog); `make
-- stress` (RETURNFLOW_STRESS=1) at the full size, several times the volume and the CPU. A spec's own
-- variable (RETURNFLOW_VOLUME_N, ...) overrides both.
M.stress = os.getenv("RETURNFLOW_STRESS") == "1"
M.asan = M.bin:find("asan", 1, true) ~= nil

--- The size of a stress spec's run: the variable `env` if set, else `full` under `make stress`, else `quick`.
function M.size(env, full, quick)
  return tonumber(os.getenv(env) or "") or (M.stress and full or quick)
end

------------------------------------------------------------------------------------------------------
-- files and folders

local temps = {}         -- a spec's folders, removed by M.cleanup()
local run_temps = {}     -- the run's own (the validator's), removed when the run ends
local running = {}       -- pid -> true: every process started here and not yet stopped

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

local store_setting        -- below: a config's store on the run's backend

local function write(path, text)
  if path:match("/returnflow%.conf%.lua$") then text = store_setting(path:gsub("/[^/]*$", ""), text) end
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end
M.write = write

-- The pid of this Lua process (/proc/self is the process that opens it).
local function own_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("n")
  f:close()
  return tostring(math.tointeger(pid))
end
M.own_pid = own_pid

-- Folders are made under $TMPDIR (default /tmp), named after this process: unique without a process
-- per folder, and a spec can run a nested suite in a folder of its own. Short names: a PostgreSQL
-- cluster's unix socket lives in its folder, and a nested run's path (clone_spec's leftovers_spec)
-- must stay within the socket path's 107 bytes.
local tmp_root = os.getenv("TMPDIR") or ""
if tmp_root == "" then tmp_root = "/tmp" end              -- TMPDIR= is unset, not the root folder
local made = 0
local function mkdtemp()
  for _ = 1, 1000 do
    made = made + 1
    local dir = string.format("%s/rf-spec.%s.%d", tmp_root, own_pid(), made)
    if lfs.mkdir(dir) then return dir end
  end
  error("cannot make a folder under " .. tmp_root)
end

--- A new empty folder under /tmp, removed by M.cleanup().
function M.tempdir()
  local dir = mkdtemp()
  temps[#temps + 1] = dir
  return dir
end

--- A new empty folder under /tmp kept until the run ends (a template a run's specs share).
function M.run_tempdir()
  local dir = mkdtemp()
  run_temps[dir] = true
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

local close_store_connections   -- below, with the stores

--- Removes every temporary folder made so far (call it from teardown).
function M.cleanup()
  close_store_connections()
  if #temps == 0 then return end
  local quoted = {}
  for i = #temps, 1, -1 do
    quoted[#quoted + 1] = M.quote(temps[i])
    temps[i] = nil
  end
  os.execute("rm -rf " .. table.concat(quoted, " "))
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
  local dir = mkdtemp()          -- removed below; M.finish() removes it if this is interrupted
  run_temps[dir] = true
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local input = "/dev/null"
  if stdin_text then input = write(dir .. "/stdin", stdin_text) end
  -- In a subshell, so the redirections apply to a whole pipeline, not to its last command.
  local full = string.format("( %s ) <%s >%s 2>%s", cmdline, M.quote(input), M.quote(out), M.quote(err))
  local ok, how, code = os.execute(full)
  if how == "signal" then code = 128 + code elseif ok == true then code = 0 end
  local stdout, stderr = read(out), read(err)
  os.remove(out); os.remove(err)
  if stdin_text then os.remove(input) end
  lfs.rmdir(dir)
  run_temps[dir] = nil
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

------------------------------------------------------------------------------------------------------
-- processes, the clock, in-process HTTP and SQL

local function sleep(seconds) system.sleep(tonumber(seconds)) end
M.sleep = sleep

--- Seconds on a monotonic clock (lua-system): read without starting a process.
function M.now() return system.monotime() end

-- True while `pid` runs (a zombie, waiting for a reaper, counts as gone).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- True while the process `pid` runs (a zombie counts as gone).
M.alive = alive

-- Starts `cmdline` in the background (standard input /dev/null unless it redirects it) and records its
-- pid, so that it is stopped when the run ends even if the spec that started it fails.
local function background(cmdline)
  local p = assert(io.popen(cmdline .. " & echo $!"))
  local pid = p:read("l")
  p:close()
  assert(pid and pid:match("^%d+$"), "could not start: " .. cmdline)
  running[pid] = true
  return pid
end

--- Records a process a spec started by other means, so that it too is stopped when the run ends.
function M.track(pid)
  running[tostring(pid)] = true
  return pid
end

-- Sends `signal` (default TERM) to pid, waits up to `seconds` (default 5) for it to go, then KILLs it.
local function terminate(pid, signal, seconds)
  if not pid then return end
  os.execute("kill -" .. (signal or "TERM") .. " " .. pid .. " 2>/dev/null")
  local deadline = M.now() + (seconds or 5)
  while alive(pid) and M.now() < deadline do sleep(0.01) end
  if alive(pid) then
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    while alive(pid) and M.now() < deadline + 5 do sleep(0.01) end
  end
  running[pid] = nil
end

--- Polls fn until it returns a true value (at most `seconds`, default 30: a deadline, which only a
-- failure waits out, generous for a loaded machine); returns that value.
function M.wait_for(fn, seconds)
  local deadline = M.now() + (seconds or 30)
  while M.now() < deadline do
    local v = fn()
    if v then return v end
    sleep(0.02)
  end
  return fn()
end

-- Waits (up to `seconds`) for the line a server prints when it listens; returns the port, or nil.
local function wait_listening(pid, out, pattern, seconds)
  local port
  M.wait_for(function()
    local f = io.open(out, "rb")         -- made by the background shell, maybe not yet
    local text = f and f:read("a") or ""
    if f then f:close() end
    port = text:match(pattern)
    return port or not alive(pid)
  end, seconds or 20)
  return port
end

local native
--- returnflow.native of the build under test (its libcurl client, signature, mapper).
function M.native()
  if not native then
    local ok, lib = pcall(require, "returnflow.native")
    if not ok then error("returnflow.native is not loadable from " .. M.lib .. ": " .. tostring(lib), 2) end
    native = lib
  end
  return native
end

--- One HTTP request, in-process (the host's libcurl client). opts: method (default GET, or POST with a
-- body), headers (name -> value), body (a string, or a table sent as JSON), timeout (seconds).
-- Returns { status (0 when nothing was answered), headers (lower-case names), body, json (decoded when
-- it is JSON), exit (libcurl's error code, 0 on an answer), seconds, stderr (the error) }.
function M.curl(url, opts)
  opts = opts or {}
  local body = opts.body
  if body ~= nil and type(body) ~= "string" then body = M.encode(body) end
  local headers = {}
  for name, value in pairs(opts.headers or {}) do headers[name] = value end
  if body and not headers["Content-Type"] then
    headers["Content-Type"] = "application/x-www-form-urlencoded"      -- what curl -d sends
  end
  local started = M.now()
  local status, answer, got = M.native().http{ url = url, method = opts.method or (body and "POST" or "GET"),
                                              headers = headers, body = body,
                                              timeout_ms = math.floor((opts.timeout or 10) * 1000) }
  local r = { seconds = M.now() - started }
  if not status then
    r.status, r.headers, r.body, r.exit, r.stderr = 0, {}, "", got, answer    -- got: libcurl's code
    return r
  end
  r.status, r.body, r.headers, r.exit, r.stderr = status, answer, got, 0, ""
  if r.body:match("^%s*[{%[]") then r.json = M.decode(r.body) end
  return r
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

--- `n` requests of one kind in one curl run (one connection, kept alive: what this checks is curl's
-- count of connections, so it is curl's). Returns a list of { status, headers, connects }.
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
-- the store's backend: SQLite in each data folder (the default), or PostgreSQL
--
-- RETURNFLOW_SPEC_BACKEND=pg (or M.use_backend("pg") before anything is written: the *_pg_spec.lua
-- files run a spec file so) gives every config this run writes (a returnflow.conf.lua written through
-- M.write, serve_dir's among them) a store of its own: a database of one private PostgreSQL cluster
-- a run (spec/lua/pg.lua), named in the config's store.url. The spec files stay the same: M.sql_rows
-- reads a folder's store wherever it is, SQLite's SQL dialect translated where the two differ.

M.backend = os.getenv("RETURNFLOW_SPEC_BACKEND") == "pg" and "pg" or "sqlite"

--- Runs the rest of this process's specs against the PostgreSQL store ("pg") or SQLite ("sqlite").
function M.use_backend(name)
  assert(name == "pg" or name == "sqlite", "M.use_backend: pg or sqlite")
  M.backend = name
end

local pg_cluster             -- the run's cluster, started on first use, stopped by M.finish
local pg_stores = {}         -- config folder -> { url, db }
local pg_made = 0

--- The run's PostgreSQL cluster (started on first use; spec/lua/pg.lua).
function M.pg_cluster()
  if not pg_cluster then pg_cluster = require("pg").start({ for_run = true }) end
  return pg_cluster
end

--- The PostgreSQL store of a config folder (a new database the first time): { url, db }.
function M.pg_store(dir)
  if pg_stores[dir] then return pg_stores[dir] end
  local cluster = M.pg_cluster()
  pg_made = pg_made + 1
  local db = string.format("rf_%s_%d", own_pid(), pg_made)
  local conn = cluster:connect()
  assert(conn:execute("CREATE DATABASE " .. db))
  conn:close()
  pg_stores[dir] = { url = cluster:url_of(db), db = db, cluster = cluster }
  return pg_stores[dir]
end

--- Records that the config folder dir names a database of a cluster of the spec's own (pg.lua), so
-- M.sql_rows reads it there.
function M.pg_register(dir, cluster, db)
  pg_stores[dir] = { url = cluster:url_of(db), db = db or cluster.db, cluster = cluster }
end

-- A config's text with its store on the run's backend: on PostgreSQL, store.url added (a config that
-- names its own store, or is not a table constructor, stays as it is).
store_setting = function(dir, text)
  if M.backend ~= "pg" or text:find("store%s*=") or not text:find("^%s*return%s*{") then return text end
  return (text:gsub("^(%s*return%s*{)", function(head)
    return head .. string.format(" store = { url = %q },", M.pg_store(dir).url)
  end, 1))
end

--- The arguments that point an operator's command (status, dlq) at the store of the config folder dir:
-- its data folder, and on PostgreSQL the database's URL (--store) beside it.
function M.store_args(dir)
  if pg_stores[dir] then return { "--data", dir .. "/data", "--store", pg_stores[dir].url } end
  return { "--data", dir .. "/data" }
end

-- SQLite's dialect, as the specs write it, in PostgreSQL's: json_extract(X, '$.a.b') and char(N).
local function pg_dialect(sql)
  sql = sql:gsub("json_extract%(([%w_%.]+),%s*'%$%.([^']*)'%)", function(expr, path)
    return "((" .. expr .. ")::json #>> '{" .. path:gsub("%.", ",") .. "}')"
  end)
  return (sql:gsub("char%((%d+)%)", "chr(%1)"))
end

local luasql_env
-- An open connection to the store of the serve folder dir (LuaSQL, in-process), the SQL to run on it,
-- and whether the connection is kept. A SQLite store must exist: opening a missing one would create an
-- empty file under the service. A SQLite connection is opened for each query (cheap, and a spec may
-- replace the file under it); a PostgreSQL one is kept for the store's life, because each connection is
-- a server process started (~5 ms of the server's CPU), and a wait polls every 20 ms: a spec waiting on
-- PostgreSQL kept a quarter of a core busy connecting.
local function store(dir, sql)
  local pgs = pg_stores[dir]
  if pgs then
    pgs.conn = pgs.conn or pgs.cluster:connect(pgs.db)
    return pgs.conn, pgs.db, pg_dialect(sql), true
  end
  local path = dir .. "/data/returnflow.db"
  if not lfs.attributes(path) then error("no store at " .. path, 3) end
  luasql_env = luasql_env or require("luasql.sqlite3").sqlite3()
  local conn = assert(luasql_env:connect(path))
  local cur = conn:execute("PRAGMA busy_timeout = 10000")  -- the service may hold the write lock a moment
  if type(cur) == "userdata" then cur:close() end
  return conn, path, sql, false
end

-- The kept PostgreSQL connections closed (a later query opens its store's again).
close_store_connections = function()
  for _, pgs in pairs(pg_stores) do
    if pgs.conn then pcall(pgs.conn.close, pgs.conn) end
    pgs.conn = nil
  end
end

-- Runs sql on dir's store; a kept connection that fails (the server restarted under it) is opened again
-- once. Returns the cursor (or row count), the error, the connection, its name and whether it is kept.
local function store_execute(dir, sql)
  local conn, path, text, kept = store(dir, sql)
  local cur, err = conn:execute(text)
  if not cur and kept then
    pcall(conn.close, conn)
    pg_stores[dir].conn = nil
    conn, path, text, kept = store(dir, sql)
    cur, err = conn:execute(text)
  end
  return cur, err, conn, path, text, kept
end

--- The rows of a query of the store in dir, each as sqlite3's command line prints it ("a|b|c").
function M.sql_rows(dir, sql)
  local cur, err, conn, path, kept
  cur, err, conn, path, sql, kept = store_execute(dir, sql)
  if not cur then
    if not kept then conn:close() end
    error(path .. ": " .. tostring(err) .. "\n" .. sql, 2)
  end
  local rows = {}
  if type(cur) == "userdata" then
    local row = cur:fetch({}, "n")
    while row do
      local cols = {}
      for i = 1, #cur:getcolnames() do cols[i] = row[i] == nil and "" or tostring(row[i]) end
      rows[#rows + 1] = table.concat(cols, "|")
      row = cur:fetch({}, "n")
    end
    cur:close()
  end
  if not kept then conn:close() end
  return rows
end

--- The number a query of the store in dir returns.
function M.sql_count(dir, sql)
  return tonumber(M.sql_rows(dir, sql)[1])
end

------------------------------------------------------------------------------------------------------
-- the request validator, one process a run

local validator
--- Checks `returnflow map` output text with spec/tools/validate_requests.py (one long-lived process a
-- run: --serve). extra_args: "--loose". Returns its report (violations, then the summary line) and
-- its exit code.
function M.validate(map_output, extra_args)
  local query = { "require-requests=1" }
  for _, a in ipairs(extra_args or {}) do
    assert(a == "--loose", "M.validate: unknown option " .. a)
    query[#query + 1] = "loose=1"
  end
  if not validator or not alive(validator.pid) then
    local dir = mkdtemp()
    run_temps[dir] = true
    local out, log = dir .. "/stdout", dir .. "/stderr"
    local pid = background(string.format("%s %s --serve --watch-pid %s </dev/null >%s 2>%s", M.quote(M.python),
                                          M.quote(M.validator), own_pid(), M.quote(out), M.quote(log)))
    local port = wait_listening(pid, out, "^listening on 127%.0%.0%.1:(%d+)\n", 60)
    if not port then
      terminate(pid)
      error("the request validator did not start:\n" .. read(log), 2)
    end
    validator = { pid = pid, url = "http://127.0.0.1:" .. port .. "/?" }
  end
  local status, report, headers = M.native().http{ url = validator.url .. table.concat(query, "&"),
                                                   method = "POST", body = map_output, timeout_ms = 120000 }
  assert(status == 200, "the request validator did not answer: " .. tostring(report))
  return report, tonumber(headers["x-exit"])
end

------------------------------------------------------------------------------------------------------
-- the Klaviyo stand-in (spec/standin/klaviyo_standin.py)

M.standin_script = M.root .. "/spec/standin/klaviyo_standin.py"

--- Starts the Klaviyo stand-in on a free port with extra `args` (a list); returns a server object
-- { port, url, pid, log (path of its standard error), stop() }. It exits by itself if this Lua process
-- dies (--watch-pid); call server:stop() from teardown all the same.
function M.start_standin(args)
  local dir = M.tempdir()
  local out, log = dir .. "/stdout", dir .. "/stderr"
  local parts = { M.quote(M.python), M.quote(M.standin_script), "--port", "0", "--watch-pid", own_pid() }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = M.quote(a) end
  local pid = background(table.concat(parts, " ") .. " </dev/null >" .. M.quote(out) .. " 2>" .. M.quote(log))
  local server = { pid = pid, log = log, dir = dir }
  function server.stop()
    terminate(server.pid)
    server.pid = nil
  end
  local port = wait_listening(pid, out, "^listening on 127%.0%.0%.1:(%d+)\n", 60)
  if port then
    server.port, server.url = tonumber(port), "http://127.0.0.1:" .. port
    return server
  end
  server.stop()
  error("the Klaviyo stand-in did not start:\n" .. read(log), 2)
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
-- opts: secret, max_body, klaviyo (a Lua table constructor text for the tenant's klaviyo settings),
-- console (true: a console on a free loopback port, its token from the variable RF_CONSOLE_TOKEN),
-- node (this node's name; default: the host name).
function M.serve_dir(opts)
  opts = opts or {}
  local dir = M.tempdir()
  M.sh_ok("cp -r " .. M.quote(M.scripts) .. " " .. M.quote(dir .. "/scripts"))
  write(dir .. "/returnflow.conf.lua", string.format([[
return {
  listen = "127.0.0.1:0", data = "data", max_body = %d,
  timeouts = { header = 2, body = 2, idle = 5 },%s%s
  tenants = { shop = { scripts = "scripts", webhook_secret = %q, klaviyo = %s } },
}]], opts.max_body or 1048576,
     opts.console and '\n  console = { listen = "127.0.0.1:0", token = { env = "RF_CONSOLE_TOKEN" } },' or "",
     opts.node and string.format("\n  node = %q,", opts.node) or "",
     opts.secret or "spec-secret", opts.klaviyo or "{}"))
  return dir
end

--- The console's base URL ("http://127.0.0.1:PORT") of a serve started with opts.console, from its log.
function M.console_url(server)
  local address
  assert(M.wait_for(function()
    address = server:log():match('"msg":"console listening","address":"([^"]+)"')
    return address ~= nil
  end, 10), server:log())
  return "http://" .. address
end

local Server = {}
Server.__index = Server

--- Starts `returnflow serve` in dir (see serve_dir); returns { dir, pid, address, url(), stop(signal) }.
-- env: variables for the server (name -> value), e.g. RETURNFLOW_STORE_FAULTS for the fault suite.
function M.start_serve(dir, env)
  local err = dir .. "/serve.err"
  -- A restart in the same folder: the last run's "listening" line must not be read before the shell
  -- truncates the file for the new one.
  os.remove(err)
  local vars = {}
  for name, value in pairs(env or {}) do vars[#vars + 1] = name .. "=" .. M.quote(value) end
  table.sort(vars)
  local pid = background(string.format("cd %s && exec env %s %s serve -c returnflow.conf.lua </dev/null >/dev/null 2>%s",
                                       M.quote(dir), table.concat(vars, " "), M.quote(M.bin), M.quote(err)))
  local s = setmetatable({ dir = dir, pid = pid, err = err }, Server)
  s.address = wait_listening(pid, err, '"msg":"listening","address":"([^"]+)"', 60)
  if s.address and pg_stores[dir] then          -- the PostgreSQL run: the server says which store it took
    local listening = read(err):match('"msg":"listening"[^\n]*')
    assert(listening:find('"store":"postgresql://', 1, true), "serve did not take the PostgreSQL store: " .. listening)
  end
  if s.address then return s end
  terminate(pid)
  local f = io.open(err, "rb")
  error("serve did not start:\n" .. (f and f:read("a") or ""), 2)
end

function Server:url(tenant) return "http://" .. self.address .. "/v1/webhooks/" .. (tenant or "shop") end

function Server:alive() return alive(self.pid) end

function Server:log() return read(self.err) end

--- Stops the server with a signal (default TERM); returns its log. After KILL nothing is checked.
function Server:stop(signal)
  terminate(self.pid, signal, 10)
  local log = read(self.err)
  if signal ~= "KILL" then M.assert_no_sanitizer_report(log, "returnflow serve") end
  return log
end

--- Loop's X-Loop-Signature of body: base64 of its HMAC-SHA256 with secret (default "spec-secret"),
-- made by the host's own signature.c.
function M.loop_signature(body, secret)
  return M.native().sign(secret or "spec-secret", body)
end

--- POSTs body in-process, signed with opts.secret (default "spec-secret") unless it is false.
-- Returns the status and the answer. opts: secret, method, content_type.
function M.post_signed(url, body, opts)
  opts = opts or {}
  local headers = { ["Content-Type"] = opts.content_type or "application/json" }
  if opts.secret ~= false then headers["X-Loop-Signature"] = M.loop_signature(body, opts.secret) end
  local status, answer = M.native().http{ url = url, method = opts.method or "POST", headers = headers,
                                           body = body, timeout_ms = 30000 }
  if not status then error("POST " .. url .. ": " .. tostring(answer), 2) end
  return status, answer
end

------------------------------------------------------------------------------------------------------
-- background processes (spec/lua/durability_spec.lua)

--- Starts a shell command line in the background, its standard output and error into files.
-- Returns { pid, out, err (paths), alive(), output() (stdout so far), stop() }; stop() sends TERM,
-- then KILL after 5 s, and returns once the process is gone. Call it from after_each.
function M.spawn(cmdline)
  local dir = M.tempdir()
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local pid = background(string.format("%s </dev/null >%s 2>%s", cmdline, M.quote(out), M.quote(err)))
  local proc = { pid = pid, out = out, err = err }
  function proc.alive() return proc.pid ~= nil and alive(proc.pid) end
  function proc.output()
    local f = io.open(out, "rb")
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text
  end
  function proc.stop()
    terminate(proc.pid)
    proc.pid = nil
  end
  return proc
end

--- The names in a folder (without . and ..), sorted.
function M.entries(dir)
  local list = {}
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then list[#list + 1] = name end
  end
  table.sort(list)
  return list
end

--- Pids of the running processes whose working folder or an open file lies under dir: what a run
-- that should have ended everything it started may have left behind.
function M.processes_using(dir)
  local found = {}
  for pid in lfs.dir("/proc") do
    if pid:match("^%d+$") and alive(pid) then
      local paths = { lfs.symlinkattributes("/proc/" .. pid .. "/cwd", "target") }
      local fds = "/proc/" .. pid .. "/fd"
      local ok, iter, state = pcall(lfs.dir, fds)          -- another user's, or gone meanwhile
      if ok then
        for fd in iter, state do paths[#paths + 1] = lfs.symlinkattributes(fds .. "/" .. fd, "target") end
      end
      for _, p in ipairs(paths) do
        if type(p) == "string" and p:sub(1, #dir + 1) == dir .. "/" then found[#found + 1] = pid; break end
      end
    end
  end
  return found
end

------------------------------------------------------------------------------------------------------
-- the end of the run

--- Stops every process started here that still runs and removes every folder made here. Runs when
-- the busted process ends (its Lua state closes, also after failures); a spec may call it too.
function M.finish()
  close_store_connections()
  if pg_cluster then pg_cluster:stop() end
  pg_cluster, pg_stores = nil, {}
  for pid in pairs(running) do os.execute("kill -TERM " .. pid .. " 2>/dev/null") end
  for pid in pairs(running) do terminate(pid, "TERM", 5) end
  validator = nil
  M.cleanup()
  for dir in pairs(run_temps) do
    os.execute("rm -rf " .. M.quote(dir))
    run_temps[dir] = nil
  end
end

-- Collected when the Lua state closes, which lua5.4 does when busted exits (os.exit(code, true)).
M._finish_at_exit = setmetatable({}, { __gc = function() M.finish() end })

return M
