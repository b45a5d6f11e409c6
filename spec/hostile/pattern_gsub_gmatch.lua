-- hostile: catastrophic patterns through gsub, gmatch and match
-- expect: failed
-- reason: cap
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  local s = ("a"):rep(5e4)
  pcall(string.gsub, s, (".-"):rep(40) .. "b", "")
  for _ in s:gmatch((".-"):rep(40) .. "b") do end
  string.match(s, (".-"):rep(40) .. "b")
  error("returned")
end }
