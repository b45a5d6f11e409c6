-- hostile: breaks the run-time cap on the attack event; the state is thrown away and the scripts loaded again (in a worker: after seccomp, or a new worker), and the next events must map exactly as before (watchdog: replace a worker; state after a cap)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function() while true do end end,
}
