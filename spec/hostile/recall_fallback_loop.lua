-- hostile: recalls thousands of distinct keys and remembers huge values
-- expect: failed
-- cap: 0.3
return { ["return.created"] = function(ev, out)
  for i = 1, 1e9 do out:recall("k" .. i) end
end }
