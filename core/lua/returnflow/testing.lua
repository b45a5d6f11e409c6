--- Test a scripts folder with busted, with the service's own semantics.
-- The mapping runs in `returnflow.native`: the host's C mapper, sandbox, caps and encoder, built as a
-- Lua library. So a spec sees the exact request bodies the service would send, and a script that
-- breaks a cap fails here as it would there. This module only feeds events in and reads results out.
--
--     local testing = require "returnflow.testing"
--     local scripts = testing.load("scripts")
--     local result = scripts:map(testing.fixture("return.created", { is_gift_return = true }))
--     assert.tracked(result, "Loop Gift Return Request", { order = "#10482" })
--     assert.segmented(result, "gift-returner")
-- @module returnflow.testing
local native = require "returnflow.native"

local json = native.json
local M = { null = json.null, native = native }

--- A value for `fixture` overrides: the key is removed from the event.
M.absent = setmetatable({}, { __tostring = function() return "testing.absent" end })

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Where the shipped Loop fixtures are: $RETURNFLOW_FIXTURES, the share folder compiled into
-- returnflow.native, the source tree this module sits in (core/lua/returnflow -> fixtures/loop), or
-- beside it after `make install` (PREFIX/share/lua/5.4/returnflow -> PREFIX/share/returnflow).
local chosen_fixtures              -- M.use_fixtures(dir): before every other place

local function fixtures_dir()
  if chosen_fixtures then return chosen_fixtures end
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$") or "."
  local candidates = { os.getenv("RETURNFLOW_FIXTURES") or false, native.share and native.share .. "/fixtures/loop" or false,
                       here .. "/../../../fixtures/loop", here .. "/../../../returnflow/fixtures/loop", "fixtures/loop" }
  for _, dir in ipairs(candidates) do
    if dir and exists(dir .. "/return.created.json") then return dir end
  end
  error("returnflow.testing: the Loop fixtures are not found; set RETURNFLOW_FIXTURES to their folder", 3)
end

--- Reads the Loop fixtures from dir from now on (`returnflow templates --fixtures DIR`).
-- Fails if dir holds no return.created.json, so a wrong folder is named at once.
function M.use_fixtures(dir)
  if not exists(dir .. "/return.created.json") then
    error("returnflow.testing: no Loop fixtures in " .. dir .. " (no return.created.json there)", 2)
  end
  chosen_fixtures = dir
end

local function fixture_text(name, level)
  local file = fixtures_dir() .. "/" .. name:gsub("%.json$", "") .. ".json"
  local text, err = read_file(file)
  if not text then error("returnflow.testing: no fixture '" .. name .. "' (" .. err .. ")", level + 1) end
  return text
end

--- The raw text of a shipped fixture ("return.created" or "return.created.json").
function M.fixture_text(name) return fixture_text(name, 2) end

--- Every shipped fixture's name, sorted.
function M.fixtures()
  local dir = fixtures_dir()
  local list = {}
  local ls = io.popen('ls "' .. dir .. '"')
  for file in ls:lines() do list[#list + 1] = file:match("^(.*)%.json$") end
  ls:close()
  table.sort(list)
  return list
end

local function merge(into, overrides)
  for k, v in pairs(overrides) do
    if v == M.absent then
      into[k] = nil
    elseif type(v) == "table" and getmetatable(v) == nil and type(into[k]) == "table" and #v == 0 and next(v) then
      merge(into[k], v)
    else
      into[k] = v
    end
  end
  return into
end

--- A shipped fixture as a table you may change, with overrides merged in: nested tables merge
-- key by key, lists and other values replace, `testing.null` sets null, `testing.absent` removes.
function M.fixture(name, overrides)
  local event = json.decode(fixture_text(name, 3))
  return overrides and merge(event, overrides) or event
end

local function as_list(v)
  if v == nil then return {} end
  if type(v) ~= "table" then return { v } end
  return v
end

--- A Klaviyo-side view of one request body: the tracked event, or the profile import.
-- Segment changes are meta.patch_properties append/unappend of the segments property: inside the
-- profile's attributes for an event, beside them for a profile import.
local function describe(request, segments_property)
  local data = type(request.body) == "table" and request.body.data or {}
  local attrs = data.attributes or {}
  local profile_data = attrs.profile and attrs.profile.data
  local profile = profile_data and profile_data.attributes or attrs
  local meta = (profile_data and profile_data.attributes.meta) or data.meta or {}
  local patch = meta.patch_properties or {}
  local metric = attrs.metric and attrs.metric.data.attributes.name
  return {
    metric = metric, properties = metric and attrs.properties, value = attrs.value,
    value_currency = attrs.value_currency, time = attrs.time, unique_id = attrs.unique_id,
    backfill = attrs.backfill, profile = profile,
    segments_added = as_list(patch.append and patch.append[segments_property]),
    segments_removed = as_list(patch.unappend and patch.unappend[segments_property]),
  }
end

local Result = {}
Result.__index = Result

local function result_of(raw, segments_property)
  local r = setmetatable({ status = raw.status, reason = raw.reason ~= "" and raw.reason or nil, doc = raw.doc,
                           requests = {}, events = {}, scheduled = {}, cancelled = raw.cancelled, memory = {},
                           segments_added = {}, segments_removed = {}, profiles = {} }, Result)
  for i, req in ipairs(raw.requests) do
    local decoded = { method = req.method, path = req.path, raw = req.body, body = json.decode(req.body),
                      profile = req.profile, schedule_key = req.schedule_key, due = req.due }
    r.requests[i] = decoded
    local view = describe(decoded, segments_property)
    view.request = decoded
    if req.schedule_key then
      view.key, view.due = req.schedule_key, req.due
      r.scheduled[#r.scheduled + 1] = view
    else
      if view.metric then r.events[#r.events + 1] = view else r.profiles[#r.profiles + 1] = view end
      for _, s in ipairs(view.segments_added) do r.segments_added[#r.segments_added + 1] = s end
      for _, s in ipairs(view.segments_removed) do r.segments_removed[#r.segments_removed + 1] = s end
    end
  end
  for k, v in pairs(raw.memory) do r.memory[k] = json.decode(v) end
  return r
end

--- The tracked events (not scheduled) of one metric.
function Result:tracked(metric)
  local list = {}
  for _, e in ipairs(self.events) do
    if e.metric == metric then list[#list + 1] = e end
  end
  return list
end

--- The metric names tracked, in order.
function Result:metrics()
  local list = {}
  for _, e in ipairs(self.events) do list[#list + 1] = e.metric end
  return list
end

local Scripts = {}
Scripts.__index = Scripts

--- Loads a scripts folder in the host's sandbox. `dir` defaults to $RETURNFLOW_SCRIPTS (what
-- `returnflow test --scripts DIR` sets), then "scripts"; `testing.load(options)` works too.
-- Options as in returnflow.conf.lua: tenant, key_kind, site_id, revision, segments_property,
-- backfill, memory_cap_mib, time_cap_ms. Raises with every problem if it does
-- not load (as `returnflow check` reports them).
function M.load(dir, options)
  if type(dir) == "table" then dir, options = nil, dir end      -- testing.load { tenant = "shop" }
  local cfg = {}
  for k, v in pairs(options or {}) do cfg[k] = v end
  cfg.scripts = dir or os.getenv("RETURNFLOW_SCRIPTS") or "scripts"
  local m, problems = native.mapper(cfg)
  if not m then error("returnflow.testing: the scripts in " .. cfg.scripts .. " do not load:\n" .. problems, 2) end
  return setmetatable({ mapper = m, dir = cfg.scripts, segments_property = cfg.segments_property
                        or "returnflow_segments", seen = 0 }, Scripts)
end

--- Maps one event: a table (a fixture or your own), JSON text, or a file path. Returns the result:
-- status, reason, events (tracked now), scheduled, cancelled, profiles (profile imports),
-- segments_added/removed, memory (what out:remember wrote), requests (method, path, body decoded,
-- raw: the exact bytes) and doc (the line `returnflow map` prints for it).
function Scripts:map(event, label)
  local text
  if type(event) == "table" then
    text = json.encode(event)
  elseif type(event) == "string" and event:match("^%s*[%[{]") then
    text = event
  elseif type(event) == "string" then
    local err
    text, err = read_file(event)
    if not text then error("returnflow.testing: " .. err, 2) end
    if not text:match("^%s*{") then
      error("returnflow.testing: " .. event .. " does not hold one JSON object; map takes one event at a time", 2)
    end
    label = label or (event .. "#1")                  -- as `returnflow map FILE` labels it
  else
    error("returnflow.testing: map takes an event table, JSON text or a file path", 2)
  end
  self.seen = self.seen + 1
  return result_of(self.mapper:map(text, label or ("event#" .. self.seen)), self.segments_property)
end

--- What an earlier event would have remembered (out:recall then finds it).
function Scripts:remember(key, value)
  self.mapper:remember(key, json.encode(value))
end

--- Forgets everything remembered.
function Scripts:forget() self.mapper:forget() end

--- Number of files and handlers loaded.
function Scripts:counts() return self.mapper:counts() end

require("returnflow.testing_assertions")(M, Result)
return M
