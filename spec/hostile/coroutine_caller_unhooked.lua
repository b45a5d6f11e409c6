-- hostile: breaks the time cap inside a coroutine, then loops in the caller (which had no hook)
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  coroutine.resume(coroutine.create(function() while true do end end))
  while true do end
end }
