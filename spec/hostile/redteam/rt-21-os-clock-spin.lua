-- hostile: a loop of os.clock/os.time/os.date calls (each a system call, clock_gettime on the CPU clock), never ending: the cap must fire even when most time is spent in the kernel (seccomp reach; watchdog)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local x = 0
    while true do x = x + os.clock() + os.time() + #os.date("!%c") end
  end,
}
