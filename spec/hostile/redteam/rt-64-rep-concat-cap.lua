-- hostile: string.rep to 12 MB, then concatenation (.., table.concat, string.format "%s%s%s") past the cap: every path must count against the cap (memory: string.rep then concat)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local s = ("c"):rep(12 << 20)
    local a = pcall(function() return s .. s .. s end)
    local b = pcall(table.concat, { s, s, s })
    local c = pcall(string.format, "%s%s%s", s, s, s)
    local t = {}
    for i = 1, 8 do t[i] = s .. i end
    error("survived: " .. tostring(a) .. tostring(b) .. tostring(c), 0)
  end,
}
