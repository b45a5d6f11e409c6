--- The emitter a handler receives as `out`: what a mapping may ask returnflow to do.
-- Every method records an action; nothing leaves until all handlers of the event returned. Mistakes
-- (a missing metric, a bad option, a time Klaviyo refuses) raise an error at the script's own line,
-- so the event fails with a message the merchant can act on instead of reaching Klaviyo half-right.
-- Klaviyo's size limits are checked when the bodies are written (see core/script/klaviyo_limits.c).
-- @module returnflow.emitter
local json = require "returnflow.json"
local loop = require "returnflow.loop"

local M = {}

local type, pairs, error, tostring = type, pairs, error, tostring
local format = string.format
local null, object = json.null, json.object

local Out = {}
Out.__index = Out
Out.__name = "returnflow.emitter"

-- Raised (as an error value) by drop, fail and defer: ends the event at once.
local Stop = {}
Stop.__index = Stop
Stop.__tostring = function(s) return s.status .. ": " .. tostring(s.reason) end
M.Stop = Stop

local function stop(status, reason)
  error(setmetatable({ status = status, reason = reason }, Stop), 0)
end

local function check_metric(metric)
  if type(metric) ~= "string" or metric == "" then
    error("track: the metric name must be a non-empty string", 4)
  end
  if #metric >= 128 then
    error(format("track: metric name is %d bytes; Klaviyo's limit is < 128 characters", #metric), 4)
  end
end

local function check_properties(what, props)
  if props == nil then return object() end
  if type(props) ~= "table" then error(what .. ": properties must be a table", 4) end
  return props
end

local TRACK_OPTIONS = { value = true, currency = true, value_currency = true, time = true,
                        unique_id = true, backfill = true }

local function check_options(what, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table", 4) end
  for k in pairs(opts) do
    if not known[k] then error(format("%s: unknown option '%s'", what, tostring(k)), 4) end
  end
  return opts
end

local function check_time(what, t, now)
  if t == nil then return end
  local epoch = loop.epoch(t)
  if not epoch then error(format("%s: time '%s' is not an ISO 8601 date-time", what, tostring(t)), 4) end
  if epoch < 631152000 then
    error(format("%s: time %s is before 1990, which Klaviyo refuses", what, t), 4)
  end
  if epoch > now + 366 * 86400 then
    error(format("%s: time %s is more than a year ahead, which Klaviyo refuses", what, t), 4)
  end
end

-- The track action, shared by track and schedule.
local function track_action(self, metric, properties, opts, what)
  check_metric(metric)
  properties = check_properties(what, properties)
  opts = check_options(what, opts, TRACK_OPTIONS)
  local value = opts.value
  if value ~= nil and type(value) ~= "number" then error(what .. ": value must be a number", 3) end
  if opts.unique_id ~= nil and (type(opts.unique_id) ~= "string" or opts.unique_id == "") then
    error(what .. ": unique_id must be a non-empty string (Klaviyo refuses any other)", 3)
  end
  local ev = self.event
  local currency = opts.currency or opts.value_currency
  if value ~= nil and currency == nil and not loop.missing(ev.currency) then currency = ev.currency end
  local t = opts.time or loop.time(ev)
  check_time(what, t, self.ctx.now)
  return {
    kind = "track", metric = metric, properties = properties, value = value,
    currency = currency, time = t, unique_id = opts.unique_id,
    backfill = opts.backfill,
  }
end

--- Records a Klaviyo event on the event's profile.
-- @param metric the metric name ("Loop Return Created")
-- @param properties table of event properties (Klaviyo's limits are checked on the encoded body)
-- @param opts value, currency, time, unique_id, backfill
function Out:track(metric, properties, opts)
  local a = track_action(self, metric, properties, opts, "track")
  local actions = self.actions
  actions[#actions + 1] = a
  return self
end

local PROFILE_FIELDS = {
  email = true, phone_number = true, external_id = true, first_name = true, last_name = true,
  organization = true, title = true, image = true, locale = true, location = true, properties = true,
}

--- Updates the profile: attributes (first_name, location, ...) and custom `properties`, merged key by key.
-- Identifiers given here (email, phone_number, external_id) replace the ones read from the payload.
function Out:profile(attrs)
  if type(attrs) ~= "table" then error("profile: expects a table of attributes", 2) end
  local p = self.person
  for k, v in pairs(attrs) do
    if not PROFILE_FIELDS[k] then error(format("profile: unknown attribute '%s'", tostring(k)), 2) end
    if k == "properties" then
      if type(v) ~= "table" then error("profile: properties must be a table", 2) end
      local props = p.properties or {}
      for pk, pv in pairs(v) do props[pk] = pv end
      p.properties = props
    elseif v == null then
      p[k] = nil
    else
      p[k] = v
    end
    self.profile_changed = true
  end
  return self
end

--- Replaces how the profile is identified: { email = ..., phone_number = ..., external_id = ... }.
function Out:identify(ids)
  if type(ids) ~= "table" then error("identify: expects { email = ..., phone_number = ..., external_id = ... }", 2) end
  local p = self.person
  p.email, p.phone_number, p.external_id = nil, nil, nil
  for k, v in pairs(ids) do
    if k ~= "email" and k ~= "phone_number" and k ~= "external_id" then
      error(format("identify: '%s' is not an identifier (email, phone_number, external_id)", tostring(k)), 2)
    end
    if v ~= null then p[k] = v end
  end
  return self
end

local function tag(self, list, name, what)
  if type(name) ~= "string" or name == "" then error(what .. ": expects a segment name", 3) end
  if #name > 100 * 1024 then error(what .. ": segment name is over Klaviyo's 100 KB string limit", 3) end
  list[#list + 1] = name
  self.profile_changed = true
  return self
end

--- Adds the profile to a segment: appends `name` to its list-valued segments property.
function Out:segment(name) return tag(self, self.segments_added, name, "segment") end

--- Removes the profile from a segment.
function Out:unsegment(name) return tag(self, self.segments_removed, name, "unsegment") end

--- Subscribes the profile to a Klaviyo list. opts.channels: { "email" } (default) and/or "sms";
-- opts.historical_import for consent given in the past. Only for consent the customer gave.
function Out:subscribe(list_id, opts)
  if type(list_id) ~= "string" or list_id == "" then error("subscribe: expects a Klaviyo list id", 2) end
  opts = check_options("subscribe", opts, { channels = true, historical_import = true, consented_at = true })
  local actions = self.actions
  actions[#actions + 1] = { kind = "subscribe", list_id = list_id, channels = opts.channels or { "email" },
                            historical_import = opts.historical_import, consented_at = opts.consented_at }
  return self
end

--- Schedules a Klaviyo event for later, under a key that `cancel` can name.
-- @param key the schedule's name, unique per tenant ("reminder:8812745")
-- @param at an ISO 8601 time, or seconds after the event's own time
function Out:schedule(key, at, metric, properties, opts)
  if type(key) ~= "string" or key == "" then error("schedule: expects a key", 2) end
  local due
  if type(at) == "number" then
    local base = loop.epoch(loop.time(self.event)) or self.ctx.now
    due = loop.iso(base + at)
  elseif type(at) == "string" and loop.epoch(at) then
    due = at
  else
    error("schedule: 'at' must be an ISO 8601 time or a number of seconds", 2)
  end
  local plain = {}
  for k, v in pairs(opts or {}) do plain[k] = v end
  if plain.time == nil then plain.time = due end
  local a = track_action(self, metric, properties, plain, "schedule")
  a.kind, a.key, a.at = "schedule", key, due
  local actions = self.actions
  actions[#actions + 1] = a
  return self
end

--- Cancels a scheduled event by its key (nothing happens if it already fired or never existed).
function Out:cancel(key)
  if type(key) ~= "string" or key == "" then error("cancel: expects a key", 2) end
  local actions = self.actions
  actions[#actions + 1] = { kind = "cancel", key = key }
  return self
end

--- Remembers a value for later events of this tenant (e.g. the customer of a return, which label
-- events do not carry). Applied only if the whole event maps without error.
function Out:remember(key, value)
  if type(key) ~= "string" or key == "" then error("remember: expects a key", 2) end
  self.memory_writes[#self.memory_writes + 1] = { key = key, value = value }
  return self
end

--- A value an earlier event remembered, or nil.
function Out:recall(key)
  for i = #self.memory_writes, 1, -1 do
    local w = self.memory_writes[i]
    if w.key == key then return w.value end
  end
  return self.ctx.recall(key)
end

--- Ends the event on purpose: nothing is sent for it. The reason is reported.
function Out:drop(reason) stop("dropped", reason or "dropped by the script") end

--- Fails the event with a message: it goes to the dead letters, where it can be replayed.
function Out:fail(message) stop("failed", message or "failed by the script") end

--- Puts the event back to be mapped again later, e.g. a label event that arrived before its return.
function Out:defer(reason) stop("deferred", reason or "deferred by the script") end

function M.new(event, ctx)
  return setmetatable({
    event = event, ctx = ctx, actions = {}, memory_writes = {},
    person = loop.profile(event), segments_added = {}, segments_removed = {},
    profile_changed = false,
  }, Out)
end

return M
