-- hostile: cancels a key with a NUL byte (cut to another schedule's key)
-- expect: failed
-- reason: NUL
return { ["return.created"] = function(ev, out)
  out:cancel("expiring:1\0other")
end }
