-- hostile: rewrites the shared Stop metatable (taken from a caught out:fail) so its __index spins, then raises a Stop with no reason: the host's read of .reason runs script code outside the cap; later events' drop/fail too (shared module tables; error objects)
-- expect: failed
return {
  ["return.created"] = function(_, out)
    local _, stop = pcall(out.fail, out, "probe")
    local Stop = type(stop) == "table" and getmetatable(stop)
    pcall(function() Stop.__index = function() while true do end end end)
    pcall(function() stop.reason = nil end)
    error(type(stop) == "table" and stop or "no Stop value reachable", 0)
  end,
}
