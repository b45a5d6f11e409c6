-- hostile: table.sort of 3000 references to one 8 MB string with the default comparison: every compare is a full strcoll of 8 MB in C, ~30,000 of them (~250 GB scanned) with no Lua instruction and no allocation (watchdog: pure-C long call in an unguarded library function)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local s = ("s"):rep(8 << 20)
    local t = {}
    for i = 1, 3000 do t[i] = s end
    table.sort(t)
    error("sorted", 0)
  end,
}
