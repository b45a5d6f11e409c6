-- hostile: rewrites the shared emitter.Stop metatable (its __index spins), then raises a Stop with no reason: the host's read of .reason runs the script outside the cap; later events' drop/fail too (shared module tables; error objects)
-- expect: failed
local emitter = require "returnflow.emitter"
return {
  ["return.created"] = function(_, out)
    pcall(function()
      emitter.Stop.__index = function() while true do end end
    end)
    error(setmetatable({ status = "failed" }, emitter.Stop), 0)
  end,
}
