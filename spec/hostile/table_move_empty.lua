-- hostile: table.move over a huge empty range: a C loop that neither allocates nor runs Lua
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  table.move({}, 1, 1 << 40, 2)
  error("returned")
end }
