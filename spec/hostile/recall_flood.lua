-- hostile: a flood of out:recall of keys never remembered, each a round trip to the parent's store in serve; starvation class
-- expect: failed
-- reason: cap
-- cap: 0.3
-- luacheck: ignore (hostile on purpose: unused handler arguments, values never read)
return { ["return.created"] = function(ev, out)
  local i = 0
  while true do
    i = i + 1
    out:recall("flood:" .. i)
  end
end }
