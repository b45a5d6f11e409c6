-- hostile: a backtracking pattern that runs for minutes inside string.find
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  local s = ("a"):rep(1e5)
  s:find((".-"):rep(50) .. "b")
  error("returned")
end }
