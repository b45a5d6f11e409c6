--- Klaviyo requests from a mapped event's actions (see spec/klaviyo/README.md).
-- One event's profile changes ride inside its first tracked event (Klaviyo upserts the profile with
-- it), so a return costs one request, not two; only a mapping that changes the profile without
-- tracking anything gets a separate profile upsert. Where `meta.patch_properties` sits differs by
-- endpoint: inside the profile's attributes for a single event, beside them for a profile import.
-- @module returnflow.klaviyo
local json = require "returnflow.json"

local M = {}

-- The host's unique_id_prefix (core/script/emitter_native.c), the same string; absent outside the host.
local native_ok, native_emitter = pcall(require, "returnflow.emitter_native")
local fast_prefix = native_ok and type(native_emitter) == "table" and native_emitter.unique_id_prefix or nil

local type, ipairs, error, tostring, rawget = type, ipairs, error, tostring, rawget
local format = string.format
local array = json.array

M.REVISION = "2026-07-15"
M.SEGMENTS_PROPERTY = "returnflow_segments"

local IDENTITY = { "email", "phone_number", "external_id" }
local ATTRIBUTES = { "first_name", "last_name", "organization", "title", "image", "locale", "location" }

-- The patch_properties for the event's segment changes, or nil.
local function segment_patch(out, cfg)
  local added, removed = out.segments_added, out.segments_removed
  if #added == 0 and #removed == 0 then return nil end
  local name = cfg.segments_property or M.SEGMENTS_PROPERTY
  local patch = {}
  -- One name is sent as a string, several as a list: Klaviyo takes "a value or values".
  if #added > 0 then patch.append = { [name] = #added == 1 and added[1] or array(added) } end
  if #removed > 0 then patch.unappend = { [name] = #removed == 1 and removed[1] or array(removed) } end
  return { patch_properties = patch }
end

-- Profile attributes: identifiers always; the rest only where `full` (the first request carrying it).
-- The profile is read raw, as the host reads it for an event's body (core/script/klaviyo_body.c): a
-- `changes` function sees the table, and a metatable it gave it changes nothing that is sent.
local function profile_attributes(person, full)
  local a = {}
  for _, k in ipairs(IDENTITY) do a[k] = rawget(person, k) end
  if full then
    for _, k in ipairs(ATTRIBUTES) do a[k] = rawget(person, k) end
    a.properties = rawget(person, "properties")
  end
  return a
end

local function has_identifier(person)
  for i = 1, #IDENTITY do
    local v = rawget(person, IDENTITY[i])
    if type(v) == "string" and v ~= "" then return true end
  end
  return false
end

-- A request the host writes whole from its body table (profile, subscribe); a track or schedule
-- action is handed to the host as it is, and the host writes its body (core/script/klaviyo_body.c).
-- The host builds method, path and headers from its fixed table of Klaviyo endpoints
-- (core/script/klaviyo_endpoints.c), so nothing here can name a host.
local function request(action, body)
  return { action = action, body = body }
end

--- The default unique_id of a track: tenant, Loop id, trigger, state and metric, so a retried or
-- replayed webhook is counted once by Klaviyo and two metrics of one webhook never collide.
function M.unique_id(cfg, ev, loop, metric)
  return M.unique_id_prefix(cfg, ev, loop) .. metric
end

--- The part of the default unique_id that one event's tracks share ("tenant:return_id:trigger:state:"):
-- the event is read-only, so it is read once per event, not once per track.
function M.unique_id_prefix(cfg, ev, loop)
  local fast = fast_prefix and fast_prefix(ev, cfg.tenant or "default")
  if fast then return fast end
  local state = ev.state
  if loop.missing(state) then state = ev.label_status end
  if loop.missing(state) then state = "" end
  return format("%s:%s:%s:%s:", cfg.tenant or "default", loop.return_id(ev) or "", ev.trigger or "",
                tostring(state))
end

local function subscribe_body(a, person, cfg)
  local channels = {}
  for _, c in ipairs(a.channels) do
    if c == "email" then channels.email = { marketing = { consent = "SUBSCRIBED", consented_at = a.consented_at } }
    elseif c == "sms" then channels.sms = { marketing = { consent = "SUBSCRIBED", consented_at = a.consented_at } }
    else error(format("subscribe: unknown channel '%s' (email, sms)", tostring(c)), 0) end
  end
  local list = { data = { type = "list", id = a.list_id } }
  if cfg.key_kind == "public" then
    local attrs = profile_attributes(person, false)
    attrs.subscriptions = channels
    return { data = { type = "subscription", attributes = { profile = { data = {
      type = "profile", attributes = attrs } } }, relationships = { list = list } } }
  end
  return { data = { type = "profile-subscription-bulk-create-job", attributes = {
    profiles = { data = { { type = "profile", attributes = {
      email = rawget(person, "email"), phone_number = rawget(person, "phone_number"), subscriptions = channels } } } },
    historical_import = a.historical_import and true or nil,
  }, relationships = { list = list } } }
end

--- Readies one event's actions for the host, which writes the requests from them in their order
-- (core/script/mapper.c): sets each track's and schedule's default unique_id and each subscribe's
-- request (its `action` and `body`), in place, so no list of requests is built here. Returns how many
-- requests (a profile upsert, the tracks and subscribes), scheduled requests and cancels there are,
-- the profile upsert that goes first (a { action, body } request, or nil) and the meta the first
-- track carries; raises on a profile with no identifier. A track or schedule request is the emitter's
-- action itself (the host writes its body: the profile's identifiers, and on a track its other
-- attributes and the meta).
function M.requests(out, cfg, loop)
  local person = out.person
  local meta = segment_patch(out, cfg)
  local profile_pending = out.profile_changed or meta ~= nil
  local needs_profile = profile_pending
  local actions = out.actions          -- the emitter's own list (host-made, a sequence): numeric loops
  for i = 1, #actions do
    if actions[i].kind ~= "cancel" then needs_profile = true; break end
  end
  if needs_profile and not has_identifier(person) then
    error("the profile has no identifier: the event has no customer email, and the script set none "
          .. "(use out:identify{ email = ... })", 0)
  end
  local carried, id_prefix
  local requests, scheduled, cancelled = 0, 0, 0
  for i = 1, #actions do
    local a = actions[i]
    local kind = a.kind
    if kind == "track" or kind == "schedule" then
      if a.unique_id == nil then
        id_prefix = id_prefix or M.unique_id_prefix(cfg, out.event, loop)
        a.unique_id = id_prefix .. a.metric
      end
      if kind == "track" then
        requests = requests + 1
        if profile_pending then carried = meta; profile_pending = false end
      else
        scheduled = scheduled + 1
      end
    elseif kind == "subscribe" then
      a.action, a.body = "subscribe", subscribe_body(a, person, cfg)
      requests = requests + 1
    elseif kind == "cancel" then
      cancelled = cancelled + 1
    end
  end
  local upsert
  if profile_pending then
    -- Profile changes with no event to carry them: one upsert, meta beside the attributes.
    local data = { type = "profile", attributes = profile_attributes(person, true), meta = meta }
    upsert = request("profile", { data = data })
    requests = requests + 1
  end
  return requests, scheduled, cancelled, upsert, carried
end

return M
