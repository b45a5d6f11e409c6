-- hostile: replaces a function of returnflow.loop that other files (and the runtime) call
-- expect: harmless
local loop = require "returnflow.loop"
pcall(function() loop.return_id = function() return "forged" end end)
pcall(rawset, loop, "return_id", function() return "forged" end)
return { ["return.created"] = function(ev, out)
  pcall(function() loop.return_id = function() return "forged" end end)
end }
