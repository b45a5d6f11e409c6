-- hostile: the worker dies of a memory fault mid-event (serve: SIGSEGV from the runner); containment class
-- expect: failed
-- cap: 2
-- serve: kill SEGV
-- luacheck: ignore (hostile on purpose: unused handler arguments, values never read)
-- Under map there is no worker: the loop is stopped by the CPU cap. Under serve the runner kills
-- the tenant's worker while it runs this loop: the event is a dead letter "worker crashed: signal 11",
-- a new worker maps the next events, and the bystander tenant never notices.
return { ["return.created"] = function(ev, out)
  local n = 0
  while true do n = n + 1 end
end }
