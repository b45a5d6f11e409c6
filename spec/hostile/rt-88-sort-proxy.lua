-- hostile: table.sort of a proxy whose __len says 2^31-2 and whose __index/__newindex are C functions (type, rawequal): ~6e10 comparisons and moves in C, no Lua instruction, nothing allocated (watchdog: pure-C long call through metamethods that are C functions)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local proxy = setmetatable({}, { __len = function() return (1 << 31) - 2 end, __index = type, __newindex = rawequal })
    table.sort(proxy)
    error("sorted", 0)
  end,
}
