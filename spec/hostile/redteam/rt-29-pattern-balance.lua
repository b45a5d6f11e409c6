-- hostile: ("("):rep(3e5):find("%b()") through the string metatable (method call): every start position scans to the end, ~4.5e10 steps in one C call that neither allocates nor runs Lua (watchdog: pure-C long call; guards on the copied string table only)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local s = ("("):rep(300000)
    return s:find("%b()")
  end,
}
