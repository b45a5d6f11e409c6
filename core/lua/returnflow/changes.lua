--- A file's `changes` and `after`: how a merchant's file changes what the default scripts (or any
-- earlier file) emitted, without copying them. A file may return, beside its handlers,
--
--     changes = { ["Loop Return Created"] = { metric = "Return Started", properties = { ... } } },
--     after = function(event, action, out) ... end,
--
-- Both run once every handler of every file ran, file by file in name order (so a later file sees
-- what an earlier one changed), on every tracked and scheduled event, before any request is built.
-- A rule's functions and `after` get (event, action, out): out:recall and the profile methods work,
-- a method that would add an action raises.
-- They work on the actions (metric, properties, value, currency, time, unique_id, the profile), never
-- on Klaviyo bodies, so how the bodies are built may change without touching a merchant's file.
-- A rule is checked when the file loads and its problems are reported at the line that names its
-- metric; an action a change made wrong (an empty metric, a time Klaviyo refuses) fails the event
-- with the same file:line. Host-only: scripts reach it only through the tables they return.
-- @module returnflow.changes
local emitter = require "returnflow.emitter"
local json = require "returnflow.json"

local M = {}

local type, pairs, ipairs, next, tostring, error = type, pairs, ipairs, next, tostring, error
local format = string.format

-- What a rule may hold, and what each may be ("fn" accepts a function(event, action) as well).
local RULE_KEYS = {
  metric = "a new metric name (string) or a function",
  properties = "a table of property = value (or function(event, action) -> value)",
  remove = "a property name or a list of them",
  unique_id = "a string or a function",
  profile = "a table of profile attributes (as out:profile takes) or a function returning one",
  time = "an ISO 8601 time or a function",
  value = "a number or a function",
  trigger = "a trigger name or a list of them",
  drop = "true, or a function(event, action) -> true to drop",
}

local function list_of(v)
  if type(v) == "string" then return { v } end
  return v
end

-- Checks one rule; returns the compiled rule or a message.
local function compile_rule(rule, triggers)
  if rule == false then return { drop = true } end
  if type(rule) ~= "table" then
    return nil, format("a rule is a table (or false to drop the event), not a %s", type(rule))
  end
  local c = {}
  for k, v in pairs(rule) do
    if not RULE_KEYS[k] then
      local known = {}
      for name in pairs(RULE_KEYS) do known[#known + 1] = name end
      table.sort(known)
      return nil, format("unknown key '%s' (a rule may hold: %s)", tostring(k), table.concat(known, ", "))
    end
    local fn = type(v) == "function"
    if k == "metric" and not fn and (type(v) ~= "string" or v == "" or #v >= 128) then
      return nil, "metric must be a non-empty string under 128 bytes, or a function"
    elseif k == "properties" then
      if type(v) ~= "table" then return nil, "properties must be a table" end
      for name in pairs(v) do
        if type(name) ~= "string" then return nil, format("properties: key %s is not a name", tostring(name)) end
      end
    elseif k == "remove" then
      v = list_of(v)
      if type(v) ~= "table" then return nil, "remove must be " .. RULE_KEYS.remove end
      for _, name in ipairs(v) do
        if type(name) ~= "string" then return nil, "remove must be " .. RULE_KEYS.remove end
      end
    elseif k == "unique_id" and not fn and (type(v) ~= "string" or v == "") then
      return nil, "unique_id must be a non-empty string or a function"
    elseif k == "profile" and not fn and type(v) ~= "table" then
      return nil, "profile must be " .. RULE_KEYS.profile
    elseif k == "time" and not fn and type(v) ~= "string" then
      return nil, "time must be " .. RULE_KEYS.time
    elseif k == "value" and not fn and type(v) ~= "number" then
      return nil, "value must be " .. RULE_KEYS.value
    elseif k == "drop" and not fn and type(v) ~= "boolean" then
      return nil, "drop must be " .. RULE_KEYS.drop
    elseif k == "trigger" then
      v = list_of(v)
      if type(v) ~= "table" or next(v) == nil then return nil, "trigger must be " .. RULE_KEYS.trigger end
      local set = {}
      for _, t in ipairs(v) do
        if not triggers[t] then return nil, format("trigger: '%s' is not a trigger Loop sends", tostring(t)) end
        set[t] = true
      end
      v = set
    end
    c[k] = v
  end
  return c
end

--- Checks a file's `changes` table. Returns the compiled rules by metric name (each a list) and a
-- list of problems { line, message }. lines(text) gives the file's line that holds text.
function M.compile(changes, lines, triggers)
  local problems, compiled = {}, {}
  if type(changes) ~= "table" then
    problems[1] = { line = 1, message = "changes must be a table keyed by metric name" }
    return compiled, problems
  end
  for metric, rules in pairs(changes) do
    local line = 1
    if type(metric) == "string" then     -- the key's line, not a comment above it that names the metric
      line = lines('["' .. metric .. '"]')
      if line == 1 then line = lines(metric) end
    end
    if type(metric) ~= "string" or metric == "" then
      problems[#problems + 1] = { line = line, message = format("changes: key %s is not a metric name", tostring(metric)) }
    else
      -- one rule, or a list of rules applied in order
      local list = (type(rules) == "table" and rules[1] ~= nil) and rules or { rules }
      local out = {}
      for i, rule in ipairs(list) do
        local c, problem = compile_rule(rule, triggers)
        if not c then
          problems[#problems + 1] = { line = line, message = format("changes[%q]%s: %s", metric,
                                                                    #list > 1 and "[" .. i .. "]" or "", problem) }
        else
          c.name, c.line = metric, line
          out[#out + 1] = c
        end
      end
      compiled[metric] = out
    end
  end
  return compiled, problems
end

-- What one file's rules do to the metric names that reach it, as far as the rules alone say: a name
-- renamed to a fixed name or dropped for every trigger is gone (by = { file, line, to }); the fixed
-- names it renames to exist from then on. A rule with a trigger list leaves the name (other triggers
-- keep it); a function for `metric` may make any name, so after such a file nothing is known gone.
local function gone_after(file, gone)
  local next_gone, revived, unknown = {}, {}, false
  for name, by in pairs(gone) do next_gone[name] = by end
  for name, rules in pairs(file.changes or {}) do
    local final, dropped, line, partial = name, false, nil, false
    for _, c in ipairs(rules) do
      if type(c.metric) == "function" then unknown = true end
      if c.trigger then partial = true
      elseif not dropped then
        if c.drop == true then dropped, line = true, c.line
        elseif type(c.metric) == "string" then final, line = c.metric, c.line end
      end
    end
    if not partial and (dropped or final ~= name) then
      next_gone[name] = { file = file.name, line = line, to = not dropped and final or nil }
    end
    if not dropped and final ~= name then revived[final] = true end
  end
  if unknown then return {} end
  for name in pairs(revived) do next_gone[name] = nil end
  return next_gone
end

--- A file's rules that can never match: keyed on a metric that an earlier file renames (to a fixed
-- name) or drops for every trigger, so that no earlier file emits it any more. Silently matching
-- nothing is what a template's rule on "Loop Return Created" would do after a merchant's earlier file
-- renamed that metric. Returns a list of problems { line, message } (earlier: the registered files,
-- in name order). An `after` hook that renames a metric back is not seen.
function M.unreachable(earlier, file)
  local gone = {}
  for _, f in ipairs(earlier) do gone = gone_after(f, gone) end
  local problems = {}
  for name, rules in pairs(file.changes or {}) do
    local by = gone[name]
    if by and rules[1] then
      local what = by.to and format("renames it to %q", by.to) or "drops it"
      local fix = by.to and format("key this rule on %q (the metric's name from then on)", by.to)
                  or "remove this rule, or the earlier drop"
      problems[#problems + 1] = { line = rules[1].line, message = format(
        "changes[%q]: no earlier file emits %q: %s:%d %s, so this rule would never match; %s",
        name, name, by.file, by.line, what, fix) }
    end
  end
  table.sort(problems, function(a, b) return a.line < b.line end)
  return problems
end

-- A copy of a properties table, marked as the original was (an empty one stays {}).
local function copy(props)
  local c = {}
  for k, v in pairs(props) do c[k] = v end
  return json.is_array(props) and json.array(c) or json.object(c)
end

local function resolve(v, event, view, out)
  if type(v) == "function" then return v(event, view, out) end
  return v
end

local function where(file, line, what, message)
  error(format("%s:%d: %s: %s", file.name, line, what, message), 0)
end

-- Applies one rule to the view: nil when its trigger does not match, false when it drops the
-- action, true when it applied.
local function apply_rule(file, c, event, view, st, out)
  if c.trigger and not c.trigger[event.trigger] then return nil end
  local what = format("changes[%q]", c.name)
  if c.drop ~= nil and resolve(c.drop, event, view, out) then return false end
  if c.properties then
    local props = view.properties
    for name, v in pairs(c.properties) do props[name] = resolve(v, event, view, out) end
  end
  if c.remove then
    for _, name in ipairs(c.remove) do view.properties[name] = nil end
  end
  for _, k in ipairs({ "metric", "unique_id", "time", "value" }) do
    if c[k] ~= nil then view[k] = resolve(c[k], event, view, out) end
  end
  if c.profile ~= nil then
    local problem = emitter.merge_profile(st, resolve(c.profile, event, view, out))
    if problem then where(file, c.line, what .. ".profile", problem) end
  end
  return true
end

-- What a rule's functions and the `after` hook see of an action, and may change.
local function view_of(a, event, st)
  return {
    metric = a.metric, properties = copy(a.properties), value = a.value, currency = a.currency, time = a.time,
    unique_id = a.unique_id, backfill = a.backfill, trigger = event.trigger,
    scheduled = a.kind == "schedule" and a.key or nil, profile = st.person,
  }
end

-- One file's step over one action: its rules for the action's metric, then its `after`. Returns the
-- action (changed in place) or nil when dropped.
local function step(file, a, event, st, out)
  local rules = file.changes and file.changes[a.metric]
  if not rules and not file.after then return a end
  local view = view_of(a, event, st)
  local line, what = file.after_line, "after"
  for _, c in ipairs(rules or {}) do
    local applied = apply_rule(file, c, event, view, st, out)
    if applied == false then return nil end
    if applied then line, what = c.line, format("changes[%q]", c.name) end
  end
  if file.after then
    if file.after(event, view, out) == false then return nil end
    line, what = file.after_line, "after"
  end
  if type(view.properties) ~= "table" then where(file, line, what, "properties must be a table") end
  local problem = emitter.recheck(view, st.ctx.now)
  if problem then where(file, line, what, problem) end
  a.metric, a.properties, a.value, a.currency, a.time, a.unique_id, a.backfill =
    view.metric, view.properties, view.value, view.currency, view.time, view.unique_id, view.backfill
  if type(view.profile) == "table" and view.profile ~= st.person then
    where(file, line, what, "action.profile is the event's profile: change its fields, do not replace it")
  end
  return a
end

--- Runs every file's changes, in file order, over the event's tracked and scheduled actions.
-- files: the runtime's registered files that have `changes` or `after`; out: the event's emitter,
-- which functions get third (out:recall, out:remember, out:profile, out:segment, out:defer work; a
-- method that adds an action raises).
function M.apply(files, event, out, st)
  st.changing = true
  for _, file in ipairs(files) do
    local kept = {}
    for _, a in ipairs(st.actions) do
      if a.kind == "track" or a.kind == "schedule" then a = step(file, a, event, st, out) end
      if a then kept[#kept + 1] = a end
    end
    st.actions = kept
  end
  st.changing = false
end

return M
