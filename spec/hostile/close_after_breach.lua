-- hostile: after the cap broke, a to-be-closed variable's handler runs while the error unwinds
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  local co = coroutine.create(function()
    local g <close> = setmetatable({}, { __close = function() while true do end end })
    coroutine.yield()
  end)
  coroutine.resume(co)
  local guard <close> = setmetatable({}, { __close = function() coroutine.close(co) while true do end end })
  while true do end
end }
