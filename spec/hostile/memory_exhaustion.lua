-- hostile: grows a table of distinct strings until something gives; memory class
-- expect: failed
-- reason: memory
-- cap: 2
-- luacheck: ignore (hostile on purpose: unused handler arguments, values never read)
return { ["return.created"] = function(ev, out)
  local t = {}
  for i = 1, math.huge do t[i] = ("x"):rep(4096) .. i end
end }
