-- hostile: every route to the string metatable and the host's own string table (getmetatable(""), __index through methods, rawget/rawequal probes, string.gsub with %-escapes in replacements): any table it obtains is changed, and the next events show it (state leak: string metatable)
-- expect: harmless
return {
  ["return.created"] = function()
    pcall(function()
      local mt = getmetatable("")
      if type(mt) == "table" then
        mt.__index = setmetatable({ upper = function() return "PWNED" end }, { __index = mt.__index })
      end
    end)
    pcall(function()
      local lib = ("").upper and getmetatable("x")
      if type(lib) == "table" and type(lib.__index) == "table" then lib.__index.upper = function() return "PWNED" end end
    end)
    pcall(string.gsub, "abc", "(b)", "%9")
    pcall(string.gsub, "abc", "b", "%")
  end,
}
