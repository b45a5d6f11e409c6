-- hostile: remembers under a key with a NUL byte, which a C string would cut to another key
-- expect: failed
-- reason: NUL
return { ["return.created"] = function(ev, out)
  out:remember("benign:last\0forged", "forged")
end }
