-- hostile: a forged Stop error value whose __index raises: an error thrown while the host reads the value, outside any protected call (error objects with __index: panic/abort)
-- expect: failed
local emitter = require "returnflow.emitter"
return {
  ["return.created"] = function()
    error(setmetatable({}, { __metatable = emitter.Stop, __index = function() error("thrown from __index") end }), 0)
  end,
}
