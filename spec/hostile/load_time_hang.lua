-- hostile: the file loops for ever when it is loaded (serve: at start or at hot reload); hang class
-- expect: refused
-- reason: cap
-- luacheck: ignore (hostile on purpose: unused handler arguments, values never read)
local n = 0
while true do n = n + 1 end
return {}
