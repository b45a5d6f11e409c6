-- hostile: raises a table whose __tostring never returns (run by the host to word the reason)
-- expect: failed
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  error(setmetatable({}, { __tostring = function() while true do end end }))
end }
