-- hostile: reaches the shared string metatable to rewrite string methods for everyone
-- expect: harmless
return { ["return.created"] = function(ev, out)
  local mt = getmetatable("")
  if type(mt) == "table" then
    pcall(function() mt.__index.upper = function() return "FORGED" end end)
    error("reached the string metatable")
  end
  pcall(function() ("").upper = nil end)
end }
