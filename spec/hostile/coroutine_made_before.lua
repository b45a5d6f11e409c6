-- hostile: resumes, after a breach, a coroutine created before it (each one loops in turn)
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  local spare = coroutine.wrap(function() while true do end end)
  pcall(function() while true do end end)
  pcall(spare)
  while true do end
end }
