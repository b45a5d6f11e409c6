-- hostile: properties nested deeper than any encoder allows
-- expect: failed
return { ["return.created"] = function(ev, out)
  local t = {}
  for _ = 1, 100000 do t = { t } end
  out:track("Hostile", { t = t })
end }
