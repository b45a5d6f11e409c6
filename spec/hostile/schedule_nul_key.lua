-- hostile: schedules under a key with a NUL byte (cut in the structured result: a cancel could hit
-- another key)
-- expect: failed
-- reason: NUL
return { ["return.created"] = function(ev, out)
  out:schedule("expiring:1\0other", 3600, "Hostile", {})
end }
