-- hostile: recalls a key with a NUL byte
-- expect: failed
-- reason: NUL
return { ["return.created"] = function(ev, out)
  out:recall("benign:last\0x")
end }
