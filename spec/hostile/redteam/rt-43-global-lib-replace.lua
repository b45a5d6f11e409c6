-- hostile: replaces shared library functions through _G and the library tables (tostring, string.lower, string.format, table.concat, math.floor, ipairs), then fails its event: later events and files must see the originals (state leak: globals, shared library tables)
-- expect: failed
-- reason: planted
return {
  ["return.created"] = function(_, out)
    pcall(function()
      _G.tostring = function() return "PWNED" end
      string.lower = function() return "pwned" end
      string.upper = function() return "PWNED" end
      string.format = function() return "PWNED" end
      table.concat = function() return "PWNED" end
      math.floor = function() return -1 end
      _G.ipairs = function() return function() end end
      rawset(_G, "type", function() return "PWNED" end)
    end)
    out:fail("planted")
  end,
}
