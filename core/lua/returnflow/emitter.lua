--- The emitter a handler receives as `out`: what a mapping may ask returnflow to do.
-- Every method records an action; nothing leaves until all handlers of the event returned. Mistakes
-- (a missing metric, a bad option, a time Klaviyo refuses) raise an error at the script's own line,
-- so the event fails with a message the merchant can act on instead of reaching Klaviyo half-right.
-- Klaviyo's size limits are checked when the bodies are written (see core/script/klaviyo_limits.c).
-- @module returnflow.emitter
local json = require "returnflow.json"
local loop = require "returnflow.loop"

local M = {}

-- The host's track action for the common call (core/script/emitter_native.c): the same action, or
-- nothing, and then track_action below does the work (and raises what is wrong). Absent outside the
-- host, where require fails.
local native_ok, native_emitter = pcall(require, "returnflow.emitter_native")
local fast_track = native_ok and type(native_emitter) == "table" and native_emitter.track_action or nil

local type, pairs, error, tostring = type, pairs, error, tostring
local format = string.format
local null, object = json.null, json.object

-- What a handler gets as `out` is an empty table whose metatable is protected: the emitter's
-- state (actions, memory writes, the profile, the event's settings) lives here, in `current`,
-- which no script can reach, and is read by the runtime after the handlers returned. One event is
-- mapped at a time per Lua state, so one state is current; an emitter kept from an earlier event
-- refuses every call.
local Out = {}
local OutMeta = {
  __index = Out,
  __newindex = function() error("the emitter is not a table scripts may write", 2) end,
  __metatable = "returnflow.emitter",
  __name = "returnflow.emitter",
}
local current_out, current = nil, nil

local function state(self, what)
  if self == nil or not rawequal(self, current_out) then
    error(format("%s: call it on this event's emitter, as out:%s(...)", what, what), 3)
  end
  return current
end

-- The state, for a method that adds an action: not while `changes` and `after` run (they change the
-- actions handlers made; a new one would escape the files before it).
local function acting(self, what)
  local st = state(self, what)
  if st.changing then
    error(format("%s: not from changes or after, which change what the handlers emitted: %s from a handler",
                 what, what), 3)
  end
  return st
end

-- Raised (as an error value) by drop, fail and defer: ends the event at once. The host knows it by
-- its metatable (compared raw, in C); scripts that catch one see only a guard.
local Stop = { __metatable = "returnflow.stop" }
Stop.__index = Stop
Stop.__tostring = function(s) return s.status .. ": " .. tostring(s.reason) end
M.Stop = Stop

local function check_key(what, key)
  if type(key) ~= "string" or key == "" then error(what .. ": expects a key", 3) end
  if key:find("\0", 1, true) then error(what .. ": a key may not hold a NUL byte", 3) end
  if #key > 1024 then error(what .. ": a key may not be over 1024 bytes", 3) end
end

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
local function track_action(st, metric, properties, opts, what)
  check_metric(metric)
  properties = check_properties(what, properties)
  opts = check_options(what, opts, TRACK_OPTIONS)
  local value = opts.value
  if value ~= nil and type(value) ~= "number" then error(what .. ": value must be a number", 3) end
  if opts.unique_id ~= nil and (type(opts.unique_id) ~= "string" or opts.unique_id == "") then
    error(what .. ": unique_id must be a non-empty string (Klaviyo refuses any other)", 3)
  end
  local ev = st.event
  local currency = opts.currency or opts.value_currency
  if value ~= nil and currency == nil and not loop.missing(ev.currency) then currency = ev.currency end
  local t = opts.time or loop.time(ev)
  check_time(what, t, st.ctx.now)
  return {
    kind = "track", metric = metric, properties = properties, value = value,
    currency = currency, time = t, unique_id = opts.unique_id,
    backfill = opts.backfill,
  }
end

--- Checks a track or schedule action again after a file's `changes` or `after` edited it
-- (returnflow.changes): the same rules track applies. Returns nil, or what is wrong, as a message.
function M.recheck(a, now)
  local metric = a.metric
  if type(metric) ~= "string" or metric == "" then return "the metric name must be a non-empty string" end
  if #metric >= 128 then
    return format("metric name is %d bytes; Klaviyo's limit is < 128 characters", #metric)
  end
  if type(a.properties) ~= "table" then return "properties must be a table" end
  if a.value ~= nil and type(a.value) ~= "number" then return "value must be a number" end
  if a.unique_id ~= nil and (type(a.unique_id) ~= "string" or a.unique_id == "") then
    return "unique_id must be a non-empty string (Klaviyo refuses any other)"
  end
  if a.currency ~= nil and type(a.currency) ~= "string" then return "currency must be a string" end
  if a.time ~= nil then
    local epoch = loop.epoch(a.time)
    if not epoch then return format("time '%s' is not an ISO 8601 date-time", tostring(a.time)) end
    if epoch < 631152000 then return format("time %s is before 1990, which Klaviyo refuses", a.time) end
    if epoch > now + 366 * 86400 then
      return format("time %s is more than a year ahead, which Klaviyo refuses", a.time)
    end
  end
  return nil
end

--- Records a Klaviyo event on the event's profile.
-- @param metric the metric name ("Loop Return Created")
-- @param properties table of event properties (Klaviyo's limits are checked on the encoded body)
-- @param opts value, currency, time, unique_id, backfill
function Out:track(metric, properties, opts)
  local st = acting(self, "track")
  local a = fast_track and fast_track(st.event, st.ctx.now, metric, properties, opts)
            or track_action(st, metric, properties, opts, "track")
  local actions = st.actions
  actions[#actions + 1] = a
  return self
end

local PROFILE_FIELDS = {
  email = true, phone_number = true, external_id = true, first_name = true, last_name = true,
  organization = true, title = true, image = true, locale = true, location = true, properties = true,
}

-- Merges attrs into the event's profile (out:profile and a `changes` rule's profile); returns nil, or
-- what is wrong.
local function merge_profile(st, attrs)
  if type(attrs) ~= "table" then return "expects a table of attributes" end
  local p = st.person
  for k, v in pairs(attrs) do
    if not PROFILE_FIELDS[k] then return format("unknown attribute '%s'", tostring(k)) end
    if k == "properties" then
      if type(v) ~= "table" then return "properties must be a table" end
      local props = p.properties or {}
      for pk, pv in pairs(v) do props[pk] = pv end
      p.properties = props
    elseif v == null then
      p[k] = nil
    else
      p[k] = v
    end
    st.profile_changed = true
  end
  return nil
end
M.merge_profile = merge_profile

--- Updates the profile: attributes (first_name, location, ...) and custom `properties`, merged key by key.
-- Identifiers given here (email, phone_number, external_id) replace the ones read from the payload.
function Out:profile(attrs)
  local st = state(self, "profile")
  local problem = merge_profile(st, attrs)
  if problem then error("profile: " .. problem, 2) end
  return self
end

--- Replaces how the profile is identified: { email = ..., phone_number = ..., external_id = ... }.
function Out:identify(ids)
  local st = state(self, "identify")
  if type(ids) ~= "table" then error("identify: expects { email = ..., phone_number = ..., external_id = ... }", 2) end
  local p = st.person
  p.email, p.phone_number, p.external_id = nil, nil, nil
  for k, v in pairs(ids) do
    if k ~= "email" and k ~= "phone_number" and k ~= "external_id" then
      error(format("identify: '%s' is not an identifier (email, phone_number, external_id)", tostring(k)), 2)
    end
    if v ~= null then p[k] = v end
  end
  return self
end

local function tag(self, st, list, name, what)
  if type(name) ~= "string" or name == "" then error(what .. ": expects a segment name", 3) end
  if #name > 100 * 1024 then error(what .. ": segment name is over Klaviyo's 100 KB string limit", 3) end
  list[#list + 1] = name
  st.profile_changed = true
  return self
end

--- Adds the profile to a segment: appends `name` to its list-valued segments property.
function Out:segment(name)
  local st = state(self, "segment")
  return tag(self, st, st.segments_added, name, "segment")
end

--- Removes the profile from a segment.
function Out:unsegment(name)
  local st = state(self, "unsegment")
  return tag(self, st, st.segments_removed, name, "unsegment")
end

--- Subscribes the profile to a Klaviyo list. opts.channels: { "email" } (default) and/or "sms";
-- opts.historical_import for consent given in the past. Only for consent the customer gave.
function Out:subscribe(list_id, opts)
  local st = acting(self, "subscribe")
  if type(list_id) ~= "string" or list_id == "" then error("subscribe: expects a Klaviyo list id", 2) end
  opts = check_options("subscribe", opts, { channels = true, historical_import = true, consented_at = true })
  local actions = st.actions
  actions[#actions + 1] = { kind = "subscribe", list_id = list_id, channels = opts.channels or { "email" },
                            historical_import = opts.historical_import, consented_at = opts.consented_at }
  return self
end

--- Schedules a Klaviyo event for later, under a key that `cancel` can name.
-- @param key the schedule's name, unique per tenant ("reminder:8812745")
-- @param at an ISO 8601 time, or seconds after the event's own time
function Out:schedule(key, at, metric, properties, opts)
  local st = acting(self, "schedule")
  check_key("schedule", key)
  local due
  if math.type(at) == "integer" or (type(at) == "number" and at == at and at > -1e12 and at < 1e12) then
    local base = loop.epoch(loop.time(st.event)) or st.ctx.now
    due = loop.iso(base + at)
  elseif type(at) == "string" and loop.epoch(at) then
    due = at
  else
    error("schedule: 'at' must be an ISO 8601 time or a number of seconds", 2)
  end
  -- The due time itself, whatever time the event is given: from 1990 (the earliest time Klaviyo
  -- takes) to a year after now (the latest), the window docs/mapping-api.md states.
  local epoch = loop.epoch(due)
  if not epoch or epoch < 631152000 or epoch > st.ctx.now + 366 * 86400 then
    error(format("schedule: due time %s is outside the window a schedule may use (from 1990 to a year "
                 .. "from now)", tostring(due)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("schedule: options must be a table", 2) end
  local a = fast_track and fast_track(st.event, st.ctx.now, metric, properties, opts, due)
  if not a then
    local plain = {}
    for k, v in pairs(opts or {}) do plain[k] = v end
    if plain.time == nil then plain.time = due end
    a = track_action(st, metric, properties, plain, "schedule")
  end
  a.kind, a.key, a.at = "schedule", key, due
  local actions = st.actions
  actions[#actions + 1] = a
  return self
end

--- Cancels a scheduled event by its key (nothing happens if it already fired or never existed).
function Out:cancel(key)
  local st = acting(self, "cancel")
  check_key("cancel", key)
  local actions = st.actions
  actions[#actions + 1] = { kind = "cancel", key = key }
  return self
end

--- Remembers a value for later events of this tenant (e.g. the customer of a return, which label
-- events do not carry). Applied only if the whole event maps without error.
function Out:remember(key, value)
  local st = state(self, "remember")
  check_key("remember", key)
  st.memory_writes[#st.memory_writes + 1] = { key = key, value = value }
  return self
end

--- A value an earlier event remembered, or nil.
function Out:recall(key)
  local st = state(self, "recall")
  check_key("recall", key)
  for i = #st.memory_writes, 1, -1 do
    local w = st.memory_writes[i]
    if w.key == key then return w.value end
  end
  return st.ctx.recall(key)
end

--- Ends the event on purpose: nothing is sent for it. The reason is reported.
function Out:drop(reason) state(self, "drop"); stop("dropped", reason or "dropped by the script") end

--- Fails the event with a message: it goes to the dead letters, where it can be replayed.
function Out:fail(message) state(self, "fail"); stop("failed", message or "failed by the script") end

--- Puts the event back to be mapped again later, e.g. a label event that arrived before its return.
function Out:defer(reason) state(self, "defer"); stop("deferred", reason or "deferred by the script") end

--- A new emitter for one event: returns what handlers get (`out`) and its private state, which
-- only the runtime reads. The emitter of the event before stops answering.
function M.new(event, ctx)
  current = {
    event = event, ctx = ctx, actions = {}, memory_writes = {},
    person = loop.profile(event), segments_added = {}, segments_removed = {},
    profile_changed = false,
  }
  current_out = setmetatable({}, OutMeta)
  return current_out, current
end

--- Ends the current event's emitter (after its requests were built, or its failure).
function M.close() current_out, current = nil, nil end

return M
