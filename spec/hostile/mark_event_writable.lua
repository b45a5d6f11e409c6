-- hostile: marks the read-only event with returnflow.array/object to replace its protected metatable
-- expect: harmless
local rf = require "returnflow"
return { ["return.created"] = function(ev, out)
  pcall(rf.object, ev)
  pcall(rf.array, ev.line_items)
  local ok = pcall(function() ev.state = "forged" end)
  if ok or ev.state == "forged" then error("the event became writable") end
  local ok2 = pcall(function() ev.line_items[1] = "forged" end)
  if ok2 then error("an event array became writable") end
end }
