-- hostile: properties that refer to themselves
-- expect: failed
return { ["return.created"] = function(ev, out)
  local t = {}
  t.self = t
  out:track("Hostile", t)
end }
