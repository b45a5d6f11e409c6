--- A private PostgreSQL cluster for a spec: the PostgreSQL backend is tested against a real server,
-- never a mock, and nothing system-wide is started or changed.
--
-- initdb runs once a run into a template folder (the slow part, ~1 s); each cluster is a copy of it in
-- a temporary folder of its own, with its unix socket in that folder (no port is shared with anyone:
-- the port only names the socket) unless opts.tcp asks for a free TCP port on 127.0.0.1 too.
-- PostgreSQL refuses to run as root: as root the folders are given to `nobody` and every server
-- command runs as nobody (runuser); as another user they run as that user.
--
-- Fast by default (fsync off: a spec's machine does not lose power); opts.fsync = true for the
-- durability specs, where what is acknowledged must be on disk. The invariant: the server is stopped
-- (pg_ctl stop -m immediate) and its folder removed by cluster:stop(), which specs call in a finally;
-- helpers' end of run stops what a failing spec left (the postmaster is tracked like every process).
local helpers = require "helpers"

local M = {}

M.bin = "/usr/lib/postgresql/15/bin"

local root = helpers.sh("id -u") == "0\n"
local user = root and "nobody" or helpers.sh("id -un"):gsub("\n", "")

-- A shell command line run as the cluster's user.
local function as_user(cmd)
  if root then return "runuser -u nobody -- sh -c " .. helpers.quote(cmd) end
  return cmd
end

local function run_ok(cmd, what)
  local out, err, code = helpers.sh(as_user(cmd))
  if code ~= 0 then error((what or cmd) .. " failed:\n" .. out .. err, 3) end
  return out
end

-- A folder the cluster's user owns (the spec's, or the run's with for_run).
local function owned_folder(for_run)
  local dir = for_run and helpers.run_tempdir() or helpers.tempdir()
  if root then helpers.sh_ok("chown nobody: " .. helpers.quote(dir)) end
  return dir
end

local template
-- The run's initdb'd data folder, copied by every cluster.
local function template_folder()
  if template then return template end
  local dir = owned_folder(true)
  run_ok(string.format("%s/initdb -N -A trust -U %s -E UTF8 --locale=C -D %s/data", M.bin, user,
                       helpers.quote(dir)), "initdb")
  template = dir .. "/data"
  return template
end

-- A free TCP port on 127.0.0.1 (the system picks it; the server binds it a moment later).
local function free_port()
  local out = helpers.sh_ok(helpers.python .. " -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0));"
                            .. " print(s.getsockname()[1])'")
  return tonumber(out)
end

local Cluster = {}
Cluster.__index = Cluster

--- Starts a cluster; returns { dir, socket_dir, port, url, pid, stop(), restart(mode), sql(...) }.
-- opts: fsync (default false), tcp (default false: unix socket only), db (default "returnflow"),
-- settings (extra "name=value" server settings), for_run (its folder lives until the run ends, not only
-- until the spec's helpers.cleanup(): helpers' PostgreSQL backend).
function M.start(opts)
  opts = opts or {}
  local tmpl = template_folder()
  local dir = owned_folder(opts.for_run)
  local data = dir .. "/data"
  run_ok(string.format("cp -a %s %s", helpers.quote(tmpl), helpers.quote(data)), "copying the template cluster")
  local c = setmetatable({ dir = dir, data = data, db = opts.db or "returnflow", user = user }, Cluster)
  c.port = opts.tcp and free_port() or 5432
  local socket = ("%s/.s.PGSQL.%d.lock"):format(dir, c.port)
  if #socket > 107 then error("the cluster's unix socket path is over 107 bytes (a shorter TMPDIR): " .. socket, 2) end
  local settings = {
    "unix_socket_directories='" .. dir .. "'",
    "listen_addresses='" .. (opts.tcp and "127.0.0.1" or "") .. "'",
    "port=" .. c.port,
    "fsync=" .. (opts.fsync and "on" or "off"),
    "full_page_writes=" .. (opts.fsync and "on" or "off"),
    "shared_buffers=32MB",
    "max_connections=200",
    "logging_collector=off",
  }
  for _, s in ipairs(opts.settings or {}) do settings[#settings + 1] = s end
  local conf = assert(io.open(data .. "/postgresql.auto.conf", "a"))
  conf:write(table.concat(settings, "\n"), "\n")
  conf:close()
  c.log = dir .. "/server.log"
  c:start_server()
  run_ok(string.format("%s/createdb -h %s -p %d %s", M.bin, helpers.quote(dir), c.port, c.db), "createdb")
  c.url = c:url_of()
  if opts.tcp then c.tcp_url = string.format("postgresql://%s@127.0.0.1:%d/%s", user, c.port, c.db) end
  return c
end

-- pg_ctl start -w, and the postmaster's pid tracked so the run's end stops it whatever happens.
function Cluster:start_server()
  run_ok(string.format("%s/pg_ctl -w -t 60 -D %s -l %s start", M.bin, helpers.quote(self.data), helpers.quote(self.log)),
         "pg_ctl start")
  local f = assert(io.open(self.data .. "/postmaster.pid", "r"))
  self.pid = f:read("l")
  f:close()
  helpers.track(self.pid)
end

--- Stops the server: mode "immediate" (default: a crash, as far as the data is concerned) or "fast".
function Cluster:stop_server(mode)
  if not self.pid then return end
  helpers.sh(as_user(string.format("%s/pg_ctl -w -t 30 -D %s stop -m %s", M.bin, helpers.quote(self.data),
                                   mode or "immediate")))
  helpers.wait_for(function() return not helpers.alive(self.pid) end, 10)
  self.pid = nil
end

--- Stops the server and starts it again (mode: see stop_server).
function Cluster:restart(mode)
  self:stop_server(mode)
  self:start_server()
end

--- Stops the server and removes its folder (call it in a finally; safe to call twice).
function Cluster:stop()
  self:stop_server("immediate")
  if self.dir then os.execute("rm -rf " .. helpers.quote(self.dir)) end
  self.dir = nil
end

--- The URL of one of the cluster's databases (default: its own).
function Cluster:url_of(db)
  return string.format("postgresql://%s@/%s?host=%s&port=%d", self.user, db or self.db, self.dir, self.port)
end

local env
--- A LuaSQL connection to one of the cluster's databases (default: its own); close it after use.
function Cluster:connect(db)
  env = env or require("luasql.postgres").postgres()
  return assert(env:connect(string.format("dbname=%s user=%s host=%s port=%d", db or self.db, self.user, self.dir,
                                          self.port)))
end

--- The server's log so far (for a failing spec's message).
function Cluster:server_log()
  local f = io.open(self.log, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  return text
end

--- Runs a C test binary of the build under test (spec/c/test_NAME.c) against cluster, its URL in the
--- environment variable var; cmocka's report, once the binary exited 0.
function M.run_c_test(cluster, name, var)
  local bin = helpers.bin:gsub("/[^/]*$", "") .. "/" .. name
  assert(helpers.sh("test -x " .. helpers.quote(bin) .. " && echo yes") == "yes\n",
         bin .. " is missing: the suite builds it (make c-tests)")
  local out, err, code = helpers.sh(var .. "=" .. helpers.quote(cluster.url) .. " " .. helpers.quote(bin))
  local report = out .. err                  -- cmocka's summary goes to standard error
  assert(code == 0, report)
  return report
end

return M
