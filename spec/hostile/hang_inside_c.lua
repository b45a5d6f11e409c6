-- hostile: one C library call (a backtracking pattern) that runs for minutes without allocating or running Lua code; hang class
-- expect: failed
-- reason: cap
-- cap: 0.2
-- In-process only the sandbox's own fixes can stop it; in serve the watchdog kills the worker at the
-- cap plus the margin ("worker killed: 200 ms cap exceeded") whatever the sandbox does.
return { ["return.created"] = function(ev, out)
  local s = ("a"):rep(2e4)
  s:find(("a?"):rep(2e4) .. ("a"):rep(2e4) .. "b")
  error("the pattern returned")
end }
