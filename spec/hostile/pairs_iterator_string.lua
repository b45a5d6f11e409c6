-- hostile: calls the iterator pairs(event.customer...) returns on a string and on another table
-- expect: failed
-- reason: expected
return { ["return.created"] = function(ev, out)
  local iter = pairs(ev.line_items or ev)
  pcall(iter, {}, nil)
  iter("a string", "k")
end }
