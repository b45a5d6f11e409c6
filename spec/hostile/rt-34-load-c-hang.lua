-- hostile: top-level code (load time) stuck in one C call: (""):rep(maxinteger); hot reload or start must refuse the folder within the cap, not freeze (watchdog: hang at load time)
-- expect: refused
-- reason: cap
local _ = (""):rep(math.maxinteger)
return {}
