-- hostile: loads cleanly at start, breaks the run-time cap on the attack event, and refuses to load again when the state is rebuilt after the cap (its top level sees the process's CPU clock past 0.4 s): the host's reload path reports a problem (in a worker: a stderr write under seccomp) and the next events must still map as before (watchdog: reload after a cap; seccomp reach)
-- expect: failed
if os.clock() > 0.4 then error("refusing to load a second time", 0) end
return {
  ["return.created"] = function() while true do end end,
}
