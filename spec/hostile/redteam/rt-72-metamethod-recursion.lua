-- hostile: an __index that indexes itself (C-stack overflow through metamethods), then an error raised from inside the message handler's reach (error in error handling): a clean failure, not a crash (watchdog: deep C recursion)
-- expect: failed
return {
  ["return.created"] = function()
    local t = setmetatable({}, {})
    getmetatable(t).__index = function(s, k) return s[k] end
    pcall(function() return t.x end)
    local e = setmetatable({}, { __index = function(s, k) return s[k] end })
    error(e, 0)
  end,
}
