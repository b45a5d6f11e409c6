-- hostile: print() in a loop that never ends: in a worker whose stderr nobody drains, the writes block and no CPU is spent; the cap or the watchdog must still end it (watchdog: blocked, not busy)
-- expect: failed
return {
  ["return.created"] = function()
    local line = ("F"):rep(4096)
    while true do print(line) end
  end,
}
