-- hostile: raises a table whose __tostring returns an empty string, then one returning a table
-- expect: failed
-- reason: .
return { ["return.created"] = function(ev, out)
  error(setmetatable({}, { __tostring = function() return "" end }))
end }
