-- hostile: top-level code (load time) stuck in one C call: (""):rep(maxinteger) via the string metatable; hot reload or start must refuse the folder within the cap, not freeze (a guard may make it instant: then the file refuses itself) (watchdog: hang at load time)
-- expect: refused
local s = (""):rep(math.maxinteger)
error("loaded past the rep (" .. #s .. " bytes)", 0)
