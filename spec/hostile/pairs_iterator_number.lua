-- hostile: calls the iterator pairs(event) returns on a number (a C function trusting its argument)
-- expect: failed
-- reason: bad argument
return { ["return.created"] = function(ev, out)
  local iter = pairs(ev)
  iter(12345, nil)
end }
