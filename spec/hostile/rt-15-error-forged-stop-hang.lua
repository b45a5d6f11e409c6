-- hostile: an error value that passes for the emitter's Stop (__metatable = emitter.Stop) and whose __index never returns: the host reads its status after the script returned (error objects with __index, outside the cap)
-- expect: failed
-- reason: cap
local emitter = require "returnflow.emitter"
return {
  ["return.created"] = function()
    error(setmetatable({}, { __metatable = emitter.Stop, __index = function() while true do end end }), 0)
  end,
}
