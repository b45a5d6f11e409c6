-- hostile: a __close handler run by coroutine.close, in a coroutine with no hook, loops for ever
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  local co = coroutine.create(function()
    local guard <close> = setmetatable({}, { __close = function() while true do end end })
    coroutine.yield()
  end)
  coroutine.resume(co)
  coroutine.close(co)
end }
