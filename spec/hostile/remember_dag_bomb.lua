-- hostile: remembers a value whose JSON is 2^40 bytes (the host's memory-write buffer)
-- expect: failed
return { ["return.created"] = function(ev, out)
  local t = { "xxxxxxxxxxxxxxxx" }
  for _ = 1, 40 do t = { t, t } end
  out:remember("benign:last", t)
end }
