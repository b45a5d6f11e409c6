-- hostile: table.insert(proxy, 1, v) on a proxy whose __len says 2^62 and whose __index/__newindex are C functions (type, rawequal): 2^62 shifts in C, no Lua instruction, nothing allocated (watchdog: pure-C long call through C metamethods)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local proxy = setmetatable({}, { __len = function() return 1 << 62 end, __index = type, __newindex = rawequal })
    table.insert(proxy, 1, "x")
    error("inserted", 0)
  end,
}
