-- hostile: writes globals and _G to leak into other files and later events
-- expect: harmless
upper = function() return "FORGED" end
pcall(function() _G.string = { upper = function() return "FORGED" end } end)
pcall(function() _G.require = function() error("forged") end end)
return { ["return.created"] = function(ev, out)
  _G.loop = nil
  string = { upper = function() return "FORGED" end }
end }
