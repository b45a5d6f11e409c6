-- hostile: load with env tricks (nil env, an env whose __index is the string library, binary-looking text, mode "bt", a reader that yields bytecode) to reach collectgarbage, string.dump or the host's globals; any that works is an escape (load with env tricks)
-- expect: harmless
return {
  ["return.created"] = function(_, out)
    local found = {}
    local function try(label, ...)
      local ok, f = pcall(load, ...)
      if ok and type(f) == "function" then
        local ok2, v = pcall(f)
        if ok2 and v then found[#found + 1] = label end
      end
    end
    try("nil-env", "return collectgarbage", "x", "t", nil)
    try("string-env", "return dump or collectgarbage or io", "x", "t", setmetatable({}, { __index = string }))
    try("bt", "return collectgarbage", "x", "bt")
    try("binary", "\27Lua" .. ("\0"):rep(40))
    try("reader", coroutine.wrap(function() coroutine.yield("\27Lua") coroutine.yield(("\0"):rep(60)) end))
    try("G", "return _G.collectgarbage or _G.debug or _G.io or _G.package or (string.dump ~= nil)")
    try("meta", "return (getmetatable('') or {}).__index")
    try("dump", "return (''):dump or string.dump")
    if #found > 0 then out:fail("escaped: " .. table.concat(found, ", ")) end
  end,
}
