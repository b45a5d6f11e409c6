-- wrk_post.lua: wrk posts one body again and again, as bench/serve.sh asks.
--
--   BODY=FILE [SIGNATURE=BASE64] [CONTENT_TYPE=TYPE] [HEADERS='Name: value|Name: value'] [VARY=TEXT] \
--     wrk -s bench/wrk_post.lua URL
--
-- Every request carries the file's bytes exactly. SIGNATURE, when set, is sent as X-Loop-Signature
-- (base64 of HMAC-SHA256(secret, body), computed by serve.sh over the same file): a webhook signed
-- the way Loop signs it. CONTENT_TYPE defaults to application/json; HEADERS adds more, '|' apart.
-- VARY, when set, is text of the body that each request numbers (TEXT-THREAD-N), so a receiver that
-- deduplicates (the Klaviyo stand-in, by unique_id) sees every request as new; never with SIGNATURE.
--
-- There is no response() callback: one would make wrk hand every answer's headers to Lua, and the
-- benchmark would measure wrk. wrk itself counts answers >= 400 in errors.status (returnflow answers
-- nothing in 1xx or 3xx), and done() prints one line that serve.sh reads:
--   wrk-summary requests=N seconds=S non2xx=N connect=N read=N write=N timeout=N p50_us=X p99_us=Y max_us=Z
--
-- wrk runs this in LuaJIT (Lua 5.1): f:read("*a"), and the globals wrk gives and takes.
-- luacheck: std luajit, globals wrk setup request done, read globals thread_id

local function read(path)
  local f = assert(io.open(path, "rb"), "wrk_post.lua: cannot read BODY=" .. tostring(path))
  local text = f:read("*a")
  f:close()
  return text
end

local body_path = os.getenv("BODY")
assert(body_path, "wrk_post.lua: BODY must name the file to post")

wrk.method = "POST"
wrk.body = read(body_path)
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
local signature = os.getenv("SIGNATURE")
if signature and signature ~= "" then wrk.headers["X-Loop-Signature"] = signature end
for line in (os.getenv("HEADERS") or ""):gmatch("[^|]+") do
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  assert(name, "wrk_post.lua: HEADERS entry is not 'Name: value': " .. line)
  wrk.headers[name] = value
end

local vary = os.getenv("VARY")
if vary and vary ~= "" then
  assert(not wrk.headers["X-Loop-Signature"], "wrk_post.lua: VARY would break SIGNATURE")
  local at = assert(wrk.body:find(vary, 1, true), "wrk_post.lua: VARY not found in BODY")
  local before, after = wrk.body:sub(1, at + #vary - 1), wrk.body:sub(at + #vary)
  local threads, sent = 0, 0

  function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
  end

  function request()
    sent = sent + 1
    return wrk.format(nil, nil, nil, before .. "-" .. tostring(thread_id) .. "-" .. sent .. after)
  end
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "wrk-summary requests=%d seconds=%.3f non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration / 1e6, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
