-- hostile: remembers a value, then breaks the time cap: the write must not be kept
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  out:remember("benign:last", "forged")
  while true do end
end }
