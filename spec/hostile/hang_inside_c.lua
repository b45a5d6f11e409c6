-- hostile: a C library call that loops for ever, no allocation, no Lua (string.rep("", maxinteger)); hang class
-- expect: failed
-- reason: cap
-- cap: 0.2
-- luacheck: ignore (hostile on purpose: unused handler arguments, values never read)
-- In-process only the sandbox's own fixes can stop it; in serve the watchdog kills the worker at the
-- cap plus the margin ("worker killed: 200 ms cap exceeded") whatever the sandbox does.
return { ["return.created"] = function(ev, out)
  local s = string.rep("", math.maxinteger)
  error("string.rep returned " .. #s)
end }
