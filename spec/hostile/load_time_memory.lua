-- hostile: allocates past the memory cap while the folder loads
-- expect: refused
-- reason: memory
-- cap: 2.0
local t = {}
for i = 1, 1e9 do t[i] = ("m"):rep(1 << 20) .. i end
return {}
