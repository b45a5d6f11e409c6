-- hostile: plants a shared-reference graph in the event's backing table, then makes the host word
-- a refused write's path (an exponential search in the host's own error reporting)
-- expect: failed
-- reason: read%-only
return { ["return.created"] = function(ev, out)
  local _, data = pairs(ev)
  local node = {}
  for _ = 1, 60 do node = { a = node, b = node } end
  pcall(rawset, data, "zz", node)
  pcall(function() data.zz = node end)
  ev.line_items[1].title = "x"
end }
