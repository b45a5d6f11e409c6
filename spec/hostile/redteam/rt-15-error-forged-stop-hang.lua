-- hostile: an error value that passes for the emitter's Stop (its __metatable is the Stop metatable, taken from a caught out:fail) and whose __index never returns: the host reads its status after the script returned (error objects with __index, outside the cap)
-- expect: failed
return {
  ["return.created"] = function(_, out)
    local _, stop = pcall(out.fail, out, "probe")
    local Stop = type(stop) == "table" and getmetatable(stop) or {}
    error(setmetatable({}, { __metatable = Stop, __index = function() while true do end end }), 0)
  end,
}
