-- hostile: a catastrophic pattern while the folder loads
-- expect: refused
-- reason: cap
-- cap: 0.2
local s = ("a"):rep(1e5)
s:find((".-"):rep(50) .. "b")
return {}
