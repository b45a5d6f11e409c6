-- hostile: tracks properties whose encoded body is 2^40 bytes (the host's request buffer)
-- expect: failed
return { ["return.created"] = function(ev, out)
  local t = { "xxxxxxxxxxxxxxxx" }
  for _ = 1, 40 do t = { t, t } end
  out:track("Hostile", { t = t })
end }
