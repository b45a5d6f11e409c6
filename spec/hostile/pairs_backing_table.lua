-- hostile: writes the second value pairs(event) returns (the event's backing table) to forge Loop's data
-- expect: harmless
local forged = {}
return { ["return.created"] = function(ev, out)
  local _, state = pairs(ev)
  pcall(function() state.state = "forged" end)
  pcall(rawset, state, "state", "forged")
  if ev.state == "forged" then error("the read-only event was changed") end
end }
