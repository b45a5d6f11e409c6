-- hostile: allocates past the memory cap inside pcall
-- expect: failed
-- reason: memory
-- cap: 2.0
return { ["return.created"] = function(ev, out)
  local t = {}
  pcall(function() for i = 1, 1e9 do t[i] = ("m"):rep(1 << 20) .. i end end)
  for i = 1, 1e9 do t[#t + 1] = ("n"):rep(1 << 16) .. i end
end }
