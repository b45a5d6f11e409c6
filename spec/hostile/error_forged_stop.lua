-- hostile: catches a real drop value to learn its metatable, then raises a forged "stop" whose
-- fields loop for ever when the host reads them after the script returned (outside any cap)
-- expect: failed
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  local _, stop = pcall(out.drop, out, "probe")
  local mt = getmetatable(stop)
  local forged = { __metatable = mt, __index = function() while true do end end,
                   __tostring = function() while true do end end }
  if type(mt) == "table" then pcall(function() mt.__index = forged.__index end) end
  error(setmetatable({}, forged))
end }
