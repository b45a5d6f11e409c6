-- hostile: load() with an explicit environment that is the emitter or the event
-- expect: harmless
return { ["return.created"] = function(ev, out)
  local f = load("actions = nil; memory_writes = nil", "x", "t", out)
  pcall(f)
  local g = load("state = 'forged'", "x", "t", ev)
  pcall(g)
  if ev.state == "forged" then error("event changed") end
end }
