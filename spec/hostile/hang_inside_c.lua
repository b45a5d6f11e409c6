-- hostile: a C library call that loops for ever, no allocation, no Lua (string.rep("", maxinteger)); hang class
-- expect: failed
-- reason: string%.rep returned 0
-- cap: 0.2
-- luacheck: ignore (hostile on purpose: unused handler arguments, values never read)
-- The sandbox's string.rep returns an empty result at once (core/script/sandbox_lib.c), so the call
-- ends and the event fails only on the script's own error after it; were it to loop, serve's watchdog
-- would kill the worker at the cap plus the margin ("worker killed: 200 ms cap exceeded").
return { ["return.created"] = function(ev, out)
  local s = string.rep("", math.maxinteger)
  error("string.rep returned " .. #s)
end }
