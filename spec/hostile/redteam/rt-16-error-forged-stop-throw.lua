-- hostile: a forged Stop error value (its __metatable is the Stop metatable, taken from a caught out:fail) whose __index raises: an error thrown while the host reads the value, outside any protected call (error objects with __index: panic/abort)
-- expect: failed
return {
  ["return.created"] = function(_, out)
    local _, stop = pcall(out.fail, out, "probe")
    local Stop = type(stop) == "table" and getmetatable(stop) or {}
    error(setmetatable({}, { __metatable = Stop, __index = function() error("thrown from __index") end }), 0)
  end,
}
