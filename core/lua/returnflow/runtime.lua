--- The mapping runtime: which handlers run for an event, in which order, and what comes out.
-- The host loads each file of the scripts folder and hands its returned table to `register`;
-- `map` then runs, for one event, every matching handler of every file in file-name order ("*"
-- handlers of a file before its trigger handlers), then every file's `changes` and `after` over what
-- they emitted (returnflow.changes), and turns the emitter into Klaviyo requests.
-- @module returnflow.runtime
local changes = require "returnflow.changes"
local emitter = require "returnflow.emitter"
local klaviyo = require "returnflow.klaviyo"
local loop = require "returnflow.loop"

local M = {}

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format = string.format

--- Every trigger Loop sends (fixtures/loop/README.md).
M.TRIGGERS = {
  ["return.created"] = true, ["return.updated"] = true, ["return.closed"] = true,
  ["label.created"] = true, ["label.updated"] = true,
  ["restock.requested"] = true, ["giftcard.requested"] = true,
  ["shipment.processed"] = true, ["label.request.issued"] = true, ["label.request.cancelled"] = true,
  ["return.processing.failed"] = true,
}

local files = {}          -- { name = "scripts/x.lua", handlers = { [trigger] = fn } }, in name order
local changers = {}       -- the files with `changes` or `after` (returnflow.changes), in name order

--- Forgets every registered file (a reload starts from here).
function M.reset() files, changers = {}, {} end

--- Registers what a script file returned. Returns a list of problems, each { line, message }.
-- @param lines function(fn) → line where fn is defined, for messages
function M.register(name, returned, lines)
  local problems = {}
  if type(returned) ~= "table" then
    problems[1] = { line = 1, message = format("the file must return a table of handlers keyed by trigger, "
                                               .. "it returned %s", returned == nil and "nothing" or type(returned)) }
    return problems
  end
  local handlers = {}
  local file = { name = name, handlers = handlers }
  for trigger, fn in pairs(returned) do
    local line = type(fn) == "function" and lines(fn) or 1
    if trigger == "changes" then
      local compiled, found = changes.compile(fn, lines, M.TRIGGERS)
      for _, p in ipairs(found) do problems[#problems + 1] = p end
      file.changes = compiled
    elseif trigger == "after" then
      if type(fn) ~= "function" then
        problems[#problems + 1] = { line = lines("after"), message = format("after is a %s, not a function(event, "
                                                                             .. "action)", type(fn)) }
      end
      file.after, file.after_line = fn, line
    elseif type(trigger) ~= "string" then
      problems[#problems + 1] = { line = line, message = format("handler key %s is not a trigger name", tostring(trigger)) }
    elseif type(fn) ~= "function" then
      problems[#problems + 1] = { line = line, message = format("handler for '%s' is a %s, not a function", trigger, type(fn)) }
    elseif trigger ~= "*" and not M.TRIGGERS[trigger] then
      problems[#problems + 1] = { line = line, message = format("unknown trigger '%s' (Loop sends: %s)", trigger, M.known()) }
    else
      handlers[trigger] = fn
    end
  end
  if file.changes then
    for _, p in ipairs(changes.unreachable(files, file)) do problems[#problems + 1] = p end
  end
  files[#files + 1] = file
  if file.changes or file.after then changers[#changers + 1] = file end
  return problems
end

--- Files and handlers registered (a file's `changes` and `after` count as one handler each).
function M.counts()
  local n = 0
  for _, f in ipairs(files) do
    for _ in pairs(f.handlers) do n = n + 1 end
    if f.changes then n = n + 1 end
    if f.after then n = n + 1 end
  end
  return #files, n
end

function M.known()
  local list = {}
  for t in pairs(M.TRIGGERS) do list[#list + 1] = t end
  table.sort(list)
  return table.concat(list, ", ")
end

--- Maps one event. Returns status ("mapped", "dropped"; "failed" via error), reason, the actions,
-- the profile upsert (or nil), the counts of requests, scheduled requests and cancels, the memory
-- writes, the profile and the meta (values, in that order: the host reads them by place, and writes
-- the requests from the actions in their order: returnflow.klaviyo's requests). Errors propagate to
-- the host, which fails the event; drop/fail/defer arrive as emitter.Stop values. A request is a
-- track or schedule action, whose body the host writes for `person` (the first track carrying
-- `meta`), or names its action ("profile", "subscribe") with a body; never a method, path or header:
-- the host builds those from its fixed table.
function M.map(event, cfg)
  local trigger = event.trigger
  if type(trigger) ~= "string" then
    error(setmetatable({ status = "failed", reason = "the event has no \"trigger\" field" }, emitter.Stop), 0)
  end
  local out, st = emitter.new(event, cfg)
  local ran = 0
  for i = 1, #files do
    local handlers = files[i].handlers
    local any, exact = handlers["*"], handlers[trigger]
    if any then any(event, out); ran = ran + 1 end
    if exact then exact(event, out); ran = ran + 1 end
  end
  if ran == 0 then
    return "dropped", format("no handler for trigger '%s'", trigger)
  end
  if #changers > 0 then changes.apply(changers, event, out, st) end
  local requests, scheduled, cancelled, upsert, meta = klaviyo.requests(st, cfg, loop)
  emitter.close()
  local status, reason = "mapped", nil
  if requests == 0 and scheduled == 0 and cancelled == 0 and #st.memory_writes == 0 then
    status, reason = "dropped", format("the handlers for '%s' produced no action", trigger)
  end
  return status, reason, st.actions, upsert, requests, scheduled, cancelled, st.memory_writes, st.person, meta
end

--- The metatable of drop/fail/defer values (the host compares it raw; scripts see a guard).
M.Stop = emitter.Stop

return M
