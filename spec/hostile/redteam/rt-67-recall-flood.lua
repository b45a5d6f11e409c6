-- hostile: out:recall of ever-new missing keys in a loop that never ends: in serve each miss is a round trip to the parent (CPU cap idle, the parent's loop busy); the watchdog must end it (protocol: recall floods; watchdog: wall clock)
-- expect: failed
return {
  ["return.created"] = function(_, out)
    local i = 0
    while true do i = i + 1; out:recall("rt67:missing:" .. i) end
  end,
}
