-- hostile: loads cleanly at start, breaks the run-time cap on the attack event, and hangs in one C call when the state is rebuilt after the cap ((""):rep(maxinteger) once the CPU clock is past 0.4 s): the reload must be bounded like any load (watchdog: hang at reload; hang at load time)
-- expect: failed
if os.clock() > 0.4 then local _ = (""):rep(math.maxinteger) end
return {
  ["return.created"] = function() while true do end end,
}
