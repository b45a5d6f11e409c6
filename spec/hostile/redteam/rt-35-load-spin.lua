-- hostile: top-level code (load time) that never ends, in plain Lua (watchdog: hang at load time; reload in a worker)
-- expect: refused
-- reason: cap
while true do end
return {}
