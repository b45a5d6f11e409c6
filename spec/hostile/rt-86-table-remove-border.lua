-- hostile: the same huge-border table (keys 1, 2, 3, 4, 8, ..., 2^62 (inserted from the top)), then table.remove(t, 1): ~2^62 shifts in C (watchdog: pure-C long call in an unguarded library function)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local t = {}
    for k = 62, 0, -1 do t[1 << k] = true end
    t[3] = true
    table.remove(t, 1)
    error("removed, #t = " .. #t, 0)
  end,
}
