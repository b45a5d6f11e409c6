-- hostile: the cap breaks inside a coroutine; the caller catches the failed resume, then spins in the main thread, which never got the hook (caps across coroutines; watchdog)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local co = coroutine.create(function() while true do end end)
    local ok = coroutine.resume(co)
    local x = ok and 0 or 1
    while true do x = x + 1 end
  end,
}
