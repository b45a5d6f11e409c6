-- hostile: reaches the registry metatable behind returnflow.array/object and plants a finalizer and
-- an __index in it, for every later marked table
-- expect: harmless
local rf = require "returnflow"
return { ["return.created"] = function(ev, out)
  for _, mark in ipairs { rf.array, rf.object } do
    local mt = getmetatable(mark {})
    if type(mt) == "table" then
      pcall(function() mt.__gc = function() while true do end end end)
      pcall(function() mt.__index = function() return "forged" end end)
      error("getmetatable reached a host metatable")
    end
  end
end }
