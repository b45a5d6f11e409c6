-- hostile: calls the emitter's methods with a forged self and wrong argument types
-- expect: harmless
return { ["return.created"] = function(ev, out)
  local fake = { actions = {}, memory_writes = {}, ctx = {}, event = ev, person = {} }
  for _, m in ipairs { "track", "profile", "segment", "remember", "recall", "cancel", "schedule" } do
    pcall(out[m], fake, "x")
    pcall(out[m], 5, "x")
    pcall(out[m], out, {}, {}, {})
  end
end }
