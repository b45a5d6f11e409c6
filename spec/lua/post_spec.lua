-- `returnflow post`: Loop's side of a webhook. Each event of a file goes out as its own request body,
-- byte for byte as it stands in the file, with Loop's X-Loop-Signature over exactly those bytes.
--
-- The other side is a tiny HTTP listener (Python's http.server, started per spec on a free port and
-- killed after it) that records every request it gets (path, headers, client port, body in a file of
-- its own) and answers 202, or 401 under /v1/webhooks/locked. Signatures are recomputed here with
-- the openssl command, independently of returnflow's own code.
local h = require "helpers"

-- argv[1]: the folder to record into. Writes the port it listens on to FOLDER/port when ready.
local LISTENER = [[
import http.server, json, os, sys, threading
out = sys.argv[1]
lock = threading.Lock()
count = [0]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive, so connection reuse can be seen

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            count[0] += 1
            n = count[0]
            with open(os.path.join(out, "%d.body" % n), "wb") as f:
                f.write(body)
            with open(os.path.join(out, "requests.ndjson"), "a") as f:
                f.write(json.dumps({"n": n, "path": self.path, "client_port": self.client_address[1],
                                    "signature": self.headers.get("X-Loop-Signature"),
                                    "content_type": self.headers.get("Content-Type")}) + "\n")
        if self.path.startswith("/v1/webhooks/locked"):
            status, answer = 401, b'{"error": "bad signature"}\n'
        else:
            status, answer = 202, b'{"status": "accepted",\n  "n": %d}\n' % n
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(os.path.join(out, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
server.serve_forever()
]]

local DEMO_SECRET = dofile(h.root .. "/returnflow.conf.lua").tenants.demo.webhook_secret

local function trim(s) return (s:gsub("%s+$", "")) end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Starts the listener (a process helpers.lua stops at the end of the run, should a spec fail first);
-- returns { dir, proc, port, url(tenant), requests() }.
local function start_listener()
  local dir = h.tempdir()
  local proc = h.spawn(string.format("%s -c %s %s", h.quote(h.python), h.quote(LISTENER), h.quote(dir)))
  local l = { dir = dir, proc = proc }
  h.wait_for(function() return file_exists(dir .. "/port") or not proc.alive() end, 60)
  assert(file_exists(dir .. "/port"), "the listener did not start: " .. h.read(proc.err))
  l.port = tonumber(h.read(dir .. "/port"))
  function l.url(tenant) return string.format("http://127.0.0.1:%d/v1/webhooks/%s", l.port, tenant) end
  function l.requests()
    local list = {}
    if not file_exists(dir .. "/requests.ndjson") then return list end
    for _, line in ipairs(h.lines(h.read(dir .. "/requests.ndjson"))) do
      local r = h.decode(line)
      r.body_path = string.format("%s/%d.body", dir, r.n)
      r.body = h.read(r.body_path)
      list[#list + 1] = r
    end
    return list
  end
  return l
end

local function stop_listener(l)
  if l then l.proc.stop() end
end

--- A port nothing listens on (bound, then released by a process that has exited).
local function free_port()
  local code = 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  local out = h.sh(h.quote(h.python) .. " -c " .. h.quote(code))
  return tonumber(trim(out))
end

--- base64(HMAC-SHA256(secret, the bytes of the file at path)), by the openssl command.
local function openssl_signature(secret, path)
  local out, err, code = h.sh("(openssl dgst -sha256 -hmac " .. h.quote(secret) .. " -binary <" .. h.quote(path)
                              .. " | base64 -w0)")
  assert(code == 0, err)
  return trim(out)
end

--- Runs `returnflow post ARGS...` (in folder `cwd` when given); returns stdout, stderr, exit code.
local function post(args, opts)
  opts = opts or {}
  local parts = { h.quote(h.bin), "post" }
  for _, a in ipairs(args) do parts[#parts + 1] = h.quote(a) end
  local cmdline = table.concat(parts, " ")
  if opts.cwd then cmdline = "cd " .. h.quote(opts.cwd) .. " && " .. cmdline end
  local stdout, stderr, code = h.sh(cmdline, opts.stdin)
  h.assert_no_sanitizer_report(stderr, cmdline)
  return stdout, stderr, code
end

local function strip_newline(text) return (text:gsub("\n$", "")) end

describe("returnflow post", function()
  local listener

  before_each(function() listener = start_listener() end)
  after_each(function()
    stop_listener(listener)
    listener = nil
  end)
  teardown(function()
    stop_listener(listener)
    h.cleanup()
  end)

  it("posts every fixture as its own body, byte for byte, signed with the config's demo secret", function()
    local names = h.fixture_names()
    local args = { listener.url("demo") }
    for _, name in ipairs(names) do args[#args + 1] = h.fixture_path(name) end

    local stdout, stderr, code = post(args, { cwd = h.root })      -- ./returnflow.conf.lua, the default

    assert.equal(0, code, stderr)
    local requests = listener.requests()
    assert.equal(#names, #requests)
    local lines = h.lines(stdout)
    assert.equal(#names, #lines, stdout)
    for i, name in ipairs(names) do
      local r = requests[i]
      assert.equal("/v1/webhooks/demo", r.path)
      assert.equal("application/json", r.content_type)
      assert.equal(h.read(h.fixture_path(name)), r.body, name)
      assert.equal(openssl_signature(DEMO_SECRET, r.body_path), r.signature, name)
      assert.equal(h.fixture_path(name) .. "#1: 202 {\"status\": \"accepted\", \"n\": " .. i .. "}", lines[i])
    end
    assert.is_nil(stdout:find(DEMO_SECRET, 1, true))
    assert.is_nil(stderr:find(DEMO_SECRET, 1, true))
  end)

  it("keeps one connection open for all the events of a run", function()
    local _, stderr, code = post({ listener.url("demo"), h.fixture_path("return.created.json"),
                                   h.fixture_path("label.created.json"), h.fixture_path("return.closed.json") },
                                 { cwd = h.root })

    assert.equal(0, code, stderr)
    local requests = listener.requests()
    assert.equal(3, #requests)
    assert.equal(requests[1].client_port, requests[2].client_port)
    assert.equal(requests[1].client_port, requests[3].client_port)
  end)

  it("posts each element of a JSON array as its own body, as it stands in the file", function()
    local a = strip_newline(h.read(h.fixture_path("return.created.json")))
    local b = strip_newline(h.read(h.fixture_path("label.updated.delivered.json")))
    local file = h.tempfile("[\n  " .. a .. " ,\n  " .. b .. "\n]\n")

    local stdout, stderr, code = post({ "--secret", "array-secret", listener.url("demo"), file })

    assert.equal(0, code, stderr)
    local requests = listener.requests()
    assert.equal(2, #requests)
    assert.equal(a, requests[1].body)
    assert.equal(b, requests[2].body)
    assert.equal(openssl_signature("array-secret", requests[1].body_path), requests[1].signature)
    assert.equal(openssl_signature("array-secret", requests[2].body_path), requests[2].signature)
    assert.same({ file .. "#1: 202 {\"status\": \"accepted\", \"n\": 1}",
                  file .. "#2: 202 {\"status\": \"accepted\", \"n\": 2}" }, h.lines(stdout))
  end)

  it("posts each NDJSON line as its own body, also from standard input", function()
    local lines = {}
    for i, name in ipairs({ "return.created.json", "giftcard.requested.json", "restock.requested.json" }) do
      lines[i] = h.encode(h.fixture(name))
    end
    local text = table.concat(lines, "\n") .. "\n"

    local stdout, stderr, code = post({ "--secret", "nd-secret", listener.url("demo"), "-" }, { stdin = text })

    assert.equal(0, code, stderr)
    local requests = listener.requests()
    assert.equal(3, #requests)
    for i, line in ipairs(lines) do
      assert.equal(line, requests[i].body)
      assert.equal(openssl_signature("nd-secret", requests[i].body_path), requests[i].signature)
    end
    assert.equal(3, #h.lines(stdout))
    assert.truthy(stdout:find("-#3: 202 ", 1, true), stdout)
  end)

  it("takes the secret of the tenant named in the URL from -c CONFIG", function()
    local dir = h.tempdir()
    h.write(dir .. "/rf.conf.lua", string.format([[
      return { tenants = {
        acme = { scripts = %q, webhook_secret = "acme-secret" },
        other = { scripts = %q, webhook_secret = "other-secret" },
      } }]], h.scripts, h.scripts))

    local _, stderr, code = post({ "-c", dir .. "/rf.conf.lua", listener.url("acme"),
                                   h.fixture_path("return.created.json") })

    assert.equal(0, code, stderr)
    local r = listener.requests()[1]
    assert.equal("/v1/webhooks/acme", r.path)
    assert.equal(openssl_signature("acme-secret", r.body_path), r.signature)
  end)

  it("exits 1 and shows the answer on one line when the server says 401", function()
    local file = h.fixture_path("return.created.json")

    local stdout, stderr, code = post({ "--secret", "wrong-secret", listener.url("locked"), file })

    assert.equal(1, code)
    assert.same({ file .. "#1: 401 {\"error\": \"bad signature\"}" }, h.lines(stdout))
    assert.truthy(stderr:find("0 answered 2xx, 1 answered otherwise", 1, true), stderr)
    assert.is_nil((stdout .. stderr):find("wrong-secret", 1, true))
  end)

  it("posts a file that is not valid JSON as it is, with a warning, and goes on", function()
    local bad = h.tempfile('{"trigger": "return.created", oops}\n')
    local ok = h.fixture_path("return.created.json")

    local stdout, stderr, code = post({ "--secret", "s", listener.url("demo"), bad, ok })

    assert.equal(0, code)                  -- the listener takes anything; `serve` answers 400
    assert.truthy(stderr:find(bad .. "#1: not valid JSON", 1, true), stderr)
    local requests = listener.requests()
    assert.equal(2, #requests)
    assert.equal('{"trigger": "return.created", oops}\n', requests[1].body)
    assert.equal(h.read(ok), requests[2].body)
    assert.equal(2, #h.lines(stdout))
  end)

  it("reports a refused connection with the URL, exits 1 and stops there", function()
    local url = string.format("http://127.0.0.1:%d/v1/webhooks/demo", free_port())
    local file = h.fixture_path("return.created.json")

    local stdout, stderr, code = post({ "--secret", "s", url, file, file })

    assert.equal(1, code)
    assert.same({ file .. "#1: not sent: connection refused (" .. url .. ")" }, h.lines(stdout))
    assert.truthy(stderr:find("cannot reach " .. url .. ": connection refused", 1, true), stderr)
  end)

  describe("usage", function()
    local file = h.fixture_path("return.created.json")

    local function assert_usage_error(args, fragment, opts)
      local stdout, stderr, code = post(args, opts)
      assert.equal(2, code, stderr)
      assert.equal("", stdout)
      assert.truthy(stderr:find(fragment, 1, true), stderr)
      assert.same({}, listener.requests())
    end

    it("exits 2 without a URL or without a file", function()
      assert_usage_error({}, "no URL")
      assert_usage_error({ "--secret", "s", listener.url("demo") }, "no input")
    end)

    it("exits 2 on a URL that is not http(s)", function()
      assert_usage_error({ "--secret", "s", "ftp://x/v1/webhooks/demo", file }, "is not an http:// or https:// URL")
    end)

    it("exits 2 when there is no secret to sign with", function()
      assert_usage_error({ listener.url("demo"), file }, "no secret to sign with", { cwd = h.tempdir() })
      assert_usage_error({ "-c", h.root .. "/returnflow.conf.lua", "http://127.0.0.1:1/hooks", file },
                         "does not end in /v1/webhooks/TENANT")
    end)

    it("exits 2 when the URL's tenant is not in the config, naming the ones that are", function()
      assert_usage_error({ listener.url("nope"), file }, "tenant 'nope' is not in returnflow.conf.lua (it has: demo)",
                         { cwd = h.root })
    end)

    it("exits 2 when the config does not load, with its problems", function()
      local conf = h.tempfile("return { tenants = {} }", ".lua")
      assert_usage_error({ "-c", conf, listener.url("demo"), file }, conf .. ": tenants: must name at least one tenant")
    end)

    it("exits 2 given both -c and --secret", function()
      assert_usage_error({ "-c", "x.lua", "--secret", "s", listener.url("demo"), file }, "not both")
    end)
  end)
end)
