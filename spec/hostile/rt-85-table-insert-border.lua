-- hostile: a table holding only keys 1, 2, 3, 4, 8, ..., 2^62 (inserted from the top) has a border (#t) near 2^62; table.insert(t, 1, v) then shifts ~2^62 empty slots in C, allocating nothing (watchdog: pure-C long call in an unguarded library function)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local t = {}
    for k = 62, 0, -1 do t[1 << k] = true end
    t[3] = true
    table.insert(t, 1, "x")
    error("inserted, #t = " .. #t, 0)
  end,
}
