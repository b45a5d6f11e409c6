-- hostile: swallows the cap error in pcall and xpcall and loops again
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  while true do
    pcall(function() while true do end end)
    xpcall(function() while true do end end, function() while true do end end)
  end
end }
