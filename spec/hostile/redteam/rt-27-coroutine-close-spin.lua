-- hostile: a coroutine suspended with a to-be-closed variable whose __close never returns, closed by coroutine.close (the handler runs on a coroutine created before any breach, with no hook) (__close; caps across coroutines)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local co = coroutine.create(function()
      local guard <close> = setmetatable({}, { __close = function() while true do end end })
      coroutine.yield()
    end)
    coroutine.resume(co)
    coroutine.close(co)
  end,
}
