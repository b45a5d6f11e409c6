-- hostile: rewrites string.upper at load, for every other file and every later event
-- expect: harmless
pcall(function() string.upper = function() return "FORGED" end end)
pcall(function() table.concat = function() return "forged" end end)
return { ["return.created"] = function(ev, out)
  pcall(function() string.upper = function() return "FORGED" end end)
end }
