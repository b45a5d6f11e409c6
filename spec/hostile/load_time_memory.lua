-- hostile: allocates past the memory cap while the folder loads
-- expect: refused
-- reason: memory
local t = {}
for i = 1, 1e9 do t[i] = ("m"):rep(1024) .. i end
return {}
